package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/kadet-dev/kadet/detector/preprocess"
)

// The Open Inference Protocol v2 (KServe's), so KServe-style clients can score with kadet.

// tensorMeta describes an input or output tensor.
type tensorMeta struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

type modelMetadata struct {
	Name     string       `json:"name"`
	Versions []string     `json:"versions"`
	Platform string       `json:"platform"`
	Inputs   []tensorMeta `json:"inputs"`
	Outputs  []tensorMeta `json:"outputs"`
}

// inferRequest is an OIP inference request; data may be flat or nested, as the
// protocol allows.
type inferRequest struct {
	ID     string        `json:"id,omitempty"`
	Inputs []inferTensor `json:"inputs"`
	// Parameters may name the rows' entity ("entity"), which a model that scales
	// each entity by its own statistics needs.
	Parameters struct {
		Entity *string `json:"entity"`
	} `json:"parameters"`
}

type inferTensor struct {
	Name     string          `json:"name"`
	Shape    []int           `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data"`
}

type outputTensor struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
	Data     any    `json:"data"`
}

type inferResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id,omitempty"`
	Outputs      []outputTensor `json:"outputs"`
}

// named checks the model name of the URL; it answers 404 for another model.
func (s *Server) named(w http.ResponseWriter, r *http.Request) *loaded {
	l := s.model(w)
	if l == nil {
		return nil
	}
	if name := r.PathValue("name"); name != l.name {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no model %q here; this server serves %q", name, l.name))
		return nil
	}
	return l
}

