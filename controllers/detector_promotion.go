package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// Promotion defaults (spec.promotion).
const (
	DefaultShadowPeriod        = 10 * time.Minute
	DefaultMaxAnomalyRateRatio = 2.0
	DefaultMetricTolerance     = 0.02
)

// gateSignificance is how unlikely, if the shadow's true anomaly rate were at the
// bound, its count must be before the gate refuses it: chance alone on a few hundred
// rows must not reject a good model.
const gateSignificance = 0.001

// shadowReports are the pods' shadow reports on version beside served.
func shadowReports(data map[string]string, version, served string, now time.Time) []contract.ShadowReport {
	return podReports(data, contract.ShadowReportPrefix, now, func(r contract.ShadowReport) time.Time { return r.Time },
		func(r contract.ShadowReport) bool { return r.Version == version && r.Served == served })
}

// gateVerdict is the gate's word: a decision (Pending while it waits), why, and when
// to look again while pending.
type gateVerdict struct {
	decision kadetv1.ShadowDecision
	message  string
	recheck  time.Duration
}

// gate decides on a version in shadow from the pods' reports: once it has scored
// shadowRows rows (when set) or run shadowPeriod, it passes when its anomaly rate on
// those rows is within maxAnomalyRateRatio times the rate its calibration expects,
// beyond what chance explains (a one-sided binomial test at gateSignificance). A
// version that cannot score the served model's rows cannot be compared: it waits for
// people as a Candidate.
func gate(reports []contract.ShadowReport, pol kadetv1.PromotionSpec, now time.Time) gateVerdict {
	if len(reports) == 0 {
		return gateVerdict{decision: kadetv1.ShadowPending, message: "waiting for the scoring pods to score it in shadow", recheck: contract.DriftReportInterval}
	}
	for _, r := range reports {
		if r.Incompatible != "" {
			return gateVerdict{decision: kadetv1.ShadowCandidate,
				message: fmt.Sprintf("cannot be compared with version %s on live rows: %s; pin it to serve it", r.Served, r.Incompatible)}
		}
	}
	var rows, anomalies, served, agreed int64
	start := reports[0].Since
	expected := 0.0
	for _, r := range reports {
		rows += r.Rows
		anomalies += r.Anomalies
		served += r.ServedAnomalies
		agreed += r.Agreed
		if r.Since.Before(start) {
			start = r.Since
		}
		expected = max(expected, r.ExpectedAnomalyRate)
	}
	period := DefaultShadowPeriod
	if pol.ShadowPeriod != nil {
		period = pol.ShadowPeriod.Duration
	}
	switch {
	case pol.ShadowRows != nil && rows < *pol.ShadowRows:
		return gateVerdict{decision: kadetv1.ShadowPending, recheck: contract.DriftReportInterval,
			message: fmt.Sprintf("%d of %d rows scored in shadow", rows, *pol.ShadowRows)}
	case pol.ShadowRows == nil && now.Before(start.Add(period)):
		return gateVerdict{decision: kadetv1.ShadowPending, recheck: start.Add(period).Sub(now),
			message: fmt.Sprintf("scoring in shadow until %s (%d rows so far)", start.Add(period).UTC().Format(time.RFC3339), rows)}
	case rows == 0:
		return gateVerdict{decision: kadetv1.ShadowPending, recheck: contract.DriftReportInterval,
			message: "no rows scored in shadow yet: the gate needs live traffic to decide"}
	}
	ratio := DefaultMaxAnomalyRateRatio
	if pol.MaxAnomalyRateRatio != nil {
		ratio = *pol.MaxAnomalyRateRatio
	}
	base, of := expected, "the rate its calibration expects"
	if base <= 0 {
		// A model file from before calibration summaries: compare with the served model
		// on the same rows.
		base, of = float64(served)/float64(rows), "the served model's rate on the same rows"
		if served == 0 {
			base = 1 / float64(rows) // a bound of 0 would refuse a single flagged row
		}
	}
	fb := feedbackOf(reports)
	tol := DefaultMetricTolerance
	if pol.MetricTolerance != nil {
		tol = *pol.MetricTolerance
	}
	bound := min(ratio*base, 1)
	rate := float64(anomalies) / float64(rows)
	seen := fmt.Sprintf("anomaly rate %s on %d live rows in shadow (the served model's %s; agreement %s)",
		percent(rate), rows, percent(float64(served)/float64(rows)), percent(float64(agreed)/float64(rows)))
	// P(X >= anomalies) for X ~ Binomial(rows, bound).
	p := 1.0
	if anomalies > 0 {
		p = distuv.Binomial{N: float64(rows), P: bound}.Survival(float64(anomalies - 1))
	}
	if rate > bound && p < gateSignificance {
		return gateVerdict{decision: kadetv1.ShadowRejected,
			message: fmt.Sprintf("%s is above %g x %s (%s)", seen, ratio, of, percent(base))}
	}
	msg := fmt.Sprintf("%s is within %g x %s (%s)", seen, ratio, of, percent(base))
	if fb != nil {
		labelled := fmt.Sprintf("on %d labelled marks (%d anomalies) its F1 %.3f and AUROC %.3f against the served model's %.3f and %.3f",
			fb.Marks, fb.Anomalies, fb.ShadowF1, fb.ShadowAUROC, fb.ServedF1, fb.ServedAUROC)
		if fb.ShadowF1 < fb.ServedF1-tol || fb.ShadowAUROC < fb.ServedAUROC-tol {
			return gateVerdict{decision: kadetv1.ShadowRejected, message: fmt.Sprintf("%s: lower by more than %g", labelled, tol)}
		}
		msg += "; " + labelled
	}
	verdict := gateVerdict{decision: kadetv1.ShadowPromoted, message: msg}
	if pol.Policy == kadetv1.PromoteManual {
		verdict.decision = kadetv1.ShadowCandidate
		verdict.message += "; pin it to serve it"
	}
	return verdict
}

