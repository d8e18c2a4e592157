// Package serve is the scoring server: `detector serve`. It scores records over a REST
// API and the Open Inference Protocol v2, explains each score, exports Prometheus
// metrics, and swaps in new models from its model directory without dropping a request.
package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/drift"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// Options configure a Server.
type Options struct {
	// ModelDir holds one folder per model version.
	ModelDir string
	// Version pins a model version; empty serves the newest and follows new ones.
	Version string
	// Digest is the pinned version's digest as its ModelVersion records it: a file
	// that differs (replaced on the volume after training) is refused. Empty checks
	// nothing but the file's own digest.
	Digest string
	// Name is the model's name in the Open Inference Protocol; empty takes the name in
	// the model file.
	Name string
	// MaxBodyBytes bounds a request body (413 beyond).
	MaxBodyBytes int64
	// MaxInstances bounds the records of one request (400 beyond).
	MaxInstances int
	// ReloadInterval is how often the model directory is checked.
	ReloadInterval time.Duration
	// Logger defaults to slog's default.
	Logger *slog.Logger
	// Registry receives the metrics; nil makes a new one.
	Registry *prometheus.Registry
	// ShutdownDelay is how long the server keeps accepting requests after it is told
	// to stop, while /readyz already fails: load balancers and kube-proxy take a moment
	// to stop sending to a terminating pod, and a closed port in that moment is a
	// failed request during every rollout.
	ShutdownDelay time.Duration
	// ShadowVersion is a model version to score beside the served one on the same
	// rows, counted and exported, never answered with. It needs a pinned Version.
	ShadowVersion string
	// FeedbackDir is where POST /v1/feedback stores labelled marks (one file per
	// server, named FeedbackFile); empty refuses feedback.
	FeedbackDir, FeedbackFile string
	// MaxFeedbackFileBytes bounds this server's feedback file and MaxFeedbackBytes the
	// feedback folder (every server's files), so marks cannot fill the model volume or
	// the memory of the pods that read them all (429 beyond; defaults when 0).
	MaxFeedbackFileBytes, MaxFeedbackBytes int64
	// DriftWindow is how many recent rows drift is measured over (drift.DefaultWindow
	// when 0).
	DriftWindow int
}

// Defaults for Options.
const (
	DefaultMaxBodyBytes = 8 << 20
	DefaultMaxInstances = 10000
	// About 100,000 and 400,000 marks of a few features.
	DefaultMaxFeedbackFileBytes = 16 << 20
	DefaultMaxFeedbackBytes     = 64 << 20
	DefaultReloadInterval       = 5 * time.Second
)

// loaded is a model in service.
type loaded struct {
	model     *artifact.Model
	version   string
	name      string
	explainer *explainer
	drift     *drift.Monitor
}

// Server scores with the model it has loaded. Requests read the model through one
// atomic pointer, so a reload never blocks them and in-flight requests finish on the
// model they started with.
type Server struct {
	opts     Options
	log      *slog.Logger
	current  atomic.Pointer[loaded]
	draining atomic.Bool
	metrics  *metrics
	batch    *batcher
	shadow   atomic.Pointer[shadow]
	shadows  *shadowVecs
	// feedbackStore is nil without a feedback folder.
	feedbackStore *feedbackStore
	// failed remembers versions that did not load, so a bad file is reported once.
	failedMu sync.Mutex
	failed   map[string]bool
}

// New makes a server; call Reload (or Run) to load a model.
func New(opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxInstances <= 0 {
		opts.MaxInstances = DefaultMaxInstances
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = DefaultReloadInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, log: opts.Logger, metrics: newMetrics(opts.Registry), failed: map[string]bool{}}
	opts.Registry.MustRegister(newDriftCollector(s))
	s.shadows = newShadowVecs(opts.Registry)
	if opts.FeedbackDir != "" {
		marks := prometheus.NewCounter(prometheus.CounterOpts{Name: "kadet_feedback_marks_total", Help: "Labelled marks stored by POST /v1/feedback."})
		opts.Registry.MustRegister(marks)
		s.feedbackStore = &feedbackStore{dir: opts.FeedbackDir, file: cmp.Or(opts.FeedbackFile, "feedback") + contract.FeedbackFileSuffix, marks: marks,
			maxFile: cmp.Or(opts.MaxFeedbackFileBytes, DefaultMaxFeedbackFileBytes), maxTotal: cmp.Or(opts.MaxFeedbackBytes, DefaultMaxFeedbackBytes)}
	}
	s.batch = newBatcher(func(j *job) ([]scoring.Scored, []float32, error) {
		return scoring.ScoreExplained(j.l.model, j.scaler, j.x, j.times)
	})
	return s
}

// Model returns the model in service, or nil.
func (s *Server) Model() *artifact.Model {
	if l := s.current.Load(); l != nil {
		return l.model
	}
	return nil
}

