package controllers

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// The part conditions (DataSourceReady, Trained, Serving) are computed by the pure
// functions below from what one pass observed in the cluster, never from the
// Detector's earlier conditions, so a condition cannot disagree with what the step
// that sets it just saw.

// dataObservation is what reconcileDataSource saw.
type dataObservation struct {
	name string
	// dataSource is nil when it does not exist.
	dataSource *kadetv1.DataSource
	// missingData says what of the data the controller reads itself (a ConfigMap key)
	// is missing, or is empty.
	missingData string
	// incompatible says why the model cannot train on this data, or is empty.
	incompatible string
}

func dataSourceReadyCondition(det *kadetv1.Detector, o dataObservation) metav1.Condition {
	c := metav1.Condition{Type: kadetv1.DataSourceReadyCondition, ObservedGeneration: det.Generation}
	ds := o.dataSource
	var ready *metav1.Condition
	if ds != nil {
		ready = readyCondition(ds)
	}
	switch {
	case ds == nil:
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonDataSourceNotFound
		c.Message = fmt.Sprintf("DataSource %q not found in namespace %q: create it or fix spec.dataSourceRef.name", o.name, det.Namespace)
	case ready == nil || ready.ObservedGeneration != ds.Generation:
		c.Status, c.Reason = metav1.ConditionUnknown, kadetv1.ReasonProgressing
		c.Message = "DataSource " + ds.Name + " has not been checked yet"
	case ready.Status != metav1.ConditionTrue && (ready.Reason == kadetv1.ReasonServerUnreachable || ready.Reason == kadetv1.ReasonNoSeries):
		// The server may answer, or the metric appear, at the DataSource's next check:
		// wait, do not stall.
		c.Status, c.Reason = metav1.ConditionUnknown, kadetv1.ReasonDataSourceNotReady
		c.Message = "DataSource " + ds.Name + " is not ready yet: " + ready.Message
	case ready.Status != metav1.ConditionTrue:
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonDataSourceNotReady
		c.Message = "DataSource " + ds.Name + " is not ready: " + ready.Message
	case o.missingData != "":
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonDataSourceNotReady
		c.Message = "DataSource " + ds.Name + " is not ready: " + o.missingData
	case o.incompatible != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kadetv1.ReasonIncompatible, o.incompatible
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, kadetv1.ReasonSucceeded, "DataSource "+ds.Name+" is ready"
	}
	return c
}

// trainingObservation is what reconcileTraining saw of the run for the current spec.
type trainingObservation struct {
	hash string
	// job is the training Job's name; empty when the current spec's model exists.
	job string
	// failure says why the run failed (the Job failed, or succeeded without a result).
	failure string
	// retry says which attempt of a Job that is still running this is and why the
	// last one failed; empty on its first attempt.
	retry string
	// insufficient is set when the run found too few rows; retryAt is when enough
	// should have arrived.
	insufficient *contract.InsufficientData
	retryAt      time.Time
}

func trainedCondition(det *kadetv1.Detector, o trainingObservation) metav1.Condition {
	c := metav1.Condition{Type: kadetv1.TrainedCondition, ObservedGeneration: det.Generation}
	switch m := det.Status.Model; {
	case m != nil && m.SpecHash == o.hash:
		c.Status, c.Reason = metav1.ConditionTrue, kadetv1.ReasonModelTrained
		c.Message = "model " + m.Version + " is trained on the current spec"
	case o.insufficient != nil:
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonInsufficientData
		c.Message = fmt.Sprintf("not enough data to train yet: %s; trying again at %s", o.insufficient.Message(),
			o.retryAt.UTC().Format(time.RFC3339))
	case o.failure != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kadetv1.ReasonTrainingFailed, o.failure
	default:
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonTraining
		c.Message = fmt.Sprintf("training Job %s is running", o.job)
		if ts := det.Status.Training; ts != nil && ts.Job == o.job && ts.Epoch > 0 {
			c.Message = fmt.Sprintf("training Job %s: epoch %d/%d", o.job, ts.Epoch, ts.Epochs)
		}
		if o.retry != "" {
			c.Message += " (" + o.retry + ")"
		}
	}
	return c
}