func (s *Server) modelMetadata(w http.ResponseWriter, r *http.Request) {
	l := s.named(w, r)
	if l == nil {
		return
	}
	d := len(l.model.Meta.Features)
	inputs := []tensorMeta{{Name: "input", Datatype: "FP32", Shape: []int{-1, d}}}
	if l.model.Meta.Seasons != nil {
		// Its scores follow the hour: each row's time is an input.
		inputs = append(inputs, tensorMeta{Name: timestampInput, Datatype: "INT64", Shape: []int{-1}})
	}
	writeJSON(w, http.StatusOK, modelMetadata{
		Name: l.name, Versions: []string{l.version}, Platform: "kadet",
		Inputs: inputs,
		Outputs: []tensorMeta{
			{Name: "score", Datatype: "FP64", Shape: []int{-1}},
			{Name: "raw", Datatype: "FP64", Shape: []int{-1}},
			{Name: "anomaly", Datatype: "BOOL", Shape: []int{-1}},
		},
	})
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) {
	if l := s.named(w, r); l != nil {
		writeJSON(w, http.StatusOK, map[string]any{"name": l.name, "ready": true})
	}
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	l := s.named(w, r)
	if l == nil {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	rows, id, err := decodeInfer(body, len(l.model.Meta.Features), s.opts.MaxInstances)
	if err == nil {
		err = needTimes(l.model, rows.times, "inputs", `add an input tensor "timestamp" of shape [n], each row's seconds since 1970 (INT64 or FP64)`)
	}
	var sc *preprocess.Scaler
	if err == nil {
		sc, err = entityScaler(l.model, rows.entity, rows.x, "parameters.entity", `set parameters.entity`)
	}
	if err != nil {
		writeRequestError(w, err)
		return
	}
	n := rows.n
	scored, _, err := s.score(l, rows, sc)
	if err != nil {
		writeScoreError(w, err)
		return
	}
	score, raw, anomaly := make([]float64, n), make([]float64, n), make([]bool, n)
	for i, sc := range scored {
		score[i], raw[i], anomaly[i] = sc.Score, sc.Raw, sc.Anomaly
	}
	writeJSON(w, http.StatusOK, inferResponse{
		ModelName: l.name, ModelVersion: l.version, ID: id,
		Outputs: []outputTensor{
			{Name: "score", Datatype: "FP64", Shape: []int{n}, Data: score},
			{Name: "raw", Datatype: "FP64", Shape: []int{n}, Data: raw},
			{Name: "anomaly", Datatype: "BOOL", Shape: []int{n}, Data: anomaly},
		},
	})
}

// timestampInput names the optional input tensor of each row's unix time.
const timestampInput = "timestamp"

// decodeInfer reads one input tensor of shape [n, d] (or [d] for one record) and,
// when the request has one, the tensor "timestamp" of shape [n]: the rows' unix times;
// and the request's id.
func decodeInfer(body []byte, d, maxInstances int) (requestRows, string, error) {
	var req inferRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return requestRows{}, "", locateJSONError(body, err)
	}
	at := slices.IndexFunc(req.Inputs, func(t inferTensor) bool { return t.Name == timestampInput })
	if len(req.Inputs) != 2 {
		at = -1 // a lone tensor is the rows, whatever its name
	}
	if len(req.Inputs) != 1 && at < 0 {
		return requestRows{}, req.ID, badRequest("inputs", "has %d tensors; want one of shape [n, %d], and optionally %q of shape [n]", len(req.Inputs), d, timestampInput)
	}
	in := 0
	if at >= 0 {
		in = 1 - at
	}
	rows := requestRows{entity: req.Parameters.Entity}
	var err error
	if rows.x, rows.n, err = decodeInput(req.Inputs[in], in, d, maxInstances); err != nil || at < 0 {
		return rows, req.ID, err
	}
	stamps, field := req.Inputs[at], fmt.Sprintf("inputs[%d]", at)
	if len(stamps.Shape) != 1 || stamps.Shape[0] != rows.n {
		return requestRows{}, req.ID, badRequest(field+".shape", "is %v; the timestamps of %d rows are [%d]", stamps.Shape, rows.n, rows.n)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(stamps.Data, &raw); err != nil {
		return requestRows{}, req.ID, badRequest(field+".data", "want an array of seconds since 1970")
	}
	rows.times, err = parseTimestamps(raw, rows.n, field+".data")
	return rows, req.ID, err
}

// decodeInput reads the rows of an input tensor of shape [n, d] (or [d]).
func decodeInput(in inferTensor, idx, d, maxInstances int) ([]float32, int, error) {
	field := fmt.Sprintf("inputs[%d]", idx)
	switch in.Datatype {
	case "FP32", "FP64", "INT32", "INT64":
	default:
		return nil, 0, badRequest(field+".datatype", "%q is not supported; use FP32 or FP64", in.Datatype)
	}
	n := 0
	switch {
	case len(in.Shape) == 2 && in.Shape[1] == d && in.Shape[0] > 0:
		n = in.Shape[0]
	case len(in.Shape) == 1 && in.Shape[0] == d:
		n = 1
	default:
		return nil, 0, badRequest(field+".shape", "is %v; the model takes [n, %d]", in.Shape, d)
	}
	if n > maxInstances {
		return nil, 0, badRequest(field+".shape", "has %d rows; at most %d per request", n, maxInstances)
	}
	flat, err := flatten(in.Data)
	if err != nil {
		return nil, 0, badRequest(field+".data", "%s", err)
	}
	if len(flat) != n*d {
		return nil, 0, badRequest(field+".data", "holds %d values; shape %v needs %d", len(flat), in.Shape, n*d)
	}
	x := make([]float32, len(flat))
	for i, v := range flat {
		if err := checkValue(v); err != nil {
			return nil, 0, badRequest(fmt.Sprintf("%s.data[%d]", field, i), "%s", err)
		}
		x[i] = float32(v)
	}
	return x, n, nil
}

// flatten reads row-major data given flat or nested to any depth.
func flatten(raw json.RawMessage) ([]float64, error) {
	var flat []float64
	if err := json.Unmarshal(raw, &flat); err == nil {
		return flat, nil
	}
	flat = nil // a failed Unmarshal may have filled part of it
	var nested []json.RawMessage
	if err := json.Unmarshal(raw, &nested); err != nil {
		return nil, fmt.Errorf("want an array of numbers")
	}
	for _, e := range nested {
		sub, err := flatten(e)
		if err != nil {
			return nil, err
		}
		flat = append(flat, sub...)
	}
	return flat, nil
}
