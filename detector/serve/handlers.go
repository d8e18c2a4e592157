package serve

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// Handler routes every endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.instrument(pattern, h))
	}
	route("POST /v1/detect", s.detect)
	route("POST /v1/feedback", s.feedback)
	route("GET /healthz", s.live)
	route("GET /readyz", s.ready)
	route("GET /v2/health/live", s.live)
	route("GET /v2/health/ready", s.ready)
	route("GET /v2/models/{name}", s.modelMetadata)
	route("GET /v2/models/{name}/ready", s.modelReady)
	route("POST /v2/models/{name}/infer", s.infer)
	route("GET /{$}", s.page)
	route("GET /report.png", s.reportPNG)
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

func (s *Server) detect(w http.ResponseWriter, r *http.Request) {
	l := s.model(w)
	if l == nil {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	rows, err := decodeDetect(body, l.model.Meta.Features, s.opts.MaxInstances)
	if err == nil {
		err = needTimes(l.model, rows.times, "timestamps", `send "timestamps", one per row (seconds since 1970 or RFC 3339 text)`)
	}
	var sc *preprocess.Scaler
	if err == nil {
		sc, err = entityScaler(l.model, rows.entity, rows.x, "entity", `send "entity"`)
	}
	if err != nil {
		writeRequestError(w, err)
		return
	}
	n := rows.n
	scored, shares, err := s.score(l, rows, sc)
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
// The rows' times serve a model whose scores follow the hour; sc is their entity's
// scaler (nil: the model's).
func (s *Server) score(l *loaded, rows requestRows, sc *preprocess.Scaler) ([]scoring.Scored, []float32, error) {
	x := rows.x
	j := &job{l: l, x: x, times: rows.times, scaler: sc, n: len(x) / len(l.model.Meta.Features)}
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
	s.observe(l, rows, j.scored)
	return j.scored, j.shares, nil
}
