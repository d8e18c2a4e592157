package pipeline

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
)

// promTable is two entities' rows, one a minute for n minutes from start, as the
// Prometheus loader reads them.
func promTable(start time.Time, n int) *data.Table {
	tbl := &data.Table{Columns: []string{"v"}, Prometheus: &data.PromStats{Start: start, End: start.Add(time.Duration(n-1) * time.Minute),
		Step: time.Minute, Entities: 2, Rows: 2 * n}}
	for _, e := range []string{"a", "b"} {
		for i := range n {
			tbl.X = append(tbl.X, float32(i))
			tbl.Timestamps = append(tbl.Timestamps, strconv.FormatInt(start.Add(time.Duration(i)*time.Minute).Unix(), 10))
			tbl.Entities = append(tbl.Entities, e)
		}
	}
	return tbl
}

func TestHoldOut(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		b         *contract.Backtest
		needed    int
		trainRows int    // rows left to train on, each entity's oldest
		skipped   string // part of the reason nothing is held out
		err       string
	}{
		{name: "none asked", b: nil, trainRows: 200},
		{name: "hold-out off", b: &contract.Backtest{}, trainRows: 200},
		// 100 rows span 99 minutes: the newest fifth starts at minute 79.2, so rows 80-99.
		{name: "a fifth", b: &contract.Backtest{HoldOut: 0.2}, trainRows: 160},
		{name: "a range", b: &contract.Backtest{Range: "30m"}, trainRows: 138},
		{name: "too few left", b: &contract.Backtest{HoldOut: 0.5}, needed: 120, trainRows: 200,
			skipped: "holding out the 100 rows from 2026-12-01T00:50:00Z would leave 100 to train on, fewer than the 120"},
		{name: "bad share", b: &contract.Backtest{HoldOut: 0.8}, err: "backtest hold-out 0.8: want a share above 0 and at most 0.5"},
		{name: "bad range", b: &contract.Backtest{Range: "soon"}, err: `backtest range "soon": want a positive duration`},
		{name: "bad gap", b: &contract.Backtest{HoldOut: 0.2, MergeGap: "-5m"}, err: `backtest merge gap "-5m"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tbl := promTable(start, 100)
			h, skipped, err := holdOut(tt.b, tbl, tt.needed)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(skipped, tt.skipped) || (tt.skipped == "") != (skipped == "") {
				t.Errorf("skipped %q; want %q", skipped, tt.skipped)
			}
			if tbl.Rows() != tt.trainRows {
				t.Fatalf("%d training rows; want %d", tbl.Rows(), tt.trainRows)
			}
			if (h != nil) != (tt.trainRows < 200) {
				t.Fatalf("held %v with %d training rows left", h != nil, tbl.Rows())
			}
			if h == nil {
				return
			}
			per := tt.trainRows / 2
			// Each entity keeps its oldest rows; the training provenance ends with them.
			if tbl.Entities[per-1] != "a" || tbl.Entities[per] != "b" || tbl.Timestamps[per] != tbl.Timestamps[0] {
				t.Errorf("training rows are not each entity's oldest %d", per)
			}
			if want := start.Add(time.Duration(per-1) * time.Minute); !tbl.Prometheus.End.Equal(want) || tbl.Prometheus.Rows != tt.trainRows {
				t.Errorf("training stats %+v; want %d rows ending at %s", tbl.Prometheus, tt.trainRows, want)
			}
			if h.full.Rows() != 200 || h.cut != start.Add(time.Duration(per)*time.Minute).Unix() && tt.b.Range == "" {
				t.Errorf("kept %d rows, cut at %s", h.full.Rows(), time.Unix(h.cut, 0).UTC())
			}
		})
	}
}

// A backtest range reaches past the DataSource's range: training still reads all of it.
func TestWithBacktestRange(t *testing.T) {
	src := contract.ResolvedData{Prometheus: &contract.ResolvedPrometheus{Range: "24h"}}
	got, err := withBacktestRange(src, &contract.Backtest{Range: "6h"})
	if err != nil || got.Prometheus.Range != "30h0m0s" || src.Prometheus.Range != "24h" {
		t.Fatalf("range %q (source's now %q), %v; want 30h0m0s and the source's unchanged", got.Prometheus.Range, src.Prometheus.Range, err)
	}
	if got, _ := withBacktestRange(src, &contract.Backtest{HoldOut: 0.2}); got.Prometheus.Range != "24h" {
		t.Errorf("a hold-out changed the range to %q", got.Prometheus.Range)
	}
}
