package scoring

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// scoreBatch rows are scored at a time, so a file of any size streams through.
const scoreBatch = 4096

// CSV reads records from r, scores them with m and writes each record back with
// score, raw and is_anomaly columns appended. The model's features are found by name in
// the header, so extra columns and any column order are fine. With entityColumn, a
// sequence model scores each entity's rows (in the file's order) as a run of their
// own, with a likelihood state of their own: series of several entities in one file,
// as a Prometheus query gives them. It returns the rows scored and how many were
// anomalies. A model whose scores follow the hour of the day or week (Seasons) needs
// the rows' times: opts.TimestampColumn, else the column it trained with when the
// header has it.
func CSV(m *artifact.Model, r io.Reader, w io.Writer, source string, opts CSVOptions) (st CSVStats, err error) {
	delim, entityColumn := opts.Delimiter, opts.EntityColumn
	cr := csv.NewReader(r)
	cr.Comma = delim
	header, err := cr.Read()
	if err == io.EOF {
		return st, &data.Error{Source: source, Msg: "file is empty: expected a header row"}
	}
	if err != nil {
		return st, &data.Error{Source: source, Line: 1, Msg: err.Error()}
	}
	header = slices.Clone(header)
	idx := make([]int, len(m.Meta.Features))
	for k, f := range m.Meta.Features {
		idx[k] = column(header, f)
		if idx[k] < 0 {
			return st, &data.Error{Source: source, Line: 1, Msg: fmt.Sprintf(
				"column %q, which the model was trained on, is not in the header (model features: %s)", f, strings.Join(m.Meta.Features, ", "))}
		}
	}
	if m.Meta.ScalesByEntity() && entityColumn == "" {
		return st, &data.Error{Source: source, Msg: fmt.Sprintf(
			"the model scales each entity by its own statistics (%d entities in training): name the column of each row's entity (--entity-column); read as one series, every entity would be scaled alike", len(m.Meta.EntityScalers))}
	}
	entity := -1
	if entityColumn != "" {
		if entity = column(header, entityColumn); entity < 0 {
			return st, &data.Error{Source: source, Line: 1, Msg: fmt.Sprintf("entity column %q is not in the header", entityColumn)}
		}
	}
	// A row model scores rows one at a time, scaled alike unless by entity: to it an
	// entity changes nothing, though OnRow still names it.
	entityCell := entity
	if !m.Network.Spec.Sequence() && !m.Meta.ScalesByEntity() {
		entity = -1
	}
	stamp := -1
	sequence := m.Network.Spec.Sequence()
	if opts.TimestampColumn == "" && (m.Meta.Seasons != nil || sequence) && m.Meta.TimestampColumn != "" && column(header, m.Meta.TimestampColumn) >= 0 {
		opts.TimestampColumn = m.Meta.TimestampColumn // the column the model trained with
	}
	if c := opts.TimestampColumn; c != "" {
		if stamp = column(header, c); stamp < 0 {
			return st, &data.Error{Source: source, Line: 1, Msg: fmt.Sprintf("timestamp column %q is not in the header", c)}
		}
	}
	if p := m.Meta.Seasons; p != nil && stamp < 0 {
		return st, &data.Error{Source: source, Msg: fmt.Sprintf(
			"the model's scores follow the hour of the %s (seasonality %s): name the rows' timestamp column", strings.ToLower(p.Period), p.Period)}
	}
	var (
		times []int64
		lines []int
	)
	cw := csv.NewWriter(w)
	cw.Comma = delim
	if err := cw.Write(append(header, "score", "raw", "is_anomaly", "page")); err != nil {
		return st, err
	}
	d := len(idx)
	pg := pager{alertFor: opts.AlertFor, runs: map[string]*pageRun{}}
	var batch [][]string
	x := make([]float32, 0, scoreBatch*d)
	flush := func() error {
		if sequence && stamp >= 0 {
			if err := inTimeOrder(batch, x, times, lines, entity, stamp, source, &st); err != nil {
				return err
			}
		}
		var res []Scored
		var err error
		if entity >= 0 || m.Meta.ScalesByEntity() {
			var unseen int
			res, unseen, err = scoreByEntity(m, x, batch, entity, times)
			st.Unseen += unseen
		} else {
			res, err = ScoreRun(m, nil, x, 0, times)
		}
		if err != nil {
			return err
		}
		for i, rec := range batch {
			s := res[i]
			if math.IsInf(s.Raw, 0) || math.IsNaN(s.Raw) {
				return &data.Error{Source: source, Line: lines[i], Msg: fmt.Sprintf(
					"the model's error on this row is %v: its values are too large for float32 arithmetic (scale the column down)", s.Raw)}
			}
			if s.Anomaly {
				st.Anomalies++
			}
			if opts.OnRow != nil {
				r := RowScore{Line: lines[i], Scored: s}
				if entityCell >= 0 {
					r.Entity = rec[entityCell]
				}
				if stamp >= 0 {
					r.Time = rec[stamp]
				}
				opts.OnRow(r)
			}
			ent, at := "", int64(0)
			if entityCell >= 0 {
				ent = rec[entityCell]
			}
			known := false
			switch {
			case times != nil:
				at, known = times[i], true
			case stamp >= 0:
				at, known = seasonal.ParseTime(rec[stamp])
			}
			st.span(at, known)
			page := pg.next(ent, s.Anomaly, at, known)
			if page {
				st.Pages++
			}
			out := append(rec, strconv.FormatFloat(s.Score, 'g', 6, 64), strconv.FormatFloat(s.Raw, 'g', 6, 64), strconv.FormatBool(s.Anomaly), strconv.FormatBool(page))
			if err := cw.Write(out); err != nil {
				return err
			}
		}
		st.Rows += len(batch)
		batch, x, lines = batch[:0], x[:0], lines[:0]
		if times != nil {
			times = times[:0]
		}
		return nil
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return st, &data.Error{Source: source, Line: pe.Line, Msg: pe.Err.Error()}
			}
			return st, err
		}
		line, _ := cr.FieldPos(0)
		for k, c := range idx {
			v, err := data.ParseValue(rec[c])
			if err != nil {
				return st, &data.Error{Source: source, Line: line, Column: m.Meta.Features[k], Msg: err.Error()}
			}
			x = append(x, v)
		}
		if stamp >= 0 && m.Meta.Seasons != nil {
			at, ok := seasonal.ParseTime(rec[stamp])
			if !ok {
				return st, &data.Error{Source: source, Line: line, Column: opts.TimestampColumn, Msg: fmt.Sprintf(
					"%q is not a time (seconds since 1970, or RFC 3339 / ISO 8601 text)", rec[stamp])}
			}
			times = append(times, at)
		}
		batch, lines = append(batch, rec), append(lines, line)
		// A sequence model scores the whole run at once: windows span batches; and an
		// entity's scaler may be fitted on its first rows.
		if len(batch) == scoreBatch && !m.Network.Spec.Sequence() && !m.Meta.ScalesByEntity() {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return st, err
		}
	}
	if st.Rows == 0 {
		return st, &data.Error{Source: source, Msg: "no data rows after the header"}
	}
	cw.Flush()
	return st, cw.Error()
}

