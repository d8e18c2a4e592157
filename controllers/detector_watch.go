package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// The prometheus-operator CRDs the generated alerting objects need.
var monitoringCRDs = []string{"prometheusrules.monitoring.coreos.com", "podmonitors.monitoring.coreos.com"}

// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=prometheusrules;podmonitors,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch

// reconcileWatch gives the scoring pods of a Detector on a Prometheus DataSource what
// they need to watch it (the request, their identity limited to one Lease and one
// status ConfigMap, the Lease), mirrors what they report into status.watch, and
// applies the alerting objects.
func (r *DetectorReconciler) reconcileWatch(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	w, err := builders.ResolveWatch(det, p.dataSource)
	if err != nil {
		return err
	}
	p.watch = w
	if w == nil {
		det.Status.Watch = nil
		apimeta.RemoveStatusCondition(&det.Status.Conditions, kadetv1.AlertingCondition)
		return nil
	}
	cm, err := builders.WatchConfigMap(det, w)
	if err != nil {
		return fmt.Errorf("rendering the watch ConfigMap: %w", err)
	}
	for _, obj := range []client.Object{cm, builders.ScorerServiceAccount(det), builders.ScorerRole(det), builders.ScorerRoleBinding(det)} {
		if err := r.apply(ctx, obj); err != nil {
			return err
		}
	}
	// The pods write the status ConfigMap and the Lease: created once, never applied.
	// Leases are not cached (kadet watches none), so that one is read directly.
	if err := r.createOnce(ctx, r.Client, builders.WatchStatusConfigMap(det)); err != nil {
		return err
	}
	if err := r.createOnce(ctx, r.APIReader, builders.ScoringLease(det)); err != nil {
		return err
	}
	r.mirrorWatch(ctx, det, p)
	return r.reconcileAlerting(ctx, det, p)
}

// mirrorWatch copies the watching pod's report into status.watch, and emits one event
// when an anomaly episode starts and one when it ends. A missing or garbled report only
// means nothing is shown.
func (r *DetectorReconciler) mirrorWatch(ctx context.Context, det *kadetv1.Detector, p *pass) {
	cm := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: det.Namespace, Name: builders.WatchStatusConfigMapName(det)}
	if err := r.Get(ctx, key, cm); err != nil {
		return
	}
	var s contract.WatchStatus
	if err := json.Unmarshal([]byte(cm.Data[contract.WatchStatusKey]), &s); err != nil {
		return
	}
	now := watchStatus(s)
	for _, e := range episodeEvents(det.Status.Watch, now) {
		p.event(e.typ, e.reason, "Watch", "%s", e.msg)
	}
	det.Status.Watch = now
}

// watchStatus is the pod's report in the API's terms.
func watchStatus(s contract.WatchStatus) *kadetv1.WatchStatus {
	out := &kadetv1.WatchStatus{Entities: int32(s.Entities), AnomalousEntities: int32(s.AnomalousNow), Leader: s.Leader,
		EntitiesScaledFromHistory: int32(s.ScaledFromHistory)}
	if s.LastScoreTime != nil {
		out.LastScoreTime = &metav1.Time{Time: *s.LastScoreTime}
	}
	for i, e := range s.Episodes {
		if i == contract.RecentAnomalies {
			break
		}
		ep := kadetv1.AnomalyEpisode{Entity: e.Entity, Start: metav1.Time{Time: e.Start}, PeakScore: e.PeakScore, TopFeatures: e.TopFeatures}
		if len(ep.TopFeatures) > 3 {
			ep.TopFeatures = ep.TopFeatures[:3]
		}
		if e.End != nil {
			ep.End = &metav1.Time{Time: *e.End}
		}
		out.RecentAnomalies = append(out.RecentAnomalies, ep)
	}
	return out
}

// maxEpisodeEvents bounds the events of one report (at most one every 30 s): a storm
// over many entities is a few events and a count, not a flood.
const maxEpisodeEvents = 3

// episodeEvents are the events between two reports: an episode not in the earlier one
// has started, one that has an end now and had none has ended.
func episodeEvents(before, after *kadetv1.WatchStatus) []pendingEvent {
	seen := map[string]*kadetv1.AnomalyEpisode{}
	if before != nil {
		for i := range before.RecentAnomalies {
			e := &before.RecentAnomalies[i]
			seen[e.Entity+"@"+e.Start.UTC().String()] = e
		}
	}
	var started, ended []pendingEvent
	for _, e := range after.RecentAnomalies {
		old, known := seen[e.Entity+"@"+e.Start.UTC().String()]
		who := e.Entity
		if who == "" {
			who = "the series"
		}
		switch {
		case !known && e.End == nil:
			started = append(started, pendingEvent{typ: corev1.EventTypeWarning, reason: "AnomalyStarted",
				msg: fmt.Sprintf("%s anomalous since %s: score %.2f, top features %s", who, e.Start.UTC().Format("15:04:05"), e.PeakScore, strings.Join(e.TopFeatures, ", "))})
		case e.End != nil && (!known || old.End == nil):
			ended = append(ended, pendingEvent{typ: corev1.EventTypeNormal, reason: "AnomalyEnded",
				msg: fmt.Sprintf("%s normal again at %s after an anomaly from %s (peak score %.2f)", who, e.End.UTC().Format("15:04:05"), e.Start.UTC().Format("15:04:05"), e.PeakScore)})
		}
	}
	limit := func(evs []pendingEvent, what string) []pendingEvent {
		if len(evs) <= maxEpisodeEvents {
			return evs
		}
		rest := len(evs) - maxEpisodeEvents
		evs = evs[:maxEpisodeEvents]
		evs[len(evs)-1].msg += fmt.Sprintf(" (and %d more %s)", rest, what)
		return evs
	}
	return append(limit(started, "episodes started"), limit(ended, "episodes ended")...)
}

