package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
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
	writeJSON(w, http.StatusOK, modelMetadata{
		Name: l.name, Versions: []string{l.version}, Platform: "kadet",
		Inputs: []tensorMeta{{Name: "input", Datatype: "FP32", Shape: []int{-1, d}}},
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
	x, n, id, err := decodeInfer(body, len(l.model.Meta.Features), s.opts.MaxInstances)
	if err != nil {
		writeRequestError(w, err)
		return
	}
	scored, _, err := s.score(l, x)
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

// decodeInfer reads one input tensor of shape [n, d] (or [d] for one record).
func decodeInfer(body []byte, d, maxInstances int) ([]float32, int, string, error) {
	var req inferRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, 0, "", locateJSONError(body, err)
	}
	if len(req.Inputs) != 1 {
		return nil, 0, req.ID, badRequest("inputs", "has %d tensors; want exactly one of shape [n, %d]", len(req.Inputs), d)
	}
	in := req.Inputs[0]
	switch in.Datatype {
	case "FP32", "FP64", "INT32", "INT64":
	default:
		return nil, 0, req.ID, badRequest("inputs[0].datatype", "%q is not supported; use FP32 or FP64", in.Datatype)
	}
	n := 0
	switch {
	case len(in.Shape) == 2 && in.Shape[1] == d && in.Shape[0] > 0:
		n = in.Shape[0]
	case len(in.Shape) == 1 && in.Shape[0] == d:
		n = 1
	default:
		return nil, 0, req.ID, badRequest("inputs[0].shape", "is %v; the model takes [n, %d]", in.Shape, d)
	}
	if n > maxInstances {
		return nil, 0, req.ID, badRequest("inputs[0].shape", "has %d rows; at most %d per request", n, maxInstances)
	}
	flat, err := flatten(in.Data)
	if err != nil {
		return nil, 0, req.ID, badRequest("inputs[0].data", "%s", err)
	}
	if len(flat) != n*d {
		return nil, 0, req.ID, badRequest("inputs[0].data", "holds %d values; shape %v needs %d", len(flat), in.Shape, n*d)
	}
	x := make([]float32, len(flat))
	for i, v := range flat {
		if err := checkValue(v); err != nil {
			return nil, 0, req.ID, badRequest(fmt.Sprintf("inputs[0].data[%d]", i), "%s", err)
		}
		x[i] = float32(v)
	}
	return x, n, req.ID, nil
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
