package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// eventNow records an event about something done to the cluster (a Job created or
// deleted): it happened whatever becomes of this pass's status.
func (r *DetectorReconciler) eventNow(det *kadetv1.Detector, typ, reason, action, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(det, nil, typ, reason, action, format, args...)
	}
}

// pendingEvent is an event a pass holds back until its status is written.
type pendingEvent struct{ typ, reason, action, msg string }

// event records an event about what this pass writes into the Detector's status. It
// waits until that status is written (flushEvents): a pass whose status patch
// conflicts runs again, and must not have announced twice what it did.
func (p *pass) event(typ, reason, action, format string, args ...any) {
	p.events = append(p.events, pendingEvent{typ: typ, reason: reason, action: action, msg: fmt.Sprintf(format, args...)})
}

// flushEvents emits the pass's pending events when its status was written, and drops
// them when the pass will run again.
func (r *DetectorReconciler) flushEvents(p *pass, written bool) {
	if written && r.Recorder != nil {
		for _, e := range p.events {
			r.Recorder.Eventf(p.det, nil, e.typ, e.reason, e.action, "%s", e.msg)
		}
	}
	p.events = nil
}

// told are the Ready reasons other events announce.
var told = map[string]bool{kadetv1.ReasonTraining: true, kadetv1.ReasonRollingOut: true, kadetv1.ReasonSucceeded: true}

// recordTransition adds an event when Ready changes reason, so `kubectl describe`
// tells the story without an event on every pass. Becoming Training, RollingOut or
// Succeeded adds none: TrainingStarted, TrainingSucceeded (a rollout follows it) and
// ModelServed tell those (an event is a write to the API server, and a repeat is
// noise in describe).
func (p *pass) recordTransition(before, after *kadetv1.Detector) {
	now := apimeta.FindStatusCondition(after.Status.Conditions, kadetv1.ReadyCondition)
	if now == nil {
		return
	}
	was := apimeta.FindStatusCondition(before.Status.Conditions, kadetv1.ReadyCondition)
	if was != nil && was.Reason == now.Reason && was.Status == now.Status {
		return
	}
	typ := corev1.EventTypeNormal
	if apimeta.IsStatusConditionTrue(after.Status.Conditions, kadetv1.StalledCondition) {
		typ = corev1.EventTypeWarning
	}
	if typ == corev1.EventTypeNormal && told[now.Reason] {
		return
	}
	p.event(typ, now.Reason, "Reconcile", "%s", now.Message)
}