// reconcileAlerting applies the PrometheusRule and PodMonitor when the
// prometheus-operator CRDs exist, and says so in the Alerting condition when they do
// not (the CRDs' watch brings the pass that creates them once they are installed).
func (r *DetectorReconciler) reconcileAlerting(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	rule, monitor := builders.PrometheusRule(det, p.watch), builders.PodMonitor(det, p.watch)
	missing, err := r.missingCRDs(ctx)
	if err != nil {
		return err
	}
	o := alertingObservation{enabled: builders.AlertingEnabled(det, p.watch), missingCRDs: missing, rule: rule.GetName(), monitor: monitor.GetName()}
	if o.enabled && det.Spec.Alerting.MaxEpisodesPerDay != nil {
		version, bt, err := r.servedBacktest(ctx, det)
		if err != nil {
			return err
		}
		o.gate = alertGate(det, version, bt)
	}
	switch {
	case o.enabled && len(missing) == 0 && o.gate != "":
		if err := r.apply(ctx, monitor); err != nil {
			return err
		}
		if err := r.Delete(ctx, rule); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting %s %s/%s: %w", rule.GetKind(), rule.GetNamespace(), rule.GetName(), err)
		}
	case !o.enabled && len(missing) == 0:
		for _, u := range []*unstructured.Unstructured{rule, monitor} {
			if err := r.Delete(ctx, u); client.IgnoreNotFound(err) != nil && !apimeta.IsNoMatchError(err) {
				return fmt.Errorf("deleting %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		}
	case o.enabled && len(missing) == 0:
		for _, u := range []*unstructured.Unstructured{rule, monitor} {
			if err := r.apply(ctx, u); err != nil {
				return err
			}
		}
	}
	if c := alertingCondition(det, o); c != nil {
		setStatusCondition(det, *c)
	} else {
		removeCondition(det, kadetv1.AlertingCondition)
	}
	return nil
}

// servedBacktest is the version det serves (or, before one serves, its newest) and
// that version's backtest: its ModelVersion's, else, for the newest model before its
// record has one, the Detector's status.model's.
func (r *DetectorReconciler) servedBacktest(ctx context.Context, det *kadetv1.Detector) (string, *kadetv1.BacktestSummary, error) {
	m := det.Status.Model
	version := det.Status.ServedVersion
	if version == "" && m != nil {
		version = m.Version
	}
	if version == "" {
		return "", nil, nil
	}
	// The ModelVersion holds the newest figure (a backtest run by annotation replaces
	// training's); the Detector's own holds training's until the record exists.
	mv := &kadetv1.ModelVersion{}
	err := r.Get(ctx, types.NamespacedName{Namespace: det.Namespace, Name: builders.ModelVersionName(det, version)}, mv)
	switch {
	case err == nil && metav1.IsControlledBy(mv, det) && mv.Status.Backtest != nil:
		return version, mv.Status.Backtest, nil
	case err != nil && !apierrors.IsNotFound(err):
		return "", nil, fmt.Errorf("reading ModelVersion %s/%s: %w", det.Namespace, builders.ModelVersionName(det, version), err)
	case m != nil && m.Version == version:
		return version, m.Backtest, nil
	}
	return version, nil, nil // no figure: nobody else's record gates this alert
}

// missingCRDs lists the monitoring CRDs not installed, from the metadata cache.
func (r *DetectorReconciler) missingCRDs(ctx context.Context) ([]string, error) {
	var missing []string
	for _, name := range monitoringCRDs {
		crd := &metav1.PartialObjectMetadata{}
		crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		if err := r.Get(ctx, types.NamespacedName{Name: name}, crd); apierrors.IsNotFound(err) {
			missing = append(missing, name)
		} else if err != nil {
			return nil, fmt.Errorf("reading CustomResourceDefinition %s: %w", name, err)
		}
	}
	return missing, nil
}

// detectorsForCRD maps the appearance (or removal) of a monitoring CRD to every
// Detector, so alerting objects come without a restart.
func (r *DetectorReconciler) detectorsForCRD(ctx context.Context, _ client.Object) []reconcile.Request {
	list := &kadetv1.DetectorList{}
	if err := r.List(ctx, list); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, d := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&d)})
	}
	return reqs
}
