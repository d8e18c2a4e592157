package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/backtest"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
	"github.com/kadet-dev/kadet/detector/watch"
)

// heldOut is the stretch of a Prometheus table a backtest scores: its rows at or
// after cut (Unix seconds), kept apart from training.
type heldOut struct {
	full *data.Table // every row read, in the order read
	cut  int64
	gap  time.Duration
}

// withBacktestRange is src with its range reaching back b's Range further, so that
// training still reads the DataSource's range before the backtest's.
func withBacktestRange(src contract.ResolvedData, b *contract.Backtest) (contract.ResolvedData, error) {
	if b == nil || b.Range == "" || src.Prometheus == nil {
		return src, nil
	}
	extra, err := contract.ParseDuration(b.Range)
	if err != nil || extra <= 0 {
		return src, &SpecError{Msg: fmt.Sprintf("backtest range %q: want a positive duration such as 24h", b.Range)}
	}
	rng, err := contract.ParseDuration(src.Prometheus.Range)
	if err != nil {
		return src, nil // the loader says what is wrong with it
	}
	p := *src.Prometheus
	p.Range = (rng + extra).String()
	src.Prometheus = &p
	return src, nil
}

// holdOut takes the newest rows b asks for out of tbl (a Prometheus table) and keeps
// a copy of every row to backtest on. It holds nothing out (nil) and says why when
// the training rows left would be fewer than needed, or b asks for nothing.
func holdOut(b *contract.Backtest, tbl *data.Table, needed int) (*heldOut, string, error) {
	st := tbl.Prometheus
	if b == nil || st == nil || tbl.Timestamps == nil {
		return nil, "", nil
	}
	var gap time.Duration
	if b.MergeGap != "" {
		var err error
		if gap, err = contract.ParseDuration(b.MergeGap); err != nil || gap < 0 {
			return nil, "", &SpecError{Msg: fmt.Sprintf("backtest merge gap %q: want a duration such as 5m", b.MergeGap)}
		}
	}
	var cut int64
	switch {
	case b.Range != "":
		rng, err := contract.ParseDuration(b.Range)
		if err != nil || rng <= 0 {
			return nil, "", &SpecError{Msg: fmt.Sprintf("backtest range %q: want a positive duration such as 24h", b.Range)}
		}
		cut = st.End.Add(-rng).Unix()
	case b.HoldOut > 0 && b.HoldOut <= 0.5:
		span := st.End.Sub(st.Start)
		cut = st.Start.Add(time.Duration(float64(span) * (1 - b.HoldOut))).Unix()
	case b.HoldOut == 0:
		return nil, "", nil
	default:
		return nil, "", &SpecError{Msg: fmt.Sprintf("backtest hold-out %v: want a share above 0 and at most 0.5", b.HoldOut)}
	}
	if step := int64(st.Step / time.Second); step > 0 { // on a step: the training rows end one before it
		from := st.Start.Unix()
		cut = from + (cut-from+step-1)/step*step
	}
	drop := make([]bool, tbl.Rows())
	trainRows, heldRows := 0, 0
	for i, ts := range tbl.Timestamps {
		at, err := strconv.ParseInt(ts, 10, 64)
		drop[i] = err == nil && at >= cut
		if drop[i] {
			heldRows++
		} else {
			trainRows++
		}
	}
	at := time.Unix(cut, 0).UTC().Format(time.RFC3339)
	switch {
	case heldRows == 0:
		return nil, fmt.Sprintf("no row at or after %s to backtest on", at), nil
	case trainRows < needed:
		return nil, fmt.Sprintf("holding out the %d rows from %s would leave %d to train on, fewer than the %d training needs: the model trained on every row",
			heldRows, at, trainRows, needed), nil
	}
	h := &heldOut{full: cloneTable(tbl), cut: cut, gap: gap}
	removeRows(tbl, drop)
	stats := *st
	stats.End, stats.Rows = time.Unix(cut, 0).Add(-st.Step).UTC(), trainRows
	tbl.Prometheus = &stats
	return h, "", nil
}

// Backtest scores the rows of tbl (a Prometheus table) at or after cut (Unix seconds)
// with m as a watching pod restarted at cut would (each entity warmed up on the rows
// before it), episodes merging across gap: the figures a training result carries and
// the report kept beside a model. It is the backtest of the held-out rows of
// training, run on any stretch of history.
func Backtest(m *artifact.Model, tbl *data.Table, cut int64, gap time.Duration) (*contract.BacktestResult, backtest.Report) {
	return (&heldOut{full: tbl, cut: cut, gap: gap}).run(m)
}

// cloneTable copies tbl's rows; the copy shares nothing with it that removeRows
// changes.
func cloneTable(tbl *data.Table) *data.Table {
	c := *tbl
	c.X, c.Timestamps, c.Entities, c.Lines = slices.Clone(tbl.X), slices.Clone(tbl.Timestamps), slices.Clone(tbl.Entities), slices.Clone(tbl.Lines)
	return &c
}

