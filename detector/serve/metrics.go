package serve

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	duration     *prometheus.HistogramVec
	records      prometheus.Counter
	anomalies    prometheus.Counter
	scores       prometheus.Histogram
	modelInfo    *prometheus.GaugeVec
	loadFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kadet_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route and status code.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}, []string{"route", "code"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kadet_records_scored_total", Help: "Records scored.",
		}),
		anomalies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kadet_anomalies_total", Help: "Records scored as anomalies (score > 1).",
		}),
		scores: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kadet_score",
			Help:    "Normalised scores (raw / threshold; above 1 is an anomaly).",
			Buckets: []float64{.1, .25, .5, .75, .9, 1, 1.1, 1.5, 2, 5, 10},
		}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kadet_model_info", Help: "The model in service (value 1), by version and digest.",
		}, []string{"version", "digest"}),
		loadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kadet_model_load_failures_total", Help: "Model files refused at load (corrupt, truncated, mismatched).",
		}),
	}
	reg.MustRegister(m.duration, m.records, m.anomalies, m.scores, m.modelInfo, m.loadFailures)
	return m
}

func (m *metrics) setModel(version, digest string, prev *loaded) {
	if prev != nil {
		m.modelInfo.DeleteLabelValues(prev.version, prev.model.Digest)
	}
	m.modelInfo.WithLabelValues(version, digest).Set(1)
}
