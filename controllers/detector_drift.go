package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// Drift policy defaults (spec.retraining.onDrift).
const (
	DefaultDriftFeaturePSI  = 0.25
	DefaultDriftScoreKS     = 0.3
	DefaultDriftFor         = 10 * time.Minute
	DefaultDriftMinInterval = time.Hour
)

// driftStale is how old a pod's report may be and still count: a pod writes at least
// every heartbeat, so an older one is from a pod that is gone.
const driftStale = 2*contract.DriftHeartbeat + contract.DriftReportInterval

// driftLimits are a policy's limits with the defaults filled in.
type driftLimits struct {
	psi, ks          float64
	window           int
	lasting, between time.Duration
	retrain          bool
}

func limitsOf(pol *kadetv1.DriftPolicy) driftLimits {
	l := driftLimits{psi: DefaultDriftFeaturePSI, ks: DefaultDriftScoreKS, window: int(builders.DriftWindow(pol)),
		lasting: DefaultDriftFor, between: DefaultDriftMinInterval, retrain: pol.Action != kadetv1.DriftReport}
	if pol.FeaturePSI != nil {
		l.psi = *pol.FeaturePSI
	}
	if pol.ScoreKS != nil {
		l.ks = *pol.ScoreKS
	}
	if pol.For != nil {
		l.lasting = pol.For.Duration
	}
	if pol.MinInterval != nil {
		l.between = pol.MinInterval.Duration
	}
	return l
}

