package controllers

import (
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
)

func init() {
	ctrlmetrics.Registry.MustRegister(detectorPhase, detectorStalled, detectorThreshold, detectorLoss, detectorEpoch)
}

// recordMetrics publishes det's status.
func recordMetrics(det *kadetv1.Detector) {
	forgetMetrics(det.Namespace, det.Name)
	ns, name := det.Namespace, det.Name
	detectorPhase.WithLabelValues(ns, name, string(det.Status.Phase)).Set(1)
	if c := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.StalledCondition); c != nil && c.Status == "True" {
		detectorStalled.WithLabelValues(ns, name, c.Reason).Set(1)
	}
	if m := det.Status.Model; m != nil {
		detectorThreshold.WithLabelValues(ns, name).Set(m.Threshold)
	}
	if t := det.Status.Training; t != nil {
		detectorEpoch.WithLabelValues(ns, name).Set(float64(t.Epoch))
		if t.Loss != nil {
			detectorLoss.WithLabelValues(ns, name).Set(*t.Loss)
		}
	}
}

// forgetMetrics drops every series of a Detector, when it is deleted or before its
// status is published again.
func forgetMetrics(ns, name string) {
	l := prometheus.Labels{"namespace": ns, "detector": name}
	for _, v := range []*prometheus.GaugeVec{detectorPhase, detectorStalled, detectorThreshold, detectorLoss, detectorEpoch} {
		v.DeletePartialMatch(l)
	}
}
