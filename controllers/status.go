package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/applier"
)

// stallError is a state only the user can fix (a missing reference, a failed training
// run): the object is marked Stalled and not retried until something it watches changes.
type stallError struct{ reason, msg string }

func (e *stallError) Error() string { return e.msg }

func stall(reason, format string, args ...any) error {
	return &stallError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// waitError is progress the controller waits for (a running Job, a rollout). Every
// wait is on an object the controller watches, so no requeue is needed: its next
// change brings the Detector back.
type waitError struct {
	reason, msg string
	// after is set for a wait on time rather than on an object (data that has yet to
	// arrive): the pass runs again then.
	after time.Duration
}

func (e *waitError) Error() string { return e.msg }

func wait(reason, format string, args ...any) error {
	return &waitError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

func waitFor(after time.Duration, reason, format string, args ...any) error {
	return &waitError{reason: reason, msg: fmt.Sprintf(format, args...), after: after}
}

// conditioned is an object with metav1 conditions.
type conditioned interface {
	GetGeneration() int64
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

func setCondition(obj conditioned, typ string, status metav1.ConditionStatus, reason, msg string) {
	setStatusCondition(obj, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: obj.GetGeneration(),
	})
}

// setStatusCondition sets a condition computed by one of the pure functions in
// conditions.go.
func setStatusCondition(obj conditioned, c metav1.Condition) {
	conds := obj.GetConditions()
	apimeta.SetStatusCondition(&conds, c)
	obj.SetConditions(conds)
}

func removeCondition(obj conditioned, typ string) {
	conds := obj.GetConditions()
	apimeta.RemoveStatusCondition(&conds, typ)
	obj.SetConditions(conds)
}

// summarize sets Ready, Reconciling, Stalled, the phase and observedGeneration of det
// from the outcome of one reconcile pass, and turns that outcome into what the
// controller returns: a stall is terminal, a wait is not an error.
func summarize(det *kadetv1.Detector, err error) (ctrl.Result, error) {
	var (
		st *stallError
		wt *waitError
	)
	// A suspended Detector is left as it was, but for saying it is suspended.
	if det.Spec.Suspend && err == nil {
		det.Status.Phase = kadetv1.PhaseSuspended
		return ctrl.Result{}, nil
	}
	switch {
	case err == nil:
		msg := "no model yet"
		if m := det.Status.Model; m != nil {
			msg = "model " + m.Version + " is trained"
			if c := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.ServingCondition); c != nil && c.Reason == kadetv1.ReasonModelServed {
				msg = "serving model " + det.Status.ServedVersion
			}
		}
		setCondition(det, kadetv1.ReadyCondition, metav1.ConditionTrue, kadetv1.ReasonSucceeded, msg)
		removeCondition(det, kadetv1.ReconcilingCondition)
		removeCondition(det, kadetv1.StalledCondition)
		det.Status.ObservedGeneration = det.Generation
		err = nil
	case errors.As(err, &st):
		setCondition(det, kadetv1.ReadyCondition, metav1.ConditionFalse, st.reason, st.msg)
		setCondition(det, kadetv1.StalledCondition, metav1.ConditionTrue, st.reason, st.msg)
		removeCondition(det, kadetv1.ReconcilingCondition)
		det.Status.ObservedGeneration = det.Generation
		err = reconcile.TerminalError(err)
	case errors.As(err, &wt):
		setCondition(det, kadetv1.ReadyCondition, metav1.ConditionFalse, wt.reason, wt.msg)
		setCondition(det, kadetv1.ReconcilingCondition, metav1.ConditionTrue, wt.reason, wt.msg)
		removeCondition(det, kadetv1.StalledCondition)
		det.Status.Phase = phase(det, err)
		return ctrl.Result{RequeueAfter: wt.after}, nil
	default:
		setCondition(det, kadetv1.ReadyCondition, metav1.ConditionFalse, kadetv1.ReasonReconcileError, err.Error())
		setCondition(det, kadetv1.ReconcilingCondition, metav1.ConditionTrue, kadetv1.ReasonReconcileError, err.Error())
		removeCondition(det, kadetv1.StalledCondition)
	}
	det.Status.Phase = phase(det, err)
	return ctrl.Result{}, err
}

// phase condenses the conditions into one word for `kubectl get`.
func phase(det *kadetv1.Detector, err error) kadetv1.Phase {
	var st *stallError
	trained := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.TrainedCondition)
	switch {
	case det.Spec.Suspend:
		return kadetv1.PhaseSuspended
	case errors.As(err, &st):
		return kadetv1.PhaseFailed
	case trained != nil && trained.Reason == kadetv1.ReasonTraining:
		return kadetv1.PhaseTraining
	case det.Status.Model == nil:
		return kadetv1.PhasePending
	}
	return kadetv1.PhaseServing
}

// staleRetry is how soon a pass whose status patch met a newer copy runs again; the
// newer copy is in the cache by then or about to be.
const staleRetry = 100 * time.Millisecond

// patchStatus writes obj's status as one merge patch against before, guarded by
// before's resourceVersion: a pass that started from a stale cached copy must not
// leave the fields it did not change at values a newer pass wrote (a Stalled
// condition beside a Pending phase). A conflict only means a newer copy exists, so
// the caller requeues instead of reporting an error.
func patchStatus(ctx context.Context, c client.Client, obj, before client.Object) (requeue bool, err error) {
	if sameStatus(obj, before) {
		return false, nil // nothing changed: nothing to write
	}
	err = c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err):
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("patching the status of %s: %w", objectRef(obj), err)
	}
	return false, nil
}

// sameStatus reports a pass that left the status as it found it.
func sameStatus(obj, before client.Object) bool {
	switch o := obj.(type) {
	case *kadetv1.Detector:
		b, ok := before.(*kadetv1.Detector)
		return ok && equality.Semantic.DeepEqual(o.Status, b.Status)
	case *kadetv1.DataSource:
		b, ok := before.(*kadetv1.DataSource)
		return ok && equality.Semantic.DeepEqual(o.Status, b.Status)
	}
	return false
}

// objectRef names obj in an error: its kind and namespace/name.
func objectRef(obj client.Object) string { return applier.Ref(obj) }