// podReports reads the scoring pods' reports under prefix from the status ConfigMap
// data, in key order: those keep accepts, written within driftStale of now (a pod
// writes at least every heartbeat: an older report is from a pod that is gone).
// Garbled ones are skipped.
func podReports[R any](data map[string]string, prefix string, now time.Time, written func(R) time.Time, keep func(R) bool) []R {
	keys := make([]string, 0, len(data))
	for k := range data {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []R
	for _, k := range keys {
		var r R
		if json.Unmarshal([]byte(data[k]), &r) != nil || now.Sub(written(r)) > driftStale || !keep(r) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// driftReports are the pods' drift reports on version.
func driftReports(data map[string]string, version string, now time.Time) []contract.DriftReport {
	return podReports(data, contract.DriftReportPrefix, now, func(r contract.DriftReport) time.Time { return r.Time },
		func(r contract.DriftReport) bool { return r.Version == version })
}

// driftedCondition is the Drifted condition for what the pods report on the served
// version: a pod with a full window and a feature or its scores past the limits makes
// it True, naming the features (the largest PSI first, over every pod).
func driftedCondition(reports []contract.DriftReport, version string, l driftLimits) metav1.Condition {
	c := metav1.Condition{Type: kadetv1.DriftedCondition, Status: metav1.ConditionUnknown, Reason: kadetv1.ReasonNoReports,
		Message: fmt.Sprintf("no scoring pod has reported on version %s yet", version)}
	if len(reports) == 0 {
		return c
	}
	psi := map[string]float64{}
	scores, full := false, false
	for _, r := range reports {
		if r.Rows < r.Window {
			continue
		}
		full = true
		for _, f := range r.Features {
			if f.PSI >= l.psi {
				psi[f.Name] = max(psi[f.Name], f.PSI)
			}
		}
		if r.ScoreKS >= l.ks {
			scores = true
		}
	}
	window := reports[0].Window
	switch {
	case len(psi) > 0:
		names := make([]string, 0, len(psi))
		for n := range psi {
			names = append(names, n)
		}
		slices.SortFunc(names, func(a, b string) int {
			if psi[a] != psi[b] {
				if psi[a] > psi[b] {
					return -1
				}
				return 1
			}
			return strings.Compare(a, b)
		})
		what := "feature " + names[0]
		if len(names) > 1 {
			if len(names) > 5 {
				names = append(names[:5], fmt.Sprintf("%d more", len(names)-5))
			}
			what = "features " + strings.Join(names, ", ")
		}
		c.Status, c.Reason = metav1.ConditionTrue, kadetv1.ReasonFeaturesDrifted
		c.Message = fmt.Sprintf("%s moved from the training data of version %s (PSI at least %g over the last %d rows)", what, version, l.psi, window)
		if scores {
			c.Message += fmt.Sprintf("; its scores moved too (KS at least %g)", l.ks)
		}
	case scores:
		c.Status, c.Reason = metav1.ConditionTrue, kadetv1.ReasonScoresDrifted
		c.Message = fmt.Sprintf("the scores of version %s moved from its calibration scores (KS at least %g over the last %d rows); no feature is past PSI %g", version, l.ks, window, l.psi)
	case full:
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonNoDrift
		c.Message = fmt.Sprintf("the last %d rows scored by version %s are within the limits (feature PSI below %g, score KS below %g)", window, version, l.psi, l.ks)
	default:
		c.Status, c.Reason = metav1.ConditionFalse, kadetv1.ReasonMeasuring
		c.Message = fmt.Sprintf("fewer than %d rows scored by version %s so far; drift is judged once a scoring pod has that many", window, version)
	}
	return c
}

// driftRunDue says when a drift retraining may start: once the drift has lasted
// l.lasting and the last drift run is l.between ago. ok is false while it is not drifted.
func driftRunDue(drifted *metav1.Condition, last *metav1.Time, l driftLimits) (due time.Time, ok bool) {
	if drifted == nil || drifted.Status != metav1.ConditionTrue || !l.retrain {
		return time.Time{}, false
	}
	due = drifted.LastTransitionTime.Add(l.lasting)
	if last != nil && last.Add(l.between).After(due) {
		due = last.Add(l.between)
	}
	return due, true
}

// reconcileDrift gives the scoring pods what they need to report drift and shadow
// counts, sets the Drifted condition from their reports on the served version, and
// starts a retraining when the drift lasts. It runs before the spec is rendered, since a run's time goes
// into the training request.
func (r *DetectorReconciler) reconcileDrift(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	if !builders.Reports(det) {
		removeCondition(det, kadetv1.DriftedCondition)
		return nil
	}
	for _, obj := range []client.Object{builders.ScorerServiceAccount(det), builders.ScorerRole(det), builders.ScorerRoleBinding(det)} {
		if err := r.apply(ctx, obj); err != nil {
			return err
		}
	}
	if err := r.createOnce(ctx, r.Client, builders.WatchStatusConfigMap(det)); err != nil {
		return err
	}
	pol := det.Spec.Retraining.OnDrift
	version := det.Status.ServedVersion
	if pol == nil || version == "" {
		removeCondition(det, kadetv1.DriftedCondition)
		return nil
	}
	l := limitsOf(pol)
	cm := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: det.Namespace, Name: builders.WatchStatusConfigMapName(det)}
	if err := r.Get(ctx, key, cm); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("reading ConfigMap %s: %w", key, err)
	}
	now := r.now()
	c := driftedCondition(driftReports(cm.Data, version, now), version, l)
	c.ObservedGeneration = det.Generation
	c.LastTransitionTime = metav1.Time{Time: now} // used only when the status changes
	was := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.DriftedCondition)
	if c.Status == metav1.ConditionTrue && (was == nil || was.Status != metav1.ConditionTrue) {
		p.event(corev1.EventTypeWarning, "DriftDetected", "Drift", "%s", c.Message)
	}
	setStatusCondition(det, c)
	// A pod's report can go stale without a write to wake kadet: look again then.
	p.requeue(driftStale)

	rs := det.Status.Retraining
	var last *metav1.Time
	if rs != nil {
		last = rs.LastDriftRun
	}
	due, ok := driftRunDue(apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.DriftedCondition), last, l)
	if !ok {
		return nil
	}
	if due.After(now) {
		p.requeue(due.Sub(now))
		return nil
	}
	busy, err := r.trainingBusy(ctx, det, p)
	if err != nil || busy {
		return err
	}
	if rs == nil {
		det.Status.Retraining = &kadetv1.RetrainingStatus{}
		rs = det.Status.Retraining
	}
	rs.LastRun = &metav1.Time{Time: now}
	rs.LastDriftRun = rs.LastRun
	p.plan.Request.Run = now.UTC().Format(time.RFC3339)
	if p.plan.Hash, err = p.plan.Request.Hash(); err != nil {
		return err
	}
	p.event(corev1.EventTypeNormal, "RetrainingStarted", "Retrain", "retraining on drift: %s", c.Message)
	return nil
}
