package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/pipeline"
)

// topFeatures is how many features (or image regions) an explanation names.
const topFeatures = 3

// Handler routes every endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.instrument(pattern, h))
	}
	route("POST /v1/detect", s.detect)
	route("GET /healthz", s.live)
	route("GET /readyz", s.ready)
	route("GET /v2/health/live", s.live)
	route("GET /v2/health/ready", s.ready)
	route("GET /v2/models/{name}", s.modelMetadata)
	route("GET /v2/models/{name}/ready", s.modelReady)
	route("POST /v2/models/{name}/infer", s.infer)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// statusWriter remembers the status code for the duration metric.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// instrument times a route and turns a panic into a 500 instead of a dropped connection.
func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic serving request", "route", route, "panic", fmt.Sprint(p))
				writeError(sw, http.StatusInternalServerError, "internal error")
			}
			s.metrics.duration.WithLabelValues(route, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
		}()
		h(sw, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// errorBody is every error response: what is wrong, and where when known.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func (s *Server) live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if reason := s.notReady(); reason != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

func (s *Server) notReady() string {
	switch {
	case s.draining.Load():
		return "shutting down"
	case s.current.Load() == nil:
		if s.opts.Version != "" {
			return "model version " + s.opts.Version + " is not loaded"
		}
		return "no model in " + s.opts.ModelDir
	}
	return ""
}

// model returns the model in service, or answers 503.
func (s *Server) model(w http.ResponseWriter) *loaded {
	l := s.current.Load()
	if l == nil {
		writeError(w, http.StatusServiceUnavailable, s.notReady())
	}
	return l
}

// readBody reads at most MaxBodyBytes, answering 413 beyond.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > s.opts.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, s.opts.MaxBodyBytes))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", s.opts.MaxBodyBytes))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return nil, false
	}
	return body, true
}

// writeScoreError answers 400 for rows the model cannot score as sent (too few rows
// for a sequence model's window), else 500.
func writeScoreError(w http.ResponseWriter, err error) {
	if data.IsInputError(err) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

func writeRequestError(w http.ResponseWriter, err error) {
	var re *RequestError
	if errors.As(err, &re) {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: re.Error(), Field: re.Field})
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

// Result is one record's answer.
type Result struct {
	pipeline.Scored
	Explanation []Contribution `json:"explanation,omitempty"`
}

// Contribution is a feature's (or an image region's) share of the reconstruction error.
type Contribution struct {
	Feature string  `json:"feature"`
	Share   float64 `json:"share"`
}

// ModelRef names the model that answered.
type ModelRef struct {
	Name      string  `json:"name"`
	Version   string  `json:"version"`
	Digest    string  `json:"digest"`
	Threshold float64 `json:"threshold"`
}

// DetectResponse is POST /v1/detect's answer.
type DetectResponse struct {
	Model   ModelRef `json:"model"`
	Results []Result `json:"results"`
}

func (s *Server) detect(w http.ResponseWriter, r *http.Request) {
	l := s.model(w)
	if l == nil {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	x, n, err := decodeDetect(body, l.model.Meta.Features, s.opts.MaxInstances)
	if err != nil {
		writeRequestError(w, err)
		return
	}
	scored, shares, err := s.score(l, x)
	if err != nil {
		writeScoreError(w, err)
		return
	}
	resp := DetectResponse{Model: ref(l), Results: make([]Result, n)}
	for i, sc := range scored {
		resp.Results[i] = Result{Scored: sc}
		if shares != nil {
			d := len(l.model.Meta.Features)
			resp.Results[i].Explanation = explain(l.model.Meta, shares[i*d:(i+1)*d])
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func ref(l *loaded) ModelRef {
	return ModelRef{Name: l.name, Version: l.version, Digest: l.model.Digest, Threshold: l.model.Meta.Threshold.Value}
}

// score runs the one scoring path, batched with concurrent requests, and counts what
// it scored. Explanations come from the same pass; a caller that needs none ignores them.
func (s *Server) score(l *loaded, x []float32) ([]pipeline.Scored, []float32, error) {
	j := &job{l: l, x: x, n: len(x) / len(l.model.Meta.Features)}
	s.batch.do(j)
	if j.err != nil {
		return nil, nil, j.err
	}
	s.metrics.records.Add(float64(len(j.scored)))
	anomalies := 0
	for _, sc := range j.scored {
		s.metrics.scores.Observe(sc.Score)
		if sc.Anomaly {
			anomalies++
		}
	}
	s.metrics.anomalies.Add(float64(anomalies))
	return j.scored, j.shares, nil
}

// explain names the features, or for images the regions of a 4 x 4 grid, that carry
// the largest shares of a record's reconstruction error.
func explain(meta artifact.Metadata, shares []float32) []Contribution {
	var all []Contribution
	if im := meta.Image; im != nil {
		rh, cw := (im.Rows+3)/4, (im.Cols+3)/4
		var regions [16]float64
		for p, v := range shares {
			regions[(p/im.Cols/rh)*4+p%im.Cols/cw] += float64(v)
		}
		for k, v := range regions {
			r0, c0 := k/4*rh, k%4*cw
			if r0 >= im.Rows || c0 >= im.Cols {
				continue
			}
			all = append(all, Contribution{Share: v, Feature: fmt.Sprintf("rows %d-%d, cols %d-%d",
				r0, min(r0+rh, im.Rows)-1, c0, min(c0+cw, im.Cols)-1)})
		}
	} else {
		for j, v := range shares {
			all = append(all, Contribution{Feature: meta.Features[j], Share: float64(v)})
		}
	}
	slices.SortFunc(all, func(a, b Contribution) int {
		switch {
		case a.Share > b.Share:
			return -1
		case a.Share < b.Share:
			return 1
		}
		return 0
	})
	return all[:min(topFeatures, len(all))]
}
