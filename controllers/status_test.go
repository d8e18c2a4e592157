package controllers

import (
	"errors"
	"testing"

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
		wantErr         bool
	}{
		{name: "serving", model: model, trainedReason: kadetv1.ReasonModelTrained, servingReason: kadetv1.ReasonModelServed,
			wantReady: metav1.ConditionTrue, wantReason: kadetv1.ReasonSucceeded, wantPhase: kadetv1.PhaseServing, wantObserved: true},
		{name: "training the first model", err: wait(kadetv1.ReasonTraining, "epoch 1/20"), trainedReason: kadetv1.ReasonTraining,
			wantReady: metav1.ConditionFalse, wantReason: kadetv1.ReasonTraining, wantReconciling: true, wantPhase: kadetv1.PhaseTraining},
		{name: "retraining while an old model serves", err: wait(kadetv1.ReasonTraining, "epoch 1/20"), model: model,
			trainedReason: kadetv1.ReasonTraining, wantReady: metav1.ConditionFalse, wantReason: kadetv1.ReasonTraining,
			wantReconciling: true, wantPhase: kadetv1.PhaseTraining},
		{name: "rolling out", err: wait(kadetv1.ReasonRollingOut, "1/2"), model: model,
			trainedReason: kadetv1.ReasonModelTrained, wantReady: metav1.ConditionFalse, wantReason: kadetv1.ReasonRollingOut,
			wantReconciling: true, wantPhase: kadetv1.PhaseServing},
		{name: "stalled", err: stall(kadetv1.ReasonTrainingFailed, "bad data"), wantReady: metav1.ConditionFalse,
			wantReason: kadetv1.ReasonTrainingFailed, wantStalled: true, wantPhase: kadetv1.PhaseFailed, wantObserved: true, wantTerminal: true, wantErr: true},
		{name: "transient error is retried", err: errors.New("connection refused"), wantReady: metav1.ConditionFalse,
			wantReason: kadetv1.ReasonReconcileError, wantReconciling: true, wantPhase: kadetv1.PhasePending, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			det := &kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
			det.Status.Model = tt.model
			det.Status.ObservedGeneration = 3
			// Leftovers of an earlier pass must not survive.
			setCondition(det, kadetv1.StalledCondition, metav1.ConditionTrue, "Old", "old")
			setCondition(det, kadetv1.ReconcilingCondition, metav1.ConditionTrue, "Old", "old")
			if tt.trainedReason != "" {
				setCondition(det, kadetv1.TrainedCondition, metav1.ConditionFalse, tt.trainedReason, "")
			}
			if tt.servingReason != "" {
				setCondition(det, kadetv1.ServingCondition, metav1.ConditionTrue, tt.servingReason, "")
			}

			res, err := summarize(det, tt.err)

			ready := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.ReadyCondition)
			if ready.Status != tt.wantReady || ready.Reason != tt.wantReason || ready.ObservedGeneration != 4 {
				t.Errorf("Ready = %s/%s (gen %d); want %s/%s", ready.Status, ready.Reason, ready.ObservedGeneration, tt.wantReady, tt.wantReason)
			}
			if got := apimeta.IsStatusConditionTrue(det.Status.Conditions, kadetv1.ReconcilingCondition); got != tt.wantReconciling {
				t.Errorf("Reconciling = %v", got)
			}
			if got := apimeta.IsStatusConditionTrue(det.Status.Conditions, kadetv1.StalledCondition); got != tt.wantStalled {
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
			// Waits are on watched objects and stalls on the user: nothing polls.
			if !res.IsZero() {
				t.Errorf("result = %+v; want none", res)
			}
		})
	}
}

func TestSummarizeLeavesSuspendedDetectorAlone(t *testing.T) {
	det := &kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	det.Spec.Suspend = true
	det.Status.ObservedGeneration = 1
	setCondition(det, kadetv1.ReadyCondition, metav1.ConditionFalse, kadetv1.ReasonTrainingFailed, "bad data")
	setCondition(det, kadetv1.StalledCondition, metav1.ConditionTrue, kadetv1.ReasonTrainingFailed, "bad data")
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
