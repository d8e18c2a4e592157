package watch

import (
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// Reserved label names: an entity label of one of these names is exported as
// entity_<name>, since namespace and detector name the Detector and feature the
// feature.
var reserved = []string{"namespace", "detector", "feature"}

var (
	scoreDesc = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc("kadet_anomaly_score", "Newest row's score per entity (above 1 is an anomaly): the anomaly likelihood score with the model's likelihood stage, else the reconstruction error over the threshold.", labels, nil)
	}
	rawScoreDesc = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc("kadet_anomaly_raw_score", "Newest row's reconstruction error over the threshold, before the likelihood stage.", labels, nil)
	}
	anomalyDesc = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc("kadet_anomaly", "1 when the newest row's score is above 1, else 0.", labels, nil)
	}
	contributionDesc = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc("kadet_anomaly_contribution", "Share of the newest score of each of its top three features.", labels, nil)
	}
	expectedDesc = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc("kadet_expected_value", "The model's reconstruction of the newest row, per feature, in the metric's own units.", labels, nil)
	}
)

// Describe sends nothing: the entity labels depend on the model in service, so the
// Watcher is an unchecked collector.
func (w *Watcher) Describe(chan<- *prometheus.Desc) {}

// Collect exports each entity's newest result.
func (w *Watcher) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.entities) == 0 {
		return
	}
	// Every entity of one model has the same label names.
	var names []string
	for _, e := range w.entities {
		for n := range e.labels {
			names = append(names, n)
		}
		break
	}
	sort.Strings(names)
	labelNames := []string{"namespace", "detector"}
	for _, n := range names {
		if slices.Contains(reserved, n) {
			labelNames = append(labelNames, "entity_"+n)
		} else {
			labelNames = append(labelNames, n)
		}
	}
	withFeature := append(slices.Clone(labelNames), "feature")
	score, rawScore, anomaly := scoreDesc(labelNames), rawScoreDesc(labelNames), anomalyDesc(labelNames)
	contribution, expected := contributionDesc(withFeature), expectedDesc(withFeature)
	values := make([]string, 0, len(labelNames)+1)
	for _, e := range w.entities {
		values = append(values[:0], w.opts.Namespace, w.opts.Detector)
		for _, n := range names {
			values = append(values, e.labels[n])
		}
		r := e.result
		ch <- prometheus.MustNewConstMetric(score, prometheus.GaugeValue, r.Score, values...)
		ch <- prometheus.MustNewConstMetric(rawScore, prometheus.GaugeValue, e.rawScore, values...)
		a := 0.0
		if r.Anomaly {
			a = 1
		}
		ch <- prometheus.MustNewConstMetric(anomaly, prometheus.GaugeValue, a, values...)
		if len(r.Shares) > 0 {
			for _, f := range topFeatures(e.features, r.Shares, TopFeatures) {
				ch <- prometheus.MustNewConstMetric(contribution, prometheus.GaugeValue,
					float64(r.Shares[slices.Index(e.features, f)]), append(values, f)...)
			}
		}
		for j, v := range r.Expected {
			ch <- prometheus.MustNewConstMetric(expected, prometheus.GaugeValue, float64(v), append(values, e.features[j])...)
		}
	}
}
