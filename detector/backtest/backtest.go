// Package backtest says what a model would have flagged on a stretch of history: the
// anomalous rows, and the episodes they make per entity, as an alert would see them.
package backtest

import (
	"cmp"
	"slices"
)

// FileName is the file beside a version's model that holds its Report.
const FileName = "backtest.json"

// Row is one scored row.
type Row struct {
	Entity string
	// At is the row's time in seconds since 1970, or its place among its entity's rows
	// when the rows have no time.
	At      int64
	Score   float64
	Anomaly bool
}

// Episode is a run of an entity's anomalous rows (scores above 1), each within the
// gap of the one before it.
type Episode struct {
	Entity string `json:"entity,omitempty"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	// Rows counts the episode's anomalous rows.
	Rows int `json:"rows"`
	// Peak is its highest score, at PeakAt.
	Peak   float64 `json:"peak"`
	PeakAt int64   `json:"peakAt"`
}

// Summary is a backtest's figures.
type Summary struct {
	Rows      int `json:"rows"`
	Entities  int `json:"entities"`
	Anomalies int `json:"anomalies"`
	// Start and End are the first and the last row's At.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Episodes in the order of their entity, then their start.
	Episodes []Episode `json:"episodes"`
}

// Summarize counts rows (in any order) and finds their episodes: an entity's
// anomalous row joins the episode before it when it comes at most gap after that
// episode's last row (in At's unit: 1 for rows without time joins neighbours only).
func Summarize(rows []Row, gap int64) Summary {
	s := Summary{Rows: len(rows)}
	if len(rows) == 0 {
		return s
	}
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b Row) int { return cmp.Or(cmp.Compare(a.Entity, b.Entity), cmp.Compare(a.At, b.At)) })
	s.Start, s.End = sorted[0].At, sorted[0].At
	var open *Episode
	for i, r := range sorted {
		s.Start, s.End = min(s.Start, r.At), max(s.End, r.At)
		if i == 0 || r.Entity != sorted[i-1].Entity {
			s.Entities++
			open = nil
		}
		if !r.Anomaly {
			continue
		}
		s.Anomalies++
		if open != nil && r.At-open.End <= gap {
			open.End, open.Rows = r.At, open.Rows+1
			if r.Score > open.Peak {
				open.Peak, open.PeakAt = r.Score, r.At
			}
			continue
		}
		s.Episodes = append(s.Episodes, Episode{Entity: r.Entity, Start: r.At, End: r.At, Rows: 1, Peak: r.Score, PeakAt: r.At})
		open = &s.Episodes[len(s.Episodes)-1]
	}
	return s
}

// PerDay is how many episodes a day the summary's span held, for rows whose At is in
// seconds; 0 for a span under a second.
func (s Summary) PerDay() float64 {
	span := s.End - s.Start
	if span <= 0 {
		return 0
	}
	return float64(len(s.Episodes)) * 86400 / float64(span)
}

// Largest is at most n episodes, highest peak first.
func (s Summary) Largest(n int) []Episode {
	eps := slices.Clone(s.Episodes)
	slices.SortStableFunc(eps, func(a, b Episode) int { return cmp.Or(cmp.Compare(b.Peak, a.Peak), cmp.Compare(b.Rows, a.Rows)) })
	return eps[:min(n, len(eps))]
}

// Report is a backtest as a version keeps it beside its model (backtest.json): the
// summary and, for its model page, the series of the entities it plots.
type Report struct {
	Summary
	// Features are the model's, in the order of each point's values.
	Features []string `json:"features,omitempty"`
	// Series are the plotted entities, most episodes first; at most MaxSeries.
	Series []Series `json:"series,omitempty"`
	// SeriesLeftOut counts the entities past MaxSeries.
	SeriesLeftOut int `json:"seriesLeftOut,omitempty"`
}

// MaxSeries is how many entities a report keeps series of, and MaxPoints how many
// points each: as many as a page plots across its width, so a report's size is bounded
// whatever the range and the number of entities.
const (
	MaxSeries = 200
	MaxPoints = 600
)

// Series is one entity's backtested rows, as plotted: each point's time, values and
// the model's expected values (by feature), and score.
type Series struct {
	Entity   string  `json:"entity,omitempty"`
	Episodes int     `json:"episodes"`
	Peak     float64 `json:"peak"`
	At       []int64 `json:"at"`
	// Values and Expected hold a point's features one after another.
	Values   []float32 `json:"values"`
	Expected []float32 `json:"expected,omitempty"`
	// Band is, per feature, how far from the expected value a lone feature may be
	// before its row scores 1: the width of the band drawn around the expected value.
	Band  []float32 `json:"band,omitempty"`
	Score []float64 `json:"score"`
}

// Points picks at most n of an entity's rows (given by their scores, in time order)
// to plot: every row when they fit, else, in each of n equal stretches, the row with
// the highest score, so no spike falls between points.
func Points(scores []float64, n int) []int {
	if len(scores) <= n {
		idx := make([]int, len(scores))
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := make([]int, 0, n)
	for b := range n {
		from, to := b*len(scores)/n, (b+1)*len(scores)/n
		best := from
		for i := from + 1; i < to; i++ {
			if scores[i] > scores[best] {
				best = i
			}
		}
		idx = append(idx, best)
	}
	return idx
}

// Ranked orders entities for plotting: most episodes first, then highest peak, then
// by name.
func (s Summary) Ranked() []Series {
	by := map[string]*Series{}
	var out []*Series
	for _, e := range s.Episodes {
		sr := by[e.Entity]
		if sr == nil {
			sr = &Series{Entity: e.Entity}
			by[e.Entity] = sr
			out = append(out, sr)
		}
		sr.Episodes++
		sr.Peak = max(sr.Peak, e.Peak)
	}
	slices.SortStableFunc(out, func(a, b *Series) int {
		return cmp.Or(cmp.Compare(b.Episodes, a.Episodes), cmp.Compare(b.Peak, a.Peak), cmp.Compare(a.Entity, b.Entity))
	})
	r := make([]Series, len(out))
	for i, sr := range out {
		r[i] = *sr
	}
	return r
}
