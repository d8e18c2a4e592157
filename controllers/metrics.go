package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// Per-Detector metrics on the manager's /metrics, for dashboards and alerts: the
// scoring pods export scores; the manager knows phases, thresholds and training.
var (
	detectorPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kadet_detector_phase", Help: "1 for the Detector's current phase.",
	}, []string{"namespace", "detector", "phase"})
	detectorStalled = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kadet_detector_stalled", Help: "1 while the Detector is Stalled, by reason (TrainingFailed, DataSourceNotFound, ...).",
	}, []string{"namespace", "detector", "reason"})
	detectorThreshold = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kadet_detector_threshold", Help: "The calibrated raw-score threshold of the Detector's newest model.",
	}, []string{"namespace", "detector"})
	detectorLoss = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kadet_detector_training_loss", Help: "The last reported training loss of the Detector's current or last run.",
	}, []string{"namespace", "detector"})
	detectorEpoch = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kadet_detector_training_epoch", Help: "The last reported epoch of the Detector's current or last run.",
	}, []string{"namespace", "detector"})
	modelVersions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kadet_model_versions", Help: "ModelVersions of the Detector (model files on its volume, once pruning has run).",
	}, []string{"namespace", "detector"})
	modelAge = &ageCollector{trained: map[[2]string]time.Time{}, desc: prometheus.NewDesc("kadet_model_age_seconds",
		"Age of the model the Detector serves, from its training's end.", []string{"namespace", "detector"}, nil)}
)

func init() {
	ctrlmetrics.Registry.MustRegister(detectorPhase, detectorStalled, detectorThreshold, detectorLoss, detectorEpoch, modelVersions, modelAge)
}

// ageCollector computes each served model's age when scraped, so it never goes stale
// between reconciles.
type ageCollector struct {
	mu      sync.Mutex
	trained map[[2]string]time.Time
	desc    *prometheus.Desc
}

func (c *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *ageCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.trained {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, time.Since(t).Seconds(), k[0], k[1])
	}
}

func (c *ageCollector) set(ns, name string, t *time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t == nil {
		delete(c.trained, [2]string{ns, name})
		return
	}
	c.trained[[2]string{ns, name}] = *t
}

// published remembers the phase and stall reason each Detector's series carry, so that
// replacing them deletes those series by their labels: deleting by a partial match
// scans every series of every Detector, and with 10,000 Detectors took half the
// manager's CPU.
var published = struct {
	sync.Mutex
	m map[[2]string][2]string // (namespace, detector) -> (phase, stall reason)
}{m: map[[2]string][2]string{}}

// recordMetrics publishes det's status, and what the pass learned of its versions: how
// many (when counted, versions >= 0) and the one served (nil when the pass stopped
// before choosing, which leaves the age as it was). A series the status no longer
// gives (a former phase or stall reason, a threshold without a model) goes.
func recordMetrics(det *kadetv1.Detector, versions int, served *kadetv1.ModelStatus) {
	ns, name := det.Namespace, det.Name
	phase, reason := string(det.Status.Phase), ""
	if c := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.StalledCondition); c != nil && c.Status == "True" {
		reason = c.Reason
	}
	published.Lock()
	prev, had := published.m[[2]string{ns, name}]
	published.m[[2]string{ns, name}] = [2]string{phase, reason}
	published.Unlock()
	if had && prev[0] != phase {
		detectorPhase.DeleteLabelValues(ns, name, prev[0])
	}
	if had && prev[1] != "" && prev[1] != reason {
		detectorStalled.DeleteLabelValues(ns, name, prev[1])
	}
	detectorPhase.WithLabelValues(ns, name, phase).Set(1)
	if reason != "" {
		detectorStalled.WithLabelValues(ns, name, reason).Set(1)
	}
	if m := det.Status.Model; m != nil {
		detectorThreshold.WithLabelValues(ns, name).Set(m.Threshold)
	} else {
		detectorThreshold.DeleteLabelValues(ns, name)
	}
	if versions >= 0 {
		modelVersions.WithLabelValues(ns, name).Set(float64(versions))
	}
	switch {
	case det.Status.Model == nil:
		modelAge.set(ns, name, nil)
	case served != nil && served.TrainedAt != nil:
		modelAge.set(ns, name, &served.TrainedAt.Time)
	}
	t := det.Status.Training
	if t != nil {
		detectorEpoch.WithLabelValues(ns, name).Set(float64(t.Epoch))
	} else {
		detectorEpoch.DeleteLabelValues(ns, name)
	}
	if t != nil && t.Loss != nil {
		detectorLoss.WithLabelValues(ns, name).Set(*t.Loss)
	} else {
		detectorLoss.DeleteLabelValues(ns, name)
	}
}

// forgetDetector drops every series of a deleted Detector.
func forgetDetector(ns, name string) {
	published.Lock()
	prev, had := published.m[[2]string{ns, name}]
	delete(published.m, [2]string{ns, name})
	published.Unlock()
	if had {
		detectorPhase.DeleteLabelValues(ns, name, prev[0])
		if prev[1] != "" {
			detectorStalled.DeleteLabelValues(ns, name, prev[1])
		}
	}
	for _, v := range []*prometheus.GaugeVec{detectorThreshold, detectorLoss, detectorEpoch, modelVersions} {
		v.DeleteLabelValues(ns, name)
	}
	modelAge.set(ns, name, nil)
}
