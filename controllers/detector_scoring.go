package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// reconcileScoring serves the newest model: it applies the scoring Deployment and
// Service and waits until every replica runs that model.
func (r *DetectorReconciler) reconcileScoring(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	var o servingObservation
	if model := p.served; model != nil {
		dep := builders.ScoringDeployment(det, model, p.watch, r.Config)
		for _, obj := range []client.Object{dep, builders.ScoringService(det)} {
			if err := r.apply(ctx, obj); err != nil {
				return err
			}
		}
		if err := r.reconcileNetworkPolicy(ctx, det); err != nil {
			return err
		}
		det.Status.Endpoint = builders.Endpoint(det)
		// Applying returned nothing we can trust for readiness: read what the Deployment
		// controller reported.
		if err := r.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return fmt.Errorf("reading Deployment %s/%s: %w", dep.Namespace, dep.Name, err)
		}
		if r.writes.Behind("Deployment", dep) {
			// Its next event brings this Detector back.
			return wait(kadetv1.ReasonRollingOut, "waiting for Deployment %s to show the model %s", dep.Name, model.Version)
		}
		o.deployment, o.model = dep, model
	}
	c := servingCondition(det, o)
	if prev := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.ServingCondition); c.Status == metav1.ConditionTrue &&
		(prev == nil || prev.Message != c.Message) {
		p.event(corev1.EventTypeNormal, "ModelServed", "Serve", "%s", c.Message)
	}
	setStatusCondition(det, c)
	if c.Status == metav1.ConditionTrue || c.Reason == kadetv1.ReasonScaledToZero {
		det.Status.ServedVersion = p.served.Version
		r.markVersions(ctx, det, p.modelVersions)
	}
	if c.Reason == kadetv1.ReasonRollingOut {
		return wait(c.Reason, "%s", c.Message)
	}
	return nil
}

// reconcileNetworkPolicy applies the scoring pods' NetworkPolicy when the spec asks
// for one, and deletes kadet's when it no longer does.
func (r *DetectorReconciler) reconcileNetworkPolicy(ctx context.Context, det *kadetv1.Detector) error {
	if np := builders.ScoringNetworkPolicy(det, r.Config); np != nil {
		return r.apply(ctx, np)
	}
	existing := &networkingv1.NetworkPolicy{}
	err := r.Get(ctx, types.NamespacedName{Namespace: det.Namespace, Name: builders.ScoringName(det)}, existing)
	if err != nil || !metav1.IsControlledBy(existing, det) {
		return client.IgnoreNotFound(err)
	}
	return client.IgnoreNotFound(r.Delete(ctx, existing))
}
