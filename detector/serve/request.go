package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// RequestError is a bad request, located as precisely as the JSON allows: the instance
// index and field, e.g. `instances[3][7]`.
type RequestError struct {
	Field string
	Msg   string
	// Status is the HTTP status to answer with; 0 is 400.
	Status int
}

func (e *RequestError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func badRequest(field, format string, args ...any) *RequestError {
	return &RequestError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// detectRequest is POST /v1/detect: instances as rows of numbers in the model's feature
// order, or records keyed by feature name. Exactly one of the two.
// Timestamps, optional, give each row's time (seconds since 1970 or RFC 3339 text),
// which a model whose scores follow the hour of the day needs; Entity names the series
// the rows are of, which a model that scales each entity by its own statistics needs.
type detectRequest struct {
	Instances  [][]float64                  `json:"instances"`
	Records    []map[string]json.RawMessage `json:"records"`
	Timestamps []json.RawMessage            `json:"timestamps"`
	Entity     *string                      `json:"entity"`
}

// requestRows are a request's rows (n of width len(features)), REST's or OIP's, their
// unix times (nil when not given) and their entity (nil when not given).
type requestRows struct {
	x      []float32
	n      int
	times  []int64
	entity *string
}

// decodeDetect parses a /v1/detect body into rows of width len(features).
func decodeDetect(body []byte, features []string, maxInstances int) (requestRows, error) {
	if x, n, ok := fastInstances(body, len(features), maxInstances); ok {
		return requestRows{x: x, n: n}, nil
	}
	return decodeDetectStd(body, features, maxInstances)
}

// decodeDetectStd is decodeDetect with encoding/json, whose errors say where a body
// goes wrong.
func decodeDetectStd(body []byte, features []string, maxInstances int) (requestRows, error) {
	var req detectRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return requestRows{}, locateJSONError(body, err)
	}
	if dec.More() {
		return requestRows{}, badRequest("", "body holds more than one JSON value")
	}
	out := requestRows{entity: req.Entity}
	var err error
	switch {
	case req.Instances != nil && req.Records != nil:
		return requestRows{}, badRequest("", `give "instances" or "records", not both`)
	case req.Instances != nil:
		out.x, out.n, err = instancesToRows(req.Instances, len(features), maxInstances, "instances")
	case req.Records != nil:
		out.x, out.n, err = recordsToRows(req.Records, features, maxInstances)
	default:
		return requestRows{}, badRequest("", `body needs "instances" (rows of numbers) or "records" (objects keyed by feature name)`)
	}
	if err != nil {
		return requestRows{}, err
	}
	if req.Timestamps != nil {
		if out.times, err = parseTimestamps(req.Timestamps, out.n, "timestamps"); err != nil {
			return requestRows{}, err
		}
	}
	return out, nil
}

// parseTimestamps reads one time per row: a number of seconds since 1970 or a string
// of RFC 3339 text.
func parseTimestamps(raw []json.RawMessage, n int, field string) ([]int64, error) {
	if len(raw) != n {
		return nil, badRequest(field, "has %d times for %d rows; give one per row", len(raw), n)
	}
	times := make([]int64, n)
	for i, r := range raw {
		s := string(r)
		if len(r) > 0 && r[0] == '"' {
			if err := json.Unmarshal(r, &s); err != nil {
				return nil, badRequest(fmt.Sprintf("%s[%d]", field, i), "%s", err)
			}
		}
		t, ok := seasonal.ParseTime(s)
		if !ok {
			return nil, badRequest(fmt.Sprintf("%s[%d]", field, i), "%s is not a time: give seconds since 1970 or RFC 3339 text", r)
		}
		times[i] = t
	}
	return times, nil
}

// needTimes refuses rows without times for a model whose scores follow the hour.
func needTimes(m *artifact.Model, times []int64, field, how string) error {
	if p := m.Meta.Seasons; p != nil && times == nil {
		return badRequest(field, "model scores each row against its UTC hour of the %s (seasonality %s): %s",
			strings.ToLower(p.Period), p.Period, how)
	}
	return nil
}

// entityScaler is the scaler of rows x of entity (nil when the request names none)
// for model m: nil for a model with one scaler; the entity's own when m learnt it, else
// one fitted on the rows, as the watch scales an entity it did not train on by its
// history. A model that scales by entity refuses rows that name no entity.
func entityScaler(m *artifact.Model, entity *string, x []float32, field, how string) (*preprocess.Scaler, error) {
	if !m.Meta.ScalesByEntity() {
		return nil, nil
	}
	if entity == nil {
		known := slices.Sorted(maps.Keys(m.Meta.EntityScalers))
		example := ""
		if len(known) > 0 {
			example = fmt.Sprintf(", such as %q", known[0])
		}
		return nil, badRequest(field, "model scales each entity by its own statistics (scaleBy Entity): %s, one of the %d it trained on%s, or another (its rows here scale it)",
			how, len(known), example)
	}
	sc, _, err := m.Meta.EntityScaler(*entity, x)
	if err != nil {
		return nil, badRequest(field, "entity %q: scaling by the rows sent: %s", *entity, err)
	}
	return sc, nil
}

func instancesToRows(inst [][]float64, d, maxInstances int, field string) ([]float32, int, error) {
	if len(inst) == 0 {
		return nil, 0, badRequest(field, "is empty")
	}
	if len(inst) > maxInstances {
		return nil, 0, badRequest(field, "has %d instances; at most %d per request", len(inst), maxInstances)
	}
	x := make([]float32, 0, len(inst)*d)
	for i, row := range inst {
		if len(row) != d {
			return nil, 0, badRequest(fmt.Sprintf("%s[%d]", field, i), "has %d values; the model takes %d features", len(row), d)
		}
		for j, v := range row {
			if err := checkValue(v); err != nil {
				return nil, 0, badRequest(fmt.Sprintf("%s[%d][%d]", field, i, j), "%s", err)
			}
			x = append(x, float32(v))
		}
	}
	return x, len(inst), nil
}

func checkValue(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
		return errors.New("not a finite float32 number")
	}
	return nil
}