// feedbackOf is the comparison on the most labelled marks among the reports (every pod
// reads the same folder; one may have read it later).
func feedbackOf(reports []contract.ShadowReport) *contract.FeedbackComparison {
	var best *contract.FeedbackComparison
	for _, r := range reports {
		if f := r.Feedback; f != nil && (best == nil || f.Marks > best.Marks) {
			best = f
		}
	}
	return best
}

func percent(v float64) string {
	switch {
	case v == 0:
		return "0%"
	case v < 0.001:
		return fmt.Sprintf("%.3f%%", 100*v)
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// versionStatus is the ModelStatus of a recorded version.
func versionStatus(v kadetv1.ModelVersion) *kadetv1.ModelStatus {
	return &kadetv1.ModelStatus{Version: v.Spec.Version, Digest: v.Spec.Digest, Threshold: v.Spec.Threshold, TrainedAt: v.Spec.TrainedAt}
}

// promote decides which version serves under a gated policy: the newest once the
// gate passed, else the one serving now, with the newest in shadow until the gate
// decides. It returns the version to serve.
func (r *DetectorReconciler) promote(ctx context.Context, det *kadetv1.Detector, p *pass, newest *kadetv1.ModelStatus, versions []kadetv1.ModelVersion) (*kadetv1.ModelStatus, error) {
	current := det.Status.ServedVersion
	if !builders.Gated(det) || current == "" || current == newest.Version {
		if sh := det.Status.Shadow; sh != nil && sh.Decision == kadetv1.ShadowPending {
			det.Status.Shadow = nil // nothing left to compare: the newest serves
		}
		return newest, nil
	}
	i := slices.IndexFunc(versions, func(v kadetv1.ModelVersion) bool { return v.Spec.Version == current })
	if i < 0 {
		return newest, nil // the served version's record is gone: serve the newest
	}
	serving := versionStatus(versions[i])
	now := r.now()
	sh := det.Status.Shadow
	if sh == nil || sh.Version != newest.Version {
		sh = &kadetv1.ShadowStatus{Version: newest.Version, Since: metav1.Time{Time: now}, Decision: kadetv1.ShadowPending,
			Message: "waiting for the scoring pods to score it in shadow"}
		det.Status.Shadow = sh
		p.event(corev1.EventTypeNormal, "ShadowStarted", "Promote", "model %s scores in shadow beside %s", newest.Version, current)
	}
	switch sh.Decision {
	case kadetv1.ShadowPromoted:
		return newest, nil
	case kadetv1.ShadowRejected, kadetv1.ShadowCandidate:
		return serving, nil
	}
	cm := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: det.Namespace, Name: builders.WatchStatusConfigMapName(det)}
	if err := r.Get(ctx, key, cm); client.IgnoreNotFound(err) != nil {
		return nil, fmt.Errorf("reading ConfigMap %s: %w", key, err)
	}
	v := gate(shadowReports(cm.Data, newest.Version, current, now), det.Spec.Promotion, now)
	sh.Message = v.message
	if v.decision == kadetv1.ShadowPending {
		p.requeue(v.recheck)
		return serving, nil
	}
	sh.Decision, sh.DecidedAt = v.decision, &metav1.Time{Time: now}
	// The record says so now, not once a rollout is over.
	if j := slices.IndexFunc(versions, func(v kadetv1.ModelVersion) bool { return v.Spec.Version == newest.Version }); j >= 0 {
		if phase, msg, ok := shadowPhase(sh, newest.Version); ok {
			r.setVersionPhase(ctx, &versions[j], phase, versions[j].Status.ServedSince, msg)
		}
	}
	switch v.decision {
	case kadetv1.ShadowPromoted:
		p.event(corev1.EventTypeNormal, "ModelPromoted", "Promote", "model %s promoted: %s", newest.Version, v.message)
		return newest, nil
	case kadetv1.ShadowRejected:
		p.event(corev1.EventTypeWarning, "ModelRejected", "Promote", "model %s rejected; %s keeps serving: %s", newest.Version, current, v.message)
	default:
		p.event(corev1.EventTypeNormal, "CandidateReady", "Promote", "model %s is a candidate: %s", newest.Version, v.message)
	}
	return serving, nil
}

// shadowPhase is the phase the shadow status gives version v, if any.
func shadowPhase(sh *kadetv1.ShadowStatus, v string) (kadetv1.ModelVersionPhase, string, bool) {
	if sh == nil || sh.Version != v {
		return "", "", false
	}
	switch sh.Decision {
	case kadetv1.ShadowPending:
		return kadetv1.ModelShadow, sh.Message, true
	case kadetv1.ShadowCandidate:
		return kadetv1.ModelCandidate, sh.Message, true
	case kadetv1.ShadowRejected:
		return kadetv1.ModelRejected, sh.Message, true
	}
	return "", sh.Message, false
}
