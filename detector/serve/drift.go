package serve

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/drift"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/watch"
)

// newMonitor measures the drift of what m is asked to score. Image models measure their
// scores only: a PSI per pixel says little and would export hundreds of series.
func newMonitor(meta artifact.Metadata, window int) *drift.Monitor {
	var ref drift.Reference
	if meta.Image == nil {
		ref.Features = drift.FromSummary(meta.Data)
	}
	if c := meta.Calibration; c != nil {
		ref.Scores = c.Scores
	}
	return drift.NewMonitor(ref, window)
}

// observe hands rows a request had scored to the drift monitor of the model that
// scored them, and to the shadow model.
func (s *Server) observe(l *loaded, rows requestRows, scored []scoring.Scored) {
	scores := make([]float64, len(scored))
	for i, sc := range scored {
		scores[i] = sc.Score
	}
	l.drift.Observe(rows.x, scores)
	if sh := s.shadow.Load(); sh != nil && sh.stats.Incompatible == "" {
		sh.offer(shadowJob{x: rows.x, times: rows.times, entity: rows.entity, scored: scored})
	}
}

// Observe takes what the watch loop scored (runs of RunRows rows each in their own
// units, of its entities, and the results of their newest rows) into the drift
// measures and to the shadow model, when its model is still the model in service.
func (s *Server) Observe(o watch.Observation) {
	m, runs, results := o.Model, o.Runs, o.Results
	l := s.current.Load()
	if l == nil || l.model != m {
		return
	}
	f, w := len(m.Meta.Features), scoring.RunRows(m)
	rows := make([]float32, 0, len(results)*f)
	scores := make([]float64, len(results))
	scored := make([]scoring.Scored, len(results))
	for k, r := range results {
		last := (k*w + w - 1) * f
		rows = append(rows, runs[last:last+f]...)
		scores[k], scored[k] = r.Score, r.Scored
	}
	l.drift.Observe(rows, scores)
	if sh := s.shadow.Load(); sh != nil && sh.stats.Incompatible == "" {
		sh.offer(shadowJob{x: runs, runs: len(results), at: o.At, keys: o.Keys, prepare: o.Prepare, scored: scored})
	}
}

// Drift measures the drift of the model in service now; ok is false without one.
func (s *Server) Drift() (version string, r drift.Report, ok bool) {
	l := s.current.Load()
	if l == nil {
		return "", drift.Report{}, false
	}
	return l.version, l.drift.Report(), true
}

// driftCollector exports the drift of the model in service, measured when scraped.
type driftCollector struct {
	s                    *Server
	feature, score, rows *prometheus.Desc
}

func newDriftCollector(s *Server) *driftCollector {
	return &driftCollector{s: s,
		feature: prometheus.NewDesc("kadet_feature_drift",
			"Population stability index of each feature over the drift window against the training rows (above 0.25: shifted).", []string{"feature"}, nil),
		score: prometheus.NewDesc("kadet_score_drift",
			"Kolmogorov-Smirnov statistic of the scores in the drift window against the calibration scores (0 same, 1 disjoint).", nil, nil),
		rows: prometheus.NewDesc("kadet_drift_window_rows",
			"Rows in the drift window (the measures are noisy until it is full).", nil, nil),
	}
}

func (c *driftCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.feature
	ch <- c.score
	ch <- c.rows
}

func (c *driftCollector) Collect(ch chan<- prometheus.Metric) {
	_, r, ok := c.s.Drift()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, float64(r.Rows))
	if r.Rows == 0 {
		return
	}
	for _, f := range r.Features {
		ch <- prometheus.MustNewConstMetric(c.feature, prometheus.GaugeValue, f.PSI, f.Name)
	}
	if r.ScoresCompared {
		ch <- prometheus.MustNewConstMetric(c.score, prometheus.GaugeValue, r.ScoreKS)
	}
}
