package controllers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

func detectorAt(gen int64) *kadetv1.Detector {
	return &kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Generation: gen}}
}

func dataSourceWith(gen int64, ready *metav1.Condition) *kadetv1.DataSource {
	ds := &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "src", Generation: gen}}
	if ready != nil {
		ds.Status.Conditions = []metav1.Condition{*ready}
	}
	return ds
}

// checkCondition compares a computed condition with the expected status, reason and
// a part of the message, and checks it carries the Detector's generation.
func checkCondition(t *testing.T, c metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	if c.Type != typ || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg) || c.ObservedGeneration != 7 {
		t.Errorf("condition = %s %s/%s %q (gen %d); want %s %s/%s containing %q (gen 7)",
			c.Type, c.Status, c.Reason, c.Message, c.ObservedGeneration, typ, status, reason, msg)
	}
}

func TestDataSourceReadyCondition(t *testing.T) {
	ready := &metav1.Condition{Type: kadetv1.ReadyCondition, Status: metav1.ConditionTrue, ObservedGeneration: 2}
	notReady := &metav1.Condition{Type: kadetv1.ReadyCondition, Status: metav1.ConditionFalse, ObservedGeneration: 2,
		Message: `PersistentVolumeClaim "data" not found`}
	tests := []struct {
		name   string
		obs    dataObservation
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		{"not found", dataObservation{name: "src"}, metav1.ConditionFalse, kadetv1.ReasonDataSourceNotFound,
			`DataSource "src" not found in namespace "ns"`},
		{"never checked", dataObservation{name: "src", dataSource: dataSourceWith(2, nil)}, metav1.ConditionUnknown,
			kadetv1.ReasonProgressing, "has not been checked yet"},
		{"checked at an older generation", dataObservation{name: "src", dataSource: dataSourceWith(3, ready)},
			metav1.ConditionUnknown, kadetv1.ReasonProgressing, "has not been checked yet"},
		{"server not answering", dataObservation{name: "src", dataSource: dataSourceWith(2, &metav1.Condition{
			Type: kadetv1.ReadyCondition, Status: metav1.ConditionFalse, Reason: kadetv1.ReasonServerUnreachable, ObservedGeneration: 2,
			Message: "Prometheus at http://p:9090 did not answer"})}, metav1.ConditionUnknown, kadetv1.ReasonDataSourceNotReady,
			"DataSource src is not ready yet: Prometheus at http://p:9090 did not answer"},
		{"metric not scraped yet", dataObservation{name: "src", dataSource: dataSourceWith(2, &metav1.Condition{
			Type: kadetv1.ReadyCondition, Status: metav1.ConditionFalse, Reason: kadetv1.ReasonNoSeries, ObservedGeneration: 2,
			Message: "query q returns no series now"})}, metav1.ConditionUnknown, kadetv1.ReasonDataSourceNotReady,
			"DataSource src is not ready yet: query q returns no series now"},
		{"not ready", dataObservation{name: "src", dataSource: dataSourceWith(2, notReady)}, metav1.ConditionFalse,
			kadetv1.ReasonDataSourceNotReady, `DataSource src is not ready: PersistentVolumeClaim "data" not found`},
		// The DataSource says ready, but the key the controller hashes went away since.
		{"ready but its data is missing", dataObservation{name: "src", dataSource: dataSourceWith(2, ready),
			missingData: `ConfigMap "tx" has no key "tx.csv"`}, metav1.ConditionFalse, kadetv1.ReasonDataSourceNotReady,
			`DataSource src is not ready: ConfigMap "tx" has no key "tx.csv"`},
		{"incompatible", dataObservation{name: "src", dataSource: dataSourceWith(2, ready), incompatible: "needs labels"},
			metav1.ConditionFalse, kadetv1.ReasonIncompatible, "needs labels"},
		{"ready", dataObservation{name: "src", dataSource: dataSourceWith(2, ready)}, metav1.ConditionTrue,
			kadetv1.ReasonSucceeded, "DataSource src is ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dataSourceReadyCondition(detectorAt(7), tt.obs)
			checkCondition(t, c, kadetv1.DataSourceReadyCondition, tt.status, tt.reason, tt.msg)
		})
	}
}