// servingObservation is what reconcileScoring saw of the scoring Deployment; nil
// deployment when there is no model to serve.
type servingObservation struct {
	deployment *appsv1.Deployment
	// model is the one the Deployment is to serve.
	model *kadetv1.ModelStatus
}

func servingCondition(det *kadetv1.Detector, o servingObservation) metav1.Condition {
	c := metav1.Condition{Type: kadetv1.ServingCondition, ObservedGeneration: det.Generation}
	want := ptr.Deref(det.Spec.Scoring.Replicas, 1)
	switch model := o.model; {
	case model == nil || o.deployment == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kadetv1.ReasonNoModel, "no model has been trained yet"
	case want == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kadetv1.ReasonScaledToZero, "scoring.replicas is 0"
	case !rolledOut(o.deployment, want) || o.deployment.Spec.Template.Annotations[builders.AnnotationModelVersion] != model.Version:
		// The copy read after applying may be the cache's older one: its template
		// must already name the model, or its status says nothing about it.
		s := o.deployment.Status
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonRollingOut
		c.Message = fmt.Sprintf("rolling out model %s: %d/%d scoring replicas updated and available",
			model.Version, min(s.UpdatedReplicas, s.AvailableReplicas), want)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, kadetv1.ReasonModelServed
		c.Message = fmt.Sprintf("model %s served by %d replicas", model.Version, want)
	}
	return c
}

// rolledOut is true when the Deployment controller has seen the newest template and
// every replica runs it: no old pod remains.
func rolledOut(dep *appsv1.Deployment, want int32) bool {
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas == want &&
		s.AvailableReplicas == want && s.Replicas == want
}

// alertingObservation is what reconcileAlerting saw and did.
type alertingObservation struct {
	// enabled says the Detector alerts (spec.alerting, on Prometheus).
	enabled bool
	// missingCRDs are the prometheus-operator CRDs not installed.
	missingCRDs []string
	// rule and monitor are the names of the PrometheusRule and PodMonitor applied.
	rule, monitor string
	// gate says why the rule is held back ("" when it is not): alertGate.
	gate string
}

// alertGate says why det's alert is held back: the backtest bt of the served version
// flagged more episodes a day than spec.alerting.maxEpisodesPerDay. "" when it is not
// (no gate, no backtest figure, or within it).
func alertGate(det *kadetv1.Detector, version string, bt *kadetv1.BacktestSummary) string {
	limit := det.Spec.Alerting.MaxEpisodesPerDay
	if limit == nil || bt == nil || bt.Skipped != "" || bt.Start == nil || bt.End == nil || bt.EpisodesPerDay <= *limit {
		return ""
	}
	episodes := fmt.Sprintf("%d episodes", bt.Episodes)
	if bt.Episodes == 1 {
		episodes = "1 episode"
	}
	return fmt.Sprintf("model %s flagged %.2f episodes a day in its backtest (%s, %s to %s), more than spec.alerting.maxEpisodesPerDay %g",
		version, bt.EpisodesPerDay, episodes, bt.Start.UTC().Format(time.RFC3339), bt.End.UTC().Format(time.RFC3339), *limit)
}

// alertingCondition is the Alerting condition after what o saw, nil when the Detector
// does not alert (the condition goes).
func alertingCondition(det *kadetv1.Detector, o alertingObservation) *metav1.Condition {
	if !o.enabled {
		return nil
	}
	c := &metav1.Condition{Type: kadetv1.AlertingCondition, ObservedGeneration: det.Generation}
	if len(o.missingCRDs) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonPrometheusOperatorMissing
		c.Message = fmt.Sprintf("CRD %s not installed: no PrometheusRule or PodMonitor is created (install the prometheus-operator CRDs, or set spec.alerting.enabled: false); scores are exported on the scoring pods' /metrics all the same",
			strings.Join(o.missingCRDs, " and "))
		return c
	}
	if o.gate != "" {
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonBacktestTooNoisy
		c.Message = fmt.Sprintf("%s: PrometheusRule %s is held back; PodMonitor %s applied, scores exported all the same", o.gate, o.rule, o.monitor)
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, kadetv1.ReasonAlertsConfigured
	c.Message = fmt.Sprintf("PrometheusRule %s (alert %s) and PodMonitor %s applied", o.rule, builders.AlertName, o.monitor)
	return c
}