// Reload loads the pinned version, or the newest one when it is not the one in
// service. A file that fails verification is logged and counted, and the model in
// service keeps serving.
func (s *Server) Reload() error {
	version := s.opts.Version
	if version == "" {
		vs, err := artifact.Versions(s.opts.ModelDir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if len(vs) == 0 {
			return nil // nothing trained yet
		}
		version = vs[len(vs)-1]
	}
	if cur := s.current.Load(); cur != nil && cur.version == version {
		return s.reloadShadow()
	}
	// The pinned version may not have synced to this volume yet.
	m, err := s.load(version, "model", s.opts.Version != "")
	if m == nil {
		return err
	}
	name := s.opts.Name
	if name == "" {
		name = m.Meta.Name
	}
	if name == "" {
		name = "kadet"
	}
	prev := s.current.Swap(&loaded{model: m, version: version, name: name, explainer: newExplainer(m.Meta), drift: newMonitor(m.Meta, s.opts.DriftWindow)})
	s.metrics.setModel(version, m.Digest, prev)
	s.log.Info("serving model", "version", version, "digest", m.Digest, "threshold", m.Meta.Threshold.Value)
	return s.reloadShadow()
}

// load reads version's model file and remembers a file that fails verification, so it
// is logged and counted once. It returns no model and no error when there is nothing to
// load yet: a version refused before, or, with waitForSync, a file not on this volume
// yet.
func (s *Server) load(version, what string, waitForSync bool) (*artifact.Model, error) {
	s.failedMu.Lock()
	known := s.failed[version]
	s.failedMu.Unlock()
	if known {
		return nil, nil
	}
	path, err := artifact.Path(s.opts.ModelDir, version)
	if err != nil {
		return nil, err
	}
	m, err := artifact.Load(path)
	if err == nil && what == "model" && s.opts.Digest != "" && m.Digest != s.opts.Digest {
		err = fmt.Errorf("the file's digest is %s, but the version was recorded with %s at training: the file changed since, and is not served",
			m.Digest, s.opts.Digest)
	}
	if err == nil {
		return m, nil
	}
	if errors.Is(err, os.ErrNotExist) && waitForSync {
		return nil, nil
	}
	s.failedMu.Lock()
	s.failed[version] = true
	s.failedMu.Unlock()
	s.metrics.loadFailures.Inc()
	s.log.Error("refusing "+what, "version", version, "error", err.Error())
	return nil, fmt.Errorf("%s %s: %w", what, version, err)
}

// reloadShadow loads the shadow version once the served model is in and the shadow's
// file is on the volume. A file that fails verification is refused as a served one
// would be; the served model is not affected.
func (s *Server) reloadShadow() error {
	version := s.opts.ShadowVersion
	cur := s.current.Load()
	if version == "" || cur == nil || s.shadow.Load() != nil || version == cur.version {
		return nil
	}
	m, err := s.load(version, "shadow model", true)
	if m == nil {
		return err
	}
	sh := &shadow{l: &loaded{model: m, version: version, name: cur.name}, since: time.Now().UTC(),
		queue: make(chan shadowJob, shadowQueue), metrics: s.shadows.forVersion(version)}
	sh.stats = ShadowStats{Version: version, Since: sh.since, Incompatible: compatible(cur.model, m)}
	if c := m.Meta.Calibration; c != nil {
		sh.stats.ExpectedAnomalyRate = c.ExpectedAnomalyRate
	}
	go sh.run()
	s.shadow.Store(sh)
	if sh.stats.Incompatible != "" {
		s.log.Warn("shadow model cannot score the served model's rows", "version", version, "reason", sh.stats.Incompatible)
	} else {
		s.log.Info("scoring in shadow", "version", version, "digest", m.Digest, "threshold", m.Meta.Threshold.Value)
	}
	return nil
}

// Shadow returns the shadow model's counts, with its comparison on labelled feedback
// when there is enough; ok is false without one.
func (s *Server) Shadow() (ShadowStats, *contract.FeedbackComparison, bool) {
	sh := s.shadow.Load()
	cur := s.current.Load()
	if sh == nil || cur == nil {
		return ShadowStats{}, nil, false
	}
	st := sh.Stats()
	if st.Incompatible != "" {
		return st, nil, true
	}
	return st, s.compareOnFeedback(cur, sh.l), true
}

// Run serves on addr until ctx ends, then reports not ready, keeps serving for the
// shutdown delay, stops accepting and lets in-flight requests finish (up to drain).
func (s *Server) Run(ctx context.Context, addr string, drain time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln, drain)
}

// Serve is Run on a listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	if err := s.Reload(); err != nil {
		s.log.Error("initial model load", "error", err.Error())
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String())
	tick := time.NewTicker(s.opts.ReloadInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			_ = s.Reload() // logged inside; the model in service stays
		case <-ctx.Done():
			s.draining.Store(true)
			s.log.Info("draining", "delay", s.opts.ShutdownDelay.String(), "timeout", drain.String())
			select {
			case err := <-errc:
				return err
			case <-time.After(s.opts.ShutdownDelay):
			}
			sctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			return srv.Shutdown(sctx)
		}
	}
}