func recordsToRows(recs []map[string]json.RawMessage, features []string, maxInstances int) ([]float32, int, error) {
	if len(recs) == 0 {
		return nil, 0, badRequest("records", "is empty")
	}
	if len(recs) > maxInstances {
		return nil, 0, badRequest("records", "has %d records; at most %d per request", len(recs), maxInstances)
	}
	x := make([]float32, 0, len(recs)*len(features))
	for i, rec := range recs {
		for name := range rec {
			if !slices.Contains(features, name) {
				return nil, 0, badRequest(fmt.Sprintf("records[%d].%s", i, name), "unknown column (model features: %s)", strings.Join(features, ", "))
			}
		}
		for _, f := range features {
			raw, ok := rec[f]
			if !ok {
				return nil, 0, badRequest(fmt.Sprintf("records[%d]", i), "missing column %q", f)
			}
			var v float64
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, 0, badRequest(fmt.Sprintf("records[%d].%s", i, f), "%s is not a number", raw)
			}
			if err := checkValue(v); err != nil {
				return nil, 0, badRequest(fmt.Sprintf("records[%d].%s", i, f), "%s", err)
			}
			x = append(x, float32(v))
		}
	}
	return x, len(recs), nil
}

// locateJSONError turns encoding/json's errors into messages a client can act on.
func locateJSONError(body []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := position(body, se.Offset)
		return badRequest("", "malformed JSON at line %d, column %d: %s", line, col, se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		// Field paths name the field but not the index; find the element by offset.
		if idx := elementPath(body, te.Offset); idx != "" {
			field = idx
		}
		return badRequest(field, "got %s, want %s", te.Value, describeType(te.Type.String()))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "body is empty or cut short")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return badRequest("", "%s (want \"instances\" or \"records\")", strings.TrimPrefix(err.Error(), "json: "))
	}
	return badRequest("", "malformed JSON: %v", err)
}

func describeType(t string) string {
	switch t {
	case "float64":
		return "a number"
	case "[]float64":
		return "an array of numbers"
	case "[][]float64":
		return "an array of arrays of numbers"
	}
	return t
}

func position(body []byte, off int64) (line, col int) {
	line, col = 1, 1
	for _, b := range body[:min(int(off), len(body))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// elementPath finds the array path (e.g. instances[2][5]) of the value that ends at
// offset off, by scanning the JSON text up to it.
func elementPath(body []byte, off int64) string {
	type frame struct {
		array bool
		index int
		key   string
	}
	var stack []frame
	inString, escaped := false, false
	var key []byte
	var lastString []byte
	end := min(int(off), len(body))
	for i := 0; i < end; i++ {
		c := body[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				lastString = key
			default:
				key = append(key, c)
			}
			continue
		}
		switch c {
		case '"':
			inString, key = true, key[:0:0]
		case ':':
			if n := len(stack); n > 0 && !stack[n-1].array {
				stack[n-1].key = string(lastString)
			}
		case '[':
			stack = append(stack, frame{array: true})
		case '{':
			stack = append(stack, frame{})
		case ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].array {
				stack[n-1].index++
			}
		}
	}
	var b strings.Builder
	for _, f := range stack {
		if f.array {
			fmt.Fprintf(&b, "[%d]", f.index)
		} else if f.key != "" {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
	}
	return b.String()
}
