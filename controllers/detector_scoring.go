package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// reconcileScoring serves the newest model: it applies the scoring Deployment and
// Service and waits until every replica runs that model.
func (r *DetectorReconciler) reconcileScoring(ctx context.Context, det *kadetv1.Detector, _ *pass) error {
	model := det.Status.Model
	if model == nil {
		setCondition(det, ServingCondition, metav1.ConditionFalse, ReasonNoModel, "no model has been trained yet")
		return nil
	}
	dep := builders.ScoringDeployment(det, model, r.Config)
	for _, obj := range []client.Object{dep, builders.ScoringService(det)} {
		if err := r.apply(ctx, obj); err != nil {
			return err
		}
	}
	det.Status.Endpoint = builders.Endpoint(det)
	// Applying returned nothing we can trust for readiness: read what the Deployment
	// controller reported.
	if err := r.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
		return err
	}
	want := ptr.Deref(det.Spec.Scoring.Replicas, 1)
	if want == 0 {
		setCondition(det, ServingCondition, metav1.ConditionFalse, ReasonScaledToZero, "scoring.replicas is 0")
		return nil
	}
	if !rolledOut(dep, want) {
		msg := fmt.Sprintf("rolling out model %s: %d/%d scoring replicas updated and available",
			model.Version, min(dep.Status.UpdatedReplicas, dep.Status.AvailableReplicas), want)
		setCondition(det, ServingCondition, metav1.ConditionFalse, ReasonRollingOut, msg)
		return wait(ReasonRollingOut, "%s", msg)
	}
	prev := apimeta.FindStatusCondition(det.Status.Conditions, ServingCondition)
	msg := fmt.Sprintf("model %s served by %d replicas", model.Version, want)
	if prev == nil || prev.Message != msg {
		r.event(det, corev1.EventTypeNormal, "ModelServed", "Serve", "%s", msg)
	}
	setCondition(det, ServingCondition, metav1.ConditionTrue, ReasonModelServed, msg)
	return nil
}

// rolledOut is true when the Deployment controller has seen the newest template and
// every replica runs it: no old pod remains.
func rolledOut(dep *appsv1.Deployment, want int32) bool {
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas == want &&
		s.AvailableReplicas == want && s.Replicas == want
}

// eventNow records an event about something done to the cluster (a Job created or
// deleted): it happened whatever becomes of this pass's status.
func (r *DetectorReconciler) eventNow(det *kadetv1.Detector, typ, reason, action, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(det, nil, typ, reason, action, format, args...)
	}
}

// event records an event about what this pass writes into det's status once that
// status is written (see pending); it never blocks reconciliation.
func (r *DetectorReconciler) event(det *kadetv1.Detector, typ, reason, action, format string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.pendingMu.Lock()
	defer r.pendingMu.Unlock()
	if r.pending == nil {
		r.pending = map[*kadetv1.Detector][]func(){}
	}
	r.pending[det] = append(r.pending[det], func() { r.Recorder.Eventf(det, nil, typ, reason, action, format, args...) })
}

// flushEvents emits det's pending events when its pass took effect, and drops them
// when the pass will run again.
func (r *DetectorReconciler) flushEvents(det *kadetv1.Detector, emit bool) {
	r.pendingMu.Lock()
	events := r.pending[det]
	delete(r.pending, det)
	r.pendingMu.Unlock()
	if emit {
		for _, e := range events {
			e()
		}
	}
}

// recordTransition emits an event when Ready changes reason, so `kubectl describe`
// tells the story without an event on every pass.
func (r *DetectorReconciler) recordTransition(before, after *kadetv1.Detector) {
	now := apimeta.FindStatusCondition(after.Status.Conditions, ReadyCondition)
	if now == nil {
		return
	}
	was := apimeta.FindStatusCondition(before.Status.Conditions, ReadyCondition)
	if was != nil && was.Reason == now.Reason && was.Status == now.Status {
		return
	}
	typ := corev1.EventTypeNormal
	if apimeta.IsStatusConditionTrue(after.Status.Conditions, StalledCondition) {
		typ = corev1.EventTypeWarning
	}
	r.event(after, typ, now.Reason, "Reconcile", "%s", now.Message)
}
