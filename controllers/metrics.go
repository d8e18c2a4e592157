package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// Per-Detector metrics on the manager's /metrics, for dashboards and alerts: the
// scoring pods export scores; the manager knows phases, thresholds and training.
var (
	detectorPhaseDesc = prometheus.NewDesc("kadet_detector_phase",
		"1 for the Detector's current phase.", []string{"namespace", "detector", "phase"}, nil)
	detectorStalledDesc = prometheus.NewDesc("kadet_detector_stalled",
		"1 while the Detector is Stalled, by reason (TrainingFailed, DataSourceNotFound, ...).", []string{"namespace", "detector", "reason"}, nil)
	detectorThresholdDesc = prometheus.NewDesc("kadet_detector_threshold",
		"The calibrated raw-score threshold of the Detector's newest model.", []string{"namespace", "detector"}, nil)
	detectorLossDesc = prometheus.NewDesc("kadet_detector_training_loss",
		"The last reported training loss of the Detector's current or last run.", []string{"namespace", "detector"}, nil)
	detectorEpochDesc = prometheus.NewDesc("kadet_detector_training_epoch",
		"The last reported epoch of the Detector's current or last run.", []string{"namespace", "detector"}, nil)
	modelVersionsDesc = prometheus.NewDesc("kadet_model_versions",
		"ModelVersions of the Detector (model files on its volume, once pruning has run).", []string{"namespace", "detector"}, nil)
	modelAgeDesc = prometheus.NewDesc("kadet_model_age_seconds",
		"Age of the model the Detector serves, from its training's end.", []string{"namespace", "detector"}, nil)
)

// statusCollector publishes every Detector's status when scraped, read from the
// manager's cache. So the series are the status: a former phase or stall reason goes
// with it, a deleted Detector's series with the Detector, a restarted manager has them
// before its first pass, and nothing is kept per Detector between scrapes (gauges set
// by each pass held 1.7 KB a Detector, 17 MB at 10,000).
type statusCollector struct {
	// list returns the Detectors and ModelVersions of every namespace.
	list func(context.Context) ([]kadetv1.Detector, []kadetv1.ModelVersion, error)
	// elected is closed once this replica leads: a standby's cache holds the same
	// Detectors, and publishing them twice would double every sum over replicas.
	elected <-chan struct{}
	now     func() time.Time
}

// newStatusCollector reads from reader, the manager's cache; the lists share its
// objects rather than copy them, and are only read.
func newStatusCollector(reader client.Reader, elected <-chan struct{}, now func() time.Time) *statusCollector {
	return &statusCollector{elected: elected, now: now, list: func(ctx context.Context) ([]kadetv1.Detector, []kadetv1.ModelVersion, error) {
		dets, versions := &kadetv1.DetectorList{}, &kadetv1.ModelVersionList{}
		if err := reader.List(ctx, dets, client.UnsafeDisableDeepCopy); err != nil {
			return nil, nil, err
		}
		if err := reader.List(ctx, versions, client.UnsafeDisableDeepCopy); err != nil {
			return nil, nil, err
		}
		return dets.Items, versions.Items, nil
	}}
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{detectorPhaseDesc, detectorStalledDesc, detectorThresholdDesc, detectorLossDesc,
		detectorEpochDesc, modelVersionsDesc, modelAgeDesc} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.elected:
	default:
		return
	}
	// A scrape's own deadline is not passed to collectors; the cache answers from
	// memory once it has synced, and this bounds the wait for its first lists.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dets, versions, err := c.list(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(detectorPhaseDesc, err)
		return
	}
	type detKey struct{ namespace, name string }
	type versionKey struct{ namespace, detector, version string }
	// The served model's age is in the status, unless an older version is served
	// (pinned, or the newest held back by the promotion gate): then it is that
	// ModelVersion's.
	older := map[versionKey]time.Time{}
	for i := range dets {
		s := &dets[i].Status
		if s.Model != nil && s.ServedVersion != "" && s.ServedVersion != s.Model.Version {
			older[versionKey{dets[i].Namespace, dets[i].Name, s.ServedVersion}] = time.Time{}
		}
	}
	counts := make(map[detKey]int, len(dets))
	for i := range versions {
		v := &versions[i]
		counts[detKey{v.Namespace, v.Spec.Detector}]++
		k := versionKey{v.Namespace, v.Spec.Detector, v.Spec.Version}
		if _, ok := older[k]; ok && v.Spec.TrainedAt != nil {
			older[k] = v.Spec.TrainedAt.Time
		}
	}
	now := c.now()
	for i := range dets {
		d := &dets[i]
		ns, name, s := d.Namespace, d.Name, &d.Status
		// Sorted by name, as the registry wants them: detector, namespace, then
		// phase or reason.
		labels := []*dto.LabelPair{labelPair("detector", name), labelPair("namespace", ns)}
		gauge := func(desc *prometheus.Desc, v float64) { ch <- &detectorGauge{desc: desc, labels: labels, value: v} }
		gaugeBy := func(desc *prometheus.Desc, label, value string) {
			ch <- &detectorGauge{desc: desc, labels: []*dto.LabelPair{labels[0], labels[1], labelPair(label, value)}, value: 1}
		}
		if s.Phase != "" {
			gaugeBy(detectorPhaseDesc, "phase", string(s.Phase))
		}
		if stalled := apimeta.FindStatusCondition(s.Conditions, kadetv1.StalledCondition); stalled != nil && stalled.Status == "True" {
			gaugeBy(detectorStalledDesc, "reason", stalled.Reason)
		}
		if t := s.Training; t != nil {
			gauge(detectorEpochDesc, float64(t.Epoch))
			if t.Loss != nil {
				gauge(detectorLossDesc, *t.Loss)
			}
		}
		gauge(modelVersionsDesc, float64(counts[detKey{ns, name}]))
		m := s.Model
		if m == nil {
			continue
		}
		gauge(detectorThresholdDesc, m.Threshold)
		var at time.Time
		switch s.ServedVersion {
		case "", m.Version:
			if m.TrainedAt != nil {
				at = m.TrainedAt.Time
			}
		default:
			at = older[versionKey{ns, name, s.ServedVersion}]
		}
		if !at.IsZero() {
			gauge(modelAgeDesc, now.Sub(at).Seconds())
		}
	}
}

// detectorGauge is one series of a Detector at a scrape. Its namespace and detector
// label pairs are made once for all the Detector's series and shared, read-only as
// the registry's contract has them: prometheus.MustNewConstMetric makes each series
// its own (a scrape of 10,000 Detectors allocated 48 MB that way).
type detectorGauge struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
}

func (g *detectorGauge) Desc() *prometheus.Desc { return g.desc }

func (g *detectorGauge) Write(m *dto.Metric) error {
	m.Label, m.Gauge = g.labels, &dto.Gauge{Value: &g.value}
	return nil
}

func labelPair(name, value string) *dto.LabelPair { return &dto.LabelPair{Name: &name, Value: &value} }
