package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/pipeline"
)

// preallocLimit bounds what a request body's announced size alone makes the server
// allocate.
const preallocLimit = 64 << 10

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
	body, err := readAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), r.ContentLength)
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

// readAll is io.ReadAll starting from the size the client announced, up to
// preallocLimit (io.ReadAll grows from 512 bytes, copying an MNIST request four
// times). Beyond the limit the buffer grows with the bytes that actually arrive, so a
// client announcing 8 MiB and sending nothing holds 64 KiB, not 8 MiB.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, min(size+1, preallocLimit)) // +1: reading EOF needs no second buffer
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow (doubling) as data arrives
		}
	}
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
			resp.Results[i].Explanation = l.explainer.explain(shares[i*d : (i+1)*d])
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

// explainer names the features, or for images the regions of a 4 x 4 grid, that carry
// the largest shares of a record's reconstruction error. It is built once per loaded
// model: a profile of batch-1 MNIST requests spent more on formatting the 16 region
// names and sorting 784 shares per request than on scoring.
type explainer struct {
	labels []string // one per feature, or per image region
	region []int    // image pixel -> index into labels; nil for tabular features
}

func newExplainer(meta artifact.Metadata) *explainer {
	im := meta.Image
	if im == nil {
		return &explainer{labels: meta.Features}
	}
	rh, cw := (im.Rows+3)/4, (im.Cols+3)/4
	e := &explainer{region: make([]int, im.Rows*im.Cols)}
	index := map[int]int{} // grid cell -> label; a grid of tiny images has empty cells
	for p := range e.region {
		r, c := p/im.Cols/rh, p%im.Cols/cw
		k, ok := index[r*4+c]
		if !ok {
			k = len(e.labels)
			index[r*4+c] = k
			e.labels = append(e.labels, fmt.Sprintf("rows %d-%d, cols %d-%d",
				r*rh, min((r+1)*rh, im.Rows)-1, c*cw, min((c+1)*cw, im.Cols)-1))
		}
		e.region[p] = k
	}
	return e
}

// explain returns the topFeatures largest contributions, largest first (ties: the
// earlier feature first).
func (e *explainer) explain(shares []float32) []Contribution {
	var sums [16]float64
	values := func(k int) float64 { return float64(shares[k]) }
	n := len(shares)
	if e.region != nil {
		for p, v := range shares {
			sums[e.region[p]] += float64(v)
		}
		values = func(k int) float64 { return sums[k] }
		n = len(e.labels)
	}
	top := make([]Contribution, 0, topFeatures)
	for k := 0; k < n; k++ {
		v := values(k)
		if len(top) == topFeatures && v <= top[len(top)-1].Share {
			continue
		}
		i := len(top)
		if i < topFeatures {
			top = append(top, Contribution{})
		} else {
			i--
		}
		for i > 0 && top[i-1].Share < v {
			top[i] = top[i-1]
			i--
		}
		top[i] = Contribution{Feature: e.labels[k], Share: v}
	}
	return top
}
