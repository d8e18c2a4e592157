package serve

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/drift"
	"github.com/kadet-dev/kadet/detector/scoring"
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

// observe hands scored rows to the drift monitor of the model that scored them.
func observe(l *loaded, x []float32, scored []scoring.Scored) {
	scores := make([]float64, len(scored))
	for i, s := range scored {
		scores[i] = s.Score
	}
	l.drift.Observe(x, scores)
}

// Observe takes rows m scored outside a request (the watch loop's newest rows, in
// their own units) and their scores into the drift measures, when m is still the model
// in service.
func (s *Server) Observe(m *artifact.Model, x []float32, scores []float64) {
	if l := s.current.Load(); l != nil && l.model == m {
		l.drift.Observe(x, scores)
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
