package controllers

import (
	"errors"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

func TestSummarize(t *testing.T) {
	model := &kadetv1.ModelStatus{Version: "v3"}
	tests := []struct {
		name            string
		err             error
		model           *kadetv1.ModelStatus
		trainedReason   string
		servingReason   string
		wantReady       metav1.ConditionStatus
		wantReason      string
		wantReconciling bool
		wantStalled     bool
		wantPhase       kadetv1.Phase
		wantObserved    bool
		wantTerminal    bool
		wantRequeue     time.Duration
		wantErr         bool
	}{
		{name: "serving", model: model, trainedReason: ReasonModelTrained, servingReason: ReasonModelServed,
			wantReady: metav1.ConditionTrue, wantReason: ReasonSucceeded, wantPhase: kadetv1.PhaseServing, wantObserved: true},
		{name: "training the first model", err: wait(ReasonTraining, "epoch 1/20"), trainedReason: ReasonTraining,
			wantReady: metav1.ConditionFalse, wantReason: ReasonTraining, wantReconciling: true, wantPhase: kadetv1.PhaseTraining},
		{name: "retraining while an old model serves", err: wait(ReasonTraining, "epoch 1/20"), model: model,
			trainedReason: ReasonTraining, wantReady: metav1.ConditionFalse, wantReason: ReasonTraining,
			wantReconciling: true, wantPhase: kadetv1.PhaseTraining},
		{name: "rolling out", err: &waitError{reason: ReasonRollingOut, msg: "1/2", requeueAfter: time.Minute}, model: model,
			trainedReason: ReasonModelTrained, wantReady: metav1.ConditionFalse, wantReason: ReasonRollingOut,
			wantReconciling: true, wantPhase: kadetv1.PhaseServing, wantRequeue: time.Minute},
		{name: "stalled", err: stall(ReasonTrainingFailed, "bad data"), wantReady: metav1.ConditionFalse,
			wantReason: ReasonTrainingFailed, wantStalled: true, wantPhase: kadetv1.PhaseFailed, wantObserved: true, wantTerminal: true, wantErr: true},
		{name: "transient error is retried", err: errors.New("connection refused"), wantReady: metav1.ConditionFalse,
			wantReason: ReasonReconcileError, wantReconciling: true, wantPhase: kadetv1.PhasePending, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			det := &kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
			det.Status.Model = tt.model
			det.Status.ObservedGeneration = 3
			// Leftovers of an earlier pass must not survive.
			setCondition(det, StalledCondition, metav1.ConditionTrue, "Old", "old")
			setCondition(det, ReconcilingCondition, metav1.ConditionTrue, "Old", "old")
			if tt.trainedReason != "" {
				setCondition(det, TrainedCondition, metav1.ConditionFalse, tt.trainedReason, "")
			}
			if tt.servingReason != "" {
				setCondition(det, ServingCondition, metav1.ConditionTrue, tt.servingReason, "")
			}

			res, err := summarize(det, tt.err)

			ready := apimeta.FindStatusCondition(det.Status.Conditions, ReadyCondition)
			if ready.Status != tt.wantReady || ready.Reason != tt.wantReason || ready.ObservedGeneration != 4 {
				t.Errorf("Ready = %s/%s (gen %d); want %s/%s", ready.Status, ready.Reason, ready.ObservedGeneration, tt.wantReady, tt.wantReason)
			}
			if got := apimeta.IsStatusConditionTrue(det.Status.Conditions, ReconcilingCondition); got != tt.wantReconciling {
				t.Errorf("Reconciling = %v", got)
			}
			if got := apimeta.IsStatusConditionTrue(det.Status.Conditions, StalledCondition); got != tt.wantStalled {
				t.Errorf("Stalled = %v", got)
			}
			if det.Status.Phase != tt.wantPhase {
				t.Errorf("phase = %s; want %s", det.Status.Phase, tt.wantPhase)
			}
			if (det.Status.ObservedGeneration == 4) != tt.wantObserved {
				t.Errorf("observedGeneration = %d", det.Status.ObservedGeneration)
			}
			if (err != nil) != tt.wantErr || errors.Is(err, reconcile.TerminalError(nil)) != tt.wantTerminal {
				t.Errorf("err = %v; want error %v, terminal %v", err, tt.wantErr, tt.wantTerminal)
			}
			if res.RequeueAfter != tt.wantRequeue {
				t.Errorf("requeueAfter = %s", res.RequeueAfter)
			}
		})
	}
}

func TestSummarizeLeavesSuspendedDetectorAlone(t *testing.T) {
	det := &kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	det.Spec.Suspend = true
	det.Status.ObservedGeneration = 1
	setCondition(det, ReadyCondition, metav1.ConditionFalse, ReasonTrainingFailed, "bad data")
	setCondition(det, StalledCondition, metav1.ConditionTrue, ReasonTrainingFailed, "bad data")
	before := det.Status.DeepCopy()

	if res, err := summarize(det, nil); err != nil || !res.IsZero() {
		t.Fatalf("summarize = %v, %v", res, err)
	}
	if det.Status.Phase != kadetv1.PhaseSuspended {
		t.Errorf("phase = %s", det.Status.Phase)
	}
	det.Status.Phase = before.Phase
	if !apiequality.Semantic.DeepEqual(before, &det.Status) {
		t.Errorf("suspension changed the status:\n%+v\n%+v", before, det.Status)
	}
}
