package scoring

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/data"
)

// scoreBatch rows are scored at a time, so a file of any size streams through.
const scoreBatch = 4096

// CSV reads records from r, scores them with m and writes each record back with
// score, raw and is_anomaly columns appended. The model's features are found by name in
// the header, so extra columns and any column order are fine. With entityColumn, a
// sequence model scores each entity's rows (in the file's order) as a run of their
// own, with a likelihood state of their own: series of several entities in one file,
// as a Prometheus query gives them. It returns the rows scored and how many were
// anomalies.
func CSV(m *artifact.Model, r io.Reader, w io.Writer, source string, delim rune, entityColumn string) (rows, anomalies int, err error) {
	cr := csv.NewReader(r)
	cr.Comma = delim
	header, err := cr.Read()
	if err == io.EOF {
		return 0, 0, &data.Error{Source: source, Msg: "file is empty: expected a header row"}
	}
	if err != nil {
		return 0, 0, &data.Error{Source: source, Line: 1, Msg: err.Error()}
	}
	header = slices.Clone(header)
	idx := make([]int, len(m.Meta.Features))
	for k, f := range m.Meta.Features {
		idx[k] = slices.IndexFunc(header, func(h string) bool { return strings.TrimSpace(h) == f })
		if idx[k] < 0 {
			return 0, 0, &data.Error{Source: source, Line: 1, Msg: fmt.Sprintf(
				"column %q, which the model was trained on, is not in the header (model features: %s)", f, strings.Join(m.Meta.Features, ", "))}
		}
	}
	entity := -1
	if entityColumn != "" {
		if entity = slices.IndexFunc(header, func(h string) bool { return strings.TrimSpace(h) == entityColumn }); entity < 0 {
			return 0, 0, &data.Error{Source: source, Line: 1, Msg: fmt.Sprintf("entity column %q is not in the header", entityColumn)}
		}
		if !m.Network.Spec.Sequence() {
			entity = -1 // rows one at a time: an entity changes nothing
		}
	}
	cw := csv.NewWriter(w)
	cw.Comma = delim
	if err := cw.Write(append(header, "score", "raw", "is_anomaly")); err != nil {
		return 0, 0, err
	}
	d := len(idx)
	var batch [][]string
	x := make([]float32, 0, scoreBatch*d)
	flush := func() error {
		var res []Scored
		var err error
		if entity >= 0 {
			res, err = scoreByEntity(m, x, batch, entity)
		} else {
			res, err = Score(m, x)
		}
		if err != nil {
			return err
		}
		for i, rec := range batch {
			s := res[i]
			if s.Anomaly {
				anomalies++
			}
			out := append(rec, strconv.FormatFloat(s.Score, 'g', 6, 64), strconv.FormatFloat(s.Raw, 'g', 6, 64), strconv.FormatBool(s.Anomaly))
			if err := cw.Write(out); err != nil {
				return err
			}
		}
		rows += len(batch)
		batch, x = batch[:0], x[:0]
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
				return rows, anomalies, &data.Error{Source: source, Line: pe.Line, Msg: pe.Err.Error()}
			}
			return rows, anomalies, err
		}
		line, _ := cr.FieldPos(0)
		for k, c := range idx {
			v, err := data.ParseValue(rec[c])
			if err != nil {
				return rows, anomalies, &data.Error{Source: source, Line: line, Column: m.Meta.Features[k], Msg: err.Error()}
			}
			x = append(x, v)
		}
		batch = append(batch, rec)
		// A sequence model scores the whole run at once: windows span batches.
		if len(batch) == scoreBatch && !m.Network.Spec.Sequence() {
			if err := flush(); err != nil {
				return rows, anomalies, err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return rows, anomalies, err
		}
	}
	if rows == 0 {
		return 0, 0, &data.Error{Source: source, Msg: "no data rows after the header"}
	}
	cw.Flush()
	return rows, anomalies, cw.Error()
}

// scoreByEntity scores the rows of x (records recs) as one run per entity (column
// entity of the records), each entity's rows in their order, and gives the scores in
// the rows' order.
func scoreByEntity(m *artifact.Model, x []float32, recs [][]string, entity int) ([]Scored, error) {
	d := len(x) / len(recs)
	var order []string
	rowsOf := map[string][]int{}
	for i, rec := range recs {
		e := rec[entity]
		if _, ok := rowsOf[e]; !ok {
			order = append(order, e)
		}
		rowsOf[e] = append(rowsOf[e], i)
	}
	out := make([]Scored, len(recs))
	for _, e := range order {
		idx := rowsOf[e]
		xe := make([]float32, 0, len(idx)*d)
		for _, i := range idx {
			xe = append(xe, x[i*d:(i+1)*d]...)
		}
		res, err := Score(m, xe)
		if err != nil {
			return nil, fmt.Errorf("entity %q: %w", e, err)
		}
		for k, i := range idx {
			out[i] = res[k]
		}
	}
	return out, nil
}
