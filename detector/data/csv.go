// Package data reads training and scoring data into dense float32 tables, with errors
// that name the file, line and column of anything that is not usable.
package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Table is a dense, row-major matrix of features with optional labels and timestamps.
type Table struct {
	// Source names where the rows came from, for messages.
	Source  string
	Columns []string
	// ImageRows and ImageCols are set when the columns are the pixels of images.
	ImageRows, ImageCols int
	// X holds Rows() * len(Columns) values, row by row.
	X []float32
	// Labels holds 0 (normal) or 1 (anomaly) per row when a label column was read.
	Labels []float32
	// Timestamps holds the timestamp column's raw text per row when one was read.
	Timestamps []string
	// Lines holds each row's line number in the source, for messages about rows.
	Lines []int
	// Entities holds each row's entity (its entity label values) when rows are
	// (time, entity); rows of one entity are together and in time order.
	Entities []string
	// Prometheus says what a read from Prometheus saw.
	Prometheus *PromStats
	// Breaks are the rows that start a new run of their entity's rows because rows
	// were taken out before them: a series does not continue across one.
	Breaks map[int]bool
}

// Rows is the number of rows.
func (t *Table) Rows() int {
	if len(t.Columns) == 0 {
		return 0
	}
	return len(t.X) / len(t.Columns)
}

// Row returns row i's features (a view, not a copy).
func (t *Table) Row(i int) []float32 {
	d := len(t.Columns)
	return t.X[i*d : (i+1)*d]
}

// CSVOptions selects what a CSV file holds.
type CSVOptions struct {
	// Columns are the feature columns in order; empty means every column except the
	// timestamp and label columns.
	Columns         []string
	TimestampColumn string
	LabelColumn     string
	// EntityColumn names each row's entity (a pod, a host): the table's rows are then
	// grouped by entity, in the order entities first appear, each entity's rows in
	// time order.
	EntityColumn string
	// Delimiter defaults to ','.
	Delimiter rune
}

// Error is a problem with input data, located as precisely as the input allows. The
// detector binary exits with "invalid input" for it: retrying cannot help.
type Error struct {
	Source string
	Line   int    // 1-based; 0 when the whole source is at fault
	Column string // "" when not about one column
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %q", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// IsInputError reports whether err is about the input data rather than the machine.
func IsInputError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// ReadCSV reads a CSV with a header row from r. It keeps no strings per row but the
// timestamps, so a large file costs about its numbers' size in memory.
func ReadCSV(r io.Reader, source string, opt CSVOptions) (*Table, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.Comma = ','
	if opt.Delimiter != 0 {
		if d := opt.Delimiter; d == '"' || d == '\r' || d == '\n' || d == utf8.RuneError || !utf8.ValidRune(d) {
			return nil, &Error{Source: source, Msg: fmt.Sprintf("delimiter %q cannot separate fields: use a character other than a quote or a line break", d)}
		}
		cr.Comma = opt.Delimiter
	}
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &Error{Source: source, Msg: "file is empty: expected a header row"}
	}
	if err != nil {
		return nil, csvError(source, err)
	}
	header = slices.Clone(header)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // a BOM from spreadsheet exports
	}
	idx, err := resolveColumns(source, header, opt)
	if err != nil {
		return nil, err
	}
	t := &Table{Source: source, Columns: idx.names}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(source, err)
		}
		line, _ := cr.FieldPos(0)
		for _, c := range idx.features {
			v, err := ParseValue(rec[c])
			if err != nil {
				return nil, &Error{Source: source, Line: line, Column: header[c], Msg: err.Error()}
			}
			t.X = append(t.X, v)
		}
		if idx.label >= 0 {
			v, err := parseLabel(rec[idx.label])
			if err != nil {
				return nil, &Error{Source: source, Line: line, Column: header[idx.label], Msg: err.Error()}
			}
			t.Labels = append(t.Labels, v)
		}
		if idx.entity >= 0 {
			e := strings.TrimSpace(rec[idx.entity])
			if e == "" {
				return nil, &Error{Source: source, Line: line, Column: header[idx.entity], Msg: "entity is empty"}
			}
			t.Entities = append(t.Entities, e)
		}
		if idx.timestamp >= 0 {
			ts := strings.TrimSpace(rec[idx.timestamp])
			if ts == "" {
				return nil, &Error{Source: source, Line: line, Column: header[idx.timestamp], Msg: "timestamp is empty"}
			}
			t.Timestamps = append(t.Timestamps, ts)
		}
		t.Lines = append(t.Lines, line)
	}
	if len(t.Lines) == 0 {
		return nil, &Error{Source: source, Msg: "no data rows after the header"}
	}
	t.groupByEntity()
	return t, nil
}

type columnIndex struct {
	names                    []string
	features                 []int
	label, timestamp, entity int
}

func resolveColumns(source string, header []string, opt CSVOptions) (columnIndex, error) {
	pos := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			return columnIndex{}, &Error{Source: source, Line: 1, Msg: fmt.Sprintf("column %d of the header has no name: every column needs one", i+1)}
		}
		if _, dup := pos[h]; dup {
			return columnIndex{}, &Error{Source: source, Line: 1, Column: h, Msg: "column name appears twice in the header"}
		}
		pos[h] = i
	}
	find := func(name, role string) (int, error) {
		if name == "" {
			return -1, nil
		}
		i, ok := pos[name]
		if !ok {
			return 0, &Error{Source: source, Line: 1, Msg: fmt.Sprintf("%s column %q is not in the header (columns: %s)",
				role, name, strings.Join(header, ", "))}
		}
		return i, nil
	}
	idx := columnIndex{}
	var err error
	if idx.label, err = find(opt.LabelColumn, "label"); err != nil {
		return idx, err
	}
	if idx.timestamp, err = find(opt.TimestampColumn, "timestamp"); err != nil {
		return idx, err
	}
	if idx.entity, err = find(opt.EntityColumn, "entity"); err != nil {
		return idx, err
	}
	names := opt.Columns
	if len(names) == 0 {
		for i, h := range header {
			if i != idx.label && i != idx.timestamp && i != idx.entity {
				names = append(names, strings.TrimSpace(h))
			}
		}
	}
	for _, n := range names {
		i, err := find(n, "feature")
		if err != nil {
			return idx, err
		}
		idx.features = append(idx.features, i)
	}
	if len(idx.features) == 0 {
		return idx, &Error{Source: source, Line: 1, Msg: "no feature columns: the header has only the label, timestamp and entity columns"}
	}
	idx.names = slices.Clone(names)
	return idx, nil
}

// ParseValue parses a feature value; NaN, infinities and empty cells are refused here,
// where their place is known, rather than poisoning training silently.
func ParseValue(s string) (float32, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("value is empty")
	}
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("%q is out of float32 range", s)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return float32(v), nil
}

func parseLabel(s string) (float32, error) {
	switch strings.TrimSpace(strings.ToLower(s)) {
	case "0", "0.0", "false", "normal":
		return 0, nil
	case "1", "1.0", "true", "anomaly":
		return 1, nil
	}
	return 0, fmt.Errorf("label %q is not 0 or 1", s)
}

// csvError turns encoding/csv's errors into located ones.
func csvError(source string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = "wrong number of fields (the header has a different count)"
		}
		return &Error{Source: source, Line: pe.Line, Msg: msg}
	}
	return fmt.Errorf("reading %s: %w", source, err)
}