func TestTrainedCondition(t *testing.T) {
	current := &kadetv1.ModelStatus{Version: "v2", SpecHash: "new"}
	older := &kadetv1.ModelStatus{Version: "v1", SpecHash: "old"}
	tests := []struct {
		name     string
		model    *kadetv1.ModelStatus
		training *kadetv1.TrainingStatus
		obs      trainingObservation
		status   metav1.ConditionStatus
		reason   string
		msg      string
	}{
		{"model of the current spec", current, nil, trainingObservation{hash: "new"}, metav1.ConditionTrue,
			kadetv1.ReasonModelTrained, "model v2 is trained on the current spec"},
		{"first run starting", nil, nil, trainingObservation{hash: "new", job: "d-train-new"}, metav1.ConditionFalse,
			kadetv1.ReasonTraining, "training Job d-train-new is running"},
		{"retraining while an older model serves", older, &kadetv1.TrainingStatus{Job: "d-train-new", Epoch: 3, Epochs: 20},
			trainingObservation{hash: "new", job: "d-train-new"}, metav1.ConditionFalse, kadetv1.ReasonTraining,
			"training Job d-train-new: epoch 3/20"},
		{"progress of another Job is not shown", nil, &kadetv1.TrainingStatus{Job: "d-train-old", Epoch: 3, Epochs: 20},
			trainingObservation{hash: "new", job: "d-train-new"}, metav1.ConditionFalse, kadetv1.ReasonTraining,
			"training Job d-train-new is running"},
		{"failed", older, nil, trainingObservation{hash: "new", job: "d-train-new", failure: "bad data"},
			metav1.ConditionFalse, kadetv1.ReasonTrainingFailed, "bad data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			det := detectorAt(7)
			det.Status.Model, det.Status.Training = tt.model, tt.training
			checkCondition(t, trainedCondition(det, tt.obs), kadetv1.TrainedCondition, tt.status, tt.reason, tt.msg)
		})
	}
}

func TestServingCondition(t *testing.T) {
	model := &kadetv1.ModelStatus{Version: "v2"}
	dep := func(gen, observed int64, replicas, updated, available int32) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}}
		d.Spec.Template.Annotations = map[string]string{builders.AnnotationModelVersion: "v2"}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas,
			UpdatedReplicas: updated, AvailableReplicas: available}
		return d
	}
	// A stale copy: rolled out, but of the template before the new model.
	stale := dep(2, 2, 2, 2, 2)
	stale.Spec.Template.Annotations[builders.AnnotationModelVersion] = "v1"
	tests := []struct {
		name     string
		model    *kadetv1.ModelStatus
		replicas *int32
		obs      servingObservation
		status   metav1.ConditionStatus
		reason   string
		msg      string
	}{
		{"no model", nil, nil, servingObservation{}, metav1.ConditionFalse, kadetv1.ReasonNoModel, "no model"},
		{"scaled to zero", model, new(int32(0)), servingObservation{deployment: dep(1, 1, 0, 0, 0), model: model}, metav1.ConditionFalse,
			kadetv1.ReasonScaledToZero, "scoring.replicas is 0"},
		{"new template not yet seen", model, nil, servingObservation{deployment: dep(2, 1, 1, 1, 1), model: model}, metav1.ConditionFalse,
			kadetv1.ReasonRollingOut, "rolling out model v2: 1/1"},
		{"an old pod remains", model, new(int32(2)), servingObservation{deployment: dep(2, 2, 3, 2, 3), model: model}, metav1.ConditionFalse,
			kadetv1.ReasonRollingOut, "2/2 scoring replicas"},
		{"new pods not available", model, new(int32(2)), servingObservation{deployment: dep(2, 2, 2, 2, 1), model: model}, metav1.ConditionFalse,
			kadetv1.ReasonRollingOut, "1/2 scoring replicas"},
		{"a stale copy of the previous model's rollout", model, new(int32(2)), servingObservation{deployment: stale, model: model}, metav1.ConditionFalse,
			kadetv1.ReasonRollingOut, "rolling out model v2"},
		{"served", model, new(int32(2)), servingObservation{deployment: dep(2, 2, 2, 2, 2), model: model}, metav1.ConditionTrue,
			kadetv1.ReasonModelServed, "model v2 served by 2 replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			det := detectorAt(7)
			det.Status.Model, det.Spec.Scoring.Replicas = tt.model, tt.replicas
			checkCondition(t, servingCondition(det, tt.obs), kadetv1.ServingCondition, tt.status, tt.reason, tt.msg)
		})
	}
}

