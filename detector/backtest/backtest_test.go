package backtest

import (
	"reflect"
	"testing"
)

func TestSummarize(t *testing.T) {
	row := func(e string, at int64, score float64) Row {
		return Row{Entity: e, At: at, Score: score, Anomaly: score > 1}
	}
	for _, tc := range []struct {
		name     string
		rows     []Row
		gap      int64
		want     []Episode
		entities int
	}{
		{"no anomaly", []Row{row("a", 0, 0.2), row("a", 60, 0.9)}, 300, nil, 1},
		{"neighbours merge, a gap longer than the alert's for splits", []Row{
			row("a", 0, 0.1), row("a", 60, 2), row("a", 120, 3), row("a", 180, 0.5), row("a", 420, 1.5), // 300 s after 120: merged
			row("a", 480, 0.1), row("a", 900, 4), // 480 s after 420: a new episode
		}, 300, []Episode{
			{Entity: "a", Start: 60, End: 420, Rows: 3, Peak: 3, PeakAt: 120},
			{Entity: "a", Start: 900, End: 900, Rows: 1, Peak: 4, PeakAt: 900},
		}, 1},
		{"entities apart, rows in any order", []Row{
			row("b", 120, 5), row("a", 60, 2), row("b", 60, 1.1), row("a", 120, 0.3), row("c", 0, 0.1),
		}, 60, []Episode{
			{Entity: "a", Start: 60, End: 60, Rows: 1, Peak: 2, PeakAt: 60},
			{Entity: "b", Start: 60, End: 120, Rows: 2, Peak: 5, PeakAt: 120},
		}, 3},
		{"rows without time: neighbours only", []Row{row("", 0, 2), row("", 1, 2), row("", 2, 0.1), row("", 3, 2)}, 1, []Episode{
			{Start: 0, End: 1, Rows: 2, Peak: 2, PeakAt: 0},
			{Start: 3, End: 3, Rows: 1, Peak: 2, PeakAt: 3},
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Summarize(tc.rows, tc.gap)
			if !reflect.DeepEqual(s.Episodes, tc.want) {
				t.Errorf("episodes %+v\nwant %+v", s.Episodes, tc.want)
			}
			anomalies := 0
			for _, r := range tc.rows {
				if r.Anomaly {
					anomalies++
				}
			}
			if s.Rows != len(tc.rows) || s.Entities != tc.entities || s.Anomalies != anomalies {
				t.Errorf("rows %d entities %d anomalies %d; want %d, %d, %d", s.Rows, s.Entities, s.Anomalies, len(tc.rows), tc.entities, anomalies)
			}
		})
	}
}

func TestPerDayAndLargest(t *testing.T) {
	s := Summary{Start: 0, End: 2 * 86400, Episodes: []Episode{
		{Entity: "a", Rows: 5, Peak: 2}, {Entity: "b", Rows: 1, Peak: 9}, {Entity: "c", Rows: 9, Peak: 2}, {Entity: "d", Rows: 1, Peak: 1.5},
	}}
	if got := s.PerDay(); got != 2 {
		t.Errorf("per day %v; want 2 (4 episodes over 2 days)", got)
	}
	var names []string
	for _, e := range s.Largest(3) {
		names = append(names, e.Entity)
	}
	if !reflect.DeepEqual(names, []string{"b", "c", "a"}) {
		t.Errorf("largest %v; want the highest peak first, then the longest", names)
	}
	if (Summary{}).PerDay() != 0 || len(s.Largest(10)) != 4 {
		t.Error("an empty span or a short list")
	}
}

func TestPoints(t *testing.T) {
	if got := Points([]float64{1, 2, 3}, 5); !reflect.DeepEqual(got, []int{0, 1, 2}) {
		t.Errorf("rows that fit: %v", got)
	}
	// Ten rows in four stretches (0-1, 2-4, 5-6, 7-9): the highest of each, the spike at 3 kept.
	scores := []float64{0.1, 0.2, 0.1, 9, 0.3, 0.2, 0.1, 0.1, 0.5, 0.2}
	if got := Points(scores, 4); !reflect.DeepEqual(got, []int{1, 3, 5, 8}) {
		t.Errorf("points %v; want [1 3 5 8]", got)
	}
}

func TestRanked(t *testing.T) {
	s := Summary{Episodes: []Episode{
		{Entity: "a", Peak: 2}, {Entity: "b", Peak: 9}, {Entity: "c", Peak: 3}, {Entity: "c", Peak: 1.5}, {Entity: "d", Peak: 2},
	}}
	var got []string
	for _, sr := range s.Ranked() {
		got = append(got, sr.Entity)
	}
	if want := []string{"c", "b", "a", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ranked %v; want %v (most episodes, then peak, then name)", got, want)
	}
}