// column is the index of the header column named name, spaces around it aside; -1
// when there is none.
func column(header []string, name string) int {
	return slices.IndexFunc(header, func(h string) bool { return strings.TrimSpace(h) == name })
}

// CSVOptions say how CSV reads its input.
type CSVOptions struct {
	Delimiter rune
	// EntityColumn names each row's entity; empty when the rows are one series.
	EntityColumn string
	// TimestampColumn names each row's time, for a model whose scores follow the hour.
	TimestampColumn string
	// AlertFor is how long an entity's rows must stay anomalous for its alert to fire
	// (a Detector's alerting.for): the row where that happens is a page.
	AlertFor time.Duration
	// OnRow, when set, is given every row's score, in the order rows are written: the
	// file's, or for a sequence model with timestamps each entity's rows in time order.
	OnRow func(RowScore)
}

// RowScore is one scored row of a CSV: its line, its entity and time cells (empty
// without the columns) and its score.
type RowScore struct {
	Line         int
	Entity, Time string
	Scored
}

// CSVStats say what CSV scored.
type CSVStats struct {
	Rows, Anomalies int
	// Unseen counts the entities of a model that scales by entity that it did not see
	// in training: each scaled by its first EntityHistoryRows rows.
	Unseen int
	// Reordered says a sequence model's rows were not in time order: they were
	// scored, and written, as training orders them.
	Reordered bool
	// Pages counts the rows where an alert would start firing (CSVOptions.AlertFor);
	// First and Last are the rows' earliest and latest unix times, when known.
	Pages       int
	First, Last int64
	timed       bool
}

// span widens First and Last to at when known.
func (st *CSVStats) span(at int64, known bool) {
	if !known {
		return
	}
	if !st.timed {
		st.First, st.Last, st.timed = at, at, true
	}
	st.First, st.Last = min(st.First, at), max(st.Last, at)
}

// Days is the span of the rows' times in days, 0 when not known.
func (st CSVStats) Days() float64 { return float64(st.Last-st.First) / 86400 }