func TestAlertingCondition(t *testing.T) {
	det := detectorAt(7)
	if c := alertingCondition(det, alertingObservation{enabled: false, rule: "x-alerts", monitor: "x-scoring"}); c != nil {
		t.Errorf("a Detector that does not alert has condition %+v", c)
	}
	missing := alertingCondition(det, alertingObservation{enabled: true, missingCRDs: []string{"prometheusrules.monitoring.coreos.com", "podmonitors.monitoring.coreos.com"}})
	checkCondition(t, *missing, kadetv1.AlertingCondition, metav1.ConditionFalse, kadetv1.ReasonPrometheusOperatorMissing,
		"CRD prometheusrules.monitoring.coreos.com and podmonitors.monitoring.coreos.com not installed")
	applied := alertingCondition(det, alertingObservation{enabled: true, rule: "x-alerts", monitor: "x-scoring"})
	checkCondition(t, *applied, kadetv1.AlertingCondition, metav1.ConditionTrue, kadetv1.ReasonAlertsConfigured,
		"PrometheusRule x-alerts (alert KadetAnomaly) and PodMonitor x-scoring applied")
	held := alertingCondition(det, alertingObservation{enabled: true, rule: "x-alerts", monitor: "x-scoring", gate: "model v1 flagged 3.00 episodes a day"})
	checkCondition(t, *held, kadetv1.AlertingCondition, metav1.ConditionFalse, kadetv1.ReasonBacktestTooNoisy,
		"model v1 flagged 3.00 episodes a day: PrometheusRule x-alerts is held back; PodMonitor x-scoring applied")
}

// The alert gate holds the rule back only on a backtest figure above the limit.
func TestAlertGate(t *testing.T) {
	day := metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	next := metav1.NewTime(day.Add(24 * time.Hour))
	bt := func(perDay float64) *kadetv1.BacktestSummary {
		return &kadetv1.BacktestSummary{Start: &day, End: &next, Episodes: int32(perDay), EpisodesPerDay: perDay}
	}
	limit := func(v float64) *float64 { return &v }
	for _, tt := range []struct {
		name  string
		limit *float64
		bt    *kadetv1.BacktestSummary
		want  string
	}{
		{"no gate", nil, bt(9), ""},
		{"no backtest", limit(1), nil, ""},
		{"a skipped backtest", limit(1), &kadetv1.BacktestSummary{Skipped: "too few rows"}, ""},
		{"within", limit(3), bt(3), ""},
		{"above", limit(3), bt(4), "model v1 flagged 4.00 episodes a day in its backtest (4 episodes, 2026-12-01T00:00:00Z to 2026-12-02T00:00:00Z), more than spec.alerting.maxEpisodesPerDay 3"},
		{"a zero gate and one episode", limit(0), bt(1), "(1 episode, 2026-12-01T00:00:00Z to 2026-12-02T00:00:00Z), more than spec.alerting.maxEpisodesPerDay 0"},
		{"a zero gate and none", limit(0), bt(0), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			det := detectorAt(1)
			det.Spec.Alerting.MaxEpisodesPerDay = tt.limit
			if got := alertGate(det, "v1", tt.bt); !strings.Contains(got, tt.want) || (got == "") != (tt.want == "") {
				t.Errorf("gate %q; want %q", got, tt.want)
			}
		})
	}
}