// run scores the held-out rows with m as a watching pod would, one restarted at the
// cut: each entity's likelihood state warmed up on its watch.WarmupRows rows before
// it. It returns the figures for the training result and the report kept beside the
// model (the summary and the series its page plots).
func (h *heldOut) run(m *artifact.Model) (*contract.BacktestResult, backtest.Report) {
	tbl := h.full
	warm := watch.WarmupRows + scoring.RunRows(m)
	// Rows older than the warm-up before the cut are not read by a watcher starting
	// there: leave them out, so the scores are the watch's and the cost the backtest's.
	drop := make([]bool, tbl.Rows())
	times := make([]int64, tbl.Rows())
	for _, sg := range entityRows(tbl) {
		first := sg[1]
		for i := sg[0]; i < sg[1]; i++ {
			times[i], _ = strconv.ParseInt(tbl.Timestamps[i], 10, 64)
			if times[i] >= h.cut && first == sg[1] {
				first = i
			}
		}
		for i := sg[0]; i < max(sg[0], first-warm); i++ {
			drop[i] = true
		}
	}
	c := cloneTable(tbl)
	removeRows(c, drop)
	kept := times[:0]
	for i, t := range times {
		if !drop[i] {
			kept = append(kept, t)
		}
	}
	res, scored, why := ScoreTable(m, c)
	var rows []backtest.Row
	for i, r := range res {
		if !scored[i] || kept[i] < h.cut {
			continue
		}
		row := backtest.Row{At: kept[i], Score: r.Score, Anomaly: r.Anomaly}
		if c.Entities != nil {
			row.Entity = c.Entities[i]
		}
		rows = append(rows, row)
	}
	s := backtest.Summarize(rows, int64(h.gap/time.Second))
	report := backtest.Report{Summary: s, Features: m.Meta.Features}
	report.Series, report.SeriesLeftOut = plotSeries(m, c, kept, scored, res, h.cut, s)
	out := &contract.BacktestResult{Rows: s.Rows, Entities: s.Entities, AnomalousRows: s.Anomalies,
		Episodes: len(s.Episodes), MergeGap: h.gap.String()}
	if s.Rows == 0 {
		out.Skipped = "no held-out row could be scored"
		if why != "" {
			out.Skipped += ": " + why
		}
		return out, report
	}
	start, end := time.Unix(s.Start, 0).UTC(), time.Unix(s.End, 0).UTC()
	out.Start, out.End = &start, &end
	out.EpisodesPerDay = s.PerDay()
	for _, e := range s.Largest(contract.BacktestTop) {
		out.Largest = append(out.Largest, contract.BacktestEpisode{Entity: e.Entity,
			Start: time.Unix(e.Start, 0).UTC(), End: time.Unix(e.End, 0).UTC(), Rows: e.Rows, Peak: e.Peak})
	}
	return out, report
}

// plotSeries are the series a report keeps: of the entities with the most episodes
// first, then the others by name, at most backtest.MaxSeries, each at most
// backtest.MaxPoints of its held-out rows (the highest scores of equal stretches)
// with the values m expects there: its reconstruction of the row from the window
// ending at it, as a watching pod's scores explain it. It also counts the entities
// left out.
func plotSeries(m *artifact.Model, c *data.Table, times []int64, scored []bool, res []scoring.Scored, cut int64, s backtest.Summary) ([]backtest.Series, int) {
	d, w := len(c.Columns), scoring.RunRows(m)
	series := s.Ranked()
	listed := map[string]bool{}
	for _, sr := range series {
		listed[sr.Entity] = true
	}
	rowsOf := map[string][]int{}
	var names []string
	segOf := make([]int, c.Rows())
	segs := segments(c)
	for k, sg := range segs {
		for i := sg[0]; i < sg[1]; i++ {
			segOf[i] = k
			if !scored[i] || times[i] < cut || i-w+1 < sg[0] {
				continue
			}
			e := ""
			if c.Entities != nil {
				e = c.Entities[i]
			}
			if rowsOf[e] == nil && !listed[e] {
				names = append(names, e)
			}
			rowsOf[e] = append(rowsOf[e], i)
		}
	}
	slices.Sort(names)
	for _, e := range names {
		series = append(series, backtest.Series{Entity: e})
	}
	left := max(0, len(series)-backtest.MaxSeries)
	series = series[:len(series)-left]
	for k := range series {
		sr := &series[k]
		rows := rowsOf[sr.Entity]
		scores := make([]float64, len(rows))
		for j, i := range rows {
			scores[j] = res[i].Score
		}
		picked := backtest.Points(scores, backtest.MaxPoints)
		x := make([]float32, 0, len(picked)*w*d)
		for _, j := range picked {
			i := rows[j]
			sr.At, sr.Score = append(sr.At, times[i]), append(sr.Score, res[i].Score)
			sr.Values = append(sr.Values, c.Row(i)...)
			x = append(x, c.X[(i-w+1)*d:(i+1)*d]...)
		}
		if len(picked) == 0 {
			continue
		}
		sg := segs[segOf[rows[0]]]
		sc, _, err := m.Meta.EntityScaler(sr.Entity, c.X[sg[0]*d:min(sg[1], sg[0]+scoring.EntityHistoryRows)*d])
		if err != nil {
			continue // scoring said so already; the series has no expected values
		}
		scalers := make([]*preprocess.Scaler, len(picked))
		for j := range scalers {
			scalers[j] = sc
		}
		newest, err := scoring.ScoreNewest(m, x, len(picked), seasonal.NoTime, nil, scalers)
		if err != nil || newest[0].Expected == nil {
			continue
		}
		for _, nw := range newest {
			sr.Expected = append(sr.Expected, nw.Expected...)
		}
		sr.Band = band(sc, d, m.Meta.Threshold.Value)
	}
	return series, left
}

// band is, per feature, how far a lone feature of a row may stray (in the data's own
// units) before its reconstruction error alone reaches the threshold t: the mean
// squared error over d scaled features is t at a scaled distance of sqrt(t*d).
func band(sc *preprocess.Scaler, d int, t float64) []float32 {
	zero, far := make([]float32, d), make([]float32, d)
	for j := range far {
		far[j] = float32(math.Sqrt(t * float64(d)))
	}
	lo, hi := sc.Inverse(nil, zero), sc.Inverse(nil, far)
	out := make([]float32, d)
	for j := range out {
		out[j] = float32(math.Abs(float64(hi[j] - lo[j])))
	}
	return out
}