// pager finds where an alert on each entity would start firing: its rows anomalous
// without a break for alertFor (timed by the rows' times; without them, from the
// run's first row), once per run, as Prometheus holds an alert pending for its for.
type pager struct {
	alertFor time.Duration
	runs     map[string]*pageRun
}

type pageRun struct {
	start int64 // the run's first row's time
	timed bool  // start is known
	paged bool
}

// next says whether the entity's row (anomalous or not, at unix time at when known)
// starts a page.
func (p *pager) next(entity string, anomalous bool, at int64, known bool) bool {
	r := p.runs[entity]
	if !anomalous {
		if r != nil {
			delete(p.runs, entity)
		}
		return false
	}
	if r == nil {
		r = &pageRun{start: at, timed: known}
		p.runs[entity] = r
	}
	if r.paged {
		return false
	}
	if p.alertFor > 0 && r.timed && known && time.Duration(at-r.start)*time.Second < p.alertFor {
		return false
	}
	r.paged = true
	return true
}

// inTimeOrder puts a sequence model's rows (records batch, values x of width len(x) /
// len(batch), times and lines when set) in the order training puts them
// (data.EntityTimeOrder, by the stamp column). Two rows of one entity at one time are
// refused: a series has one value a time.
func inTimeOrder(batch [][]string, x []float32, times []int64, lines []int, entity, stamp int, source string, st *CSVStats) error {
	n := len(batch)
	ts := make([]string, n)
	ents := make([]string, n)
	for i, rec := range batch {
		ts[i] = strings.TrimSpace(rec[stamp])
		if entity >= 0 {
			ents[i] = rec[entity]
		}
	}
	idx := data.EntityTimeOrder(ents, ts)
	byTime := data.ByTime(ts)
	for k := 1; k < n; k++ {
		a, b := idx[k-1], idx[k]
		if ents[a] == ents[b] && !byTime(a, b) {
			where := ""
			if entity >= 0 {
				where = fmt.Sprintf(" of entity %q", ents[a])
			}
			return &data.Error{Source: source, Line: lines[b], Msg: fmt.Sprintf(
				"timestamp %q is also on line %d: two rows%s at one time (a series has one value a time; merge or drop one)", ts[b], lines[a], where)}
		}
	}
	if slices.IsSorted(idx) {
		return nil
	}
	st.Reordered = true
	d := len(x) / n
	recs, xs, at, ls := slices.Clone(batch), slices.Clone(x), slices.Clone(times), slices.Clone(lines)
	for k, i := range idx {
		batch[k], lines[k] = recs[i], ls[i]
		copy(x[k*d:(k+1)*d], xs[i*d:(i+1)*d])
		if times != nil {
			times[k] = at[i]
		}
	}
	return nil
}

// EntityHistoryRows is how many of its first rows scale an entity that a model
// scaling by entity did not see in training, in a file scored in batch.
const EntityHistoryRows = 500

// scoreByEntity scores the rows of x (records recs) as one run per entity (column
// entity of the records; one entity when entity is -1), each entity's rows in their
// order and scaled by its scaler, and gives the scores in the rows' order and how many
// entities the model had not seen.
func scoreByEntity(m *artifact.Model, x []float32, recs [][]string, entity int, times []int64) ([]Scored, int, error) {
	d := len(x) / len(recs)
	var order []string
	rowsOf := map[string][]int{}
	for i, rec := range recs {
		e := ""
		if entity >= 0 {
			e = rec[entity]
		}
		if _, ok := rowsOf[e]; !ok {
			order = append(order, e)
		}
		rowsOf[e] = append(rowsOf[e], i)
	}
	out := make([]Scored, len(recs))
	unseen := 0
	for _, e := range order {
		idx := rowsOf[e]
		xe := make([]float32, 0, len(idx)*d)
		var at []int64
		for _, i := range idx {
			xe = append(xe, x[i*d:(i+1)*d]...)
			if times != nil {
				at = append(at, times[i])
			}
		}
		sc, known, err := m.Meta.EntityScaler(e, xe[:min(len(xe), EntityHistoryRows*d)])
		if err != nil {
			return nil, 0, fmt.Errorf("entity %q: scaling by its first rows: %w", e, err)
		}
		if !known {
			unseen++
		}
		res, err := ScoreRun(m, sc, xe, 0, at)
		if err != nil {
			return nil, 0, fmt.Errorf("entity %q: %w", e, err)
		}
		for k, i := range idx {
			out[i] = res[k]
		}
	}
	return out, unseen, nil
}
