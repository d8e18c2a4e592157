package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/applier"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// +kubebuilder:rbac:groups=anomaly.kadet.dev,resources=modelversions,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=anomaly.kadet.dev,resources=modelversions/status,verbs=get;update;patch

// DefaultKeepVersions is storage.keepVersions when the spec leaves it out.
const DefaultKeepVersions = 5

// retrainDue is what the schedule and maxModelAge say at now: the run to start (nil
// for none), the schedule tick it consumes, and when to look again. It is a pure
// function of the spec, the status and the clock.
type retrainDue struct {
	run, tick, next *time.Time
}

// parseSchedule parses spec.training.schedule in spec.training.timeZone.
func parseSchedule(t kadetv1.TrainingSpec) (cron.Schedule, error) {
	if t.Schedule == "" {
		return nil, nil
	}
	expr := t.Schedule
	if t.TimeZone != "" {
		if _, err := time.LoadLocation(t.TimeZone); err != nil {
			return nil, fmt.Errorf("spec.training.timeZone %q is not an IANA time zone such as Europe/Berlin: %v", t.TimeZone, err)
		}
		expr = "CRON_TZ=" + t.TimeZone + " " + expr
	}
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("spec.training.schedule %q: %v", t.Schedule, err)
	}
	return s, nil
}

// maxMissedTicks bounds the walk over ticks missed while kadet was down; past it the
// latest tick is still found, from a later start.
const maxMissedTicks = 10000

// retrainingDue decides the next retraining. A schedule's ticks after the last one
// acted on start one run, however many were missed (the latest one); maxModelAge
// starts one when the newest model is older than it and no run was started since
// (or the last one is itself older than maxModelAge: it failed).
func retrainingDue(det *kadetv1.Detector, sched cron.Schedule, now time.Time) retrainDue {
	var d retrainDue
	rs := det.Status.Retraining
	if sched != nil && rs != nil && rs.LastScheduleTime != nil {
		from := rs.LastScheduleTime.Time
		var latest *time.Time
		for i := 0; i < maxMissedTicks; i++ {
			t := sched.Next(from)
			if t.IsZero() || t.After(now) {
				break
			}
			latest, from = &t, t
		}
		if latest != nil {
			d.tick, d.run = latest, latest
		}
	}
	if sched != nil {
		next := sched.Next(now)
		if !next.IsZero() {
			d.next = &next
		}
	}
	if age := det.Spec.Training.MaxModelAge; age != nil && age.Duration > 0 && det.Status.Model != nil && det.Status.Model.TrainedAt != nil {
		trained := det.Status.Model.TrainedAt.Time
		since := trained
		if rs != nil && rs.LastRun != nil && rs.LastRun.After(since) {
			since = rs.LastRun.Time
		}
		due := since.Add(age.Duration)
		if !due.After(now) && d.run == nil {
			d.run = &now
			due = now.Add(age.Duration)
		}
		if d.next == nil || due.Before(*d.next) {
			d.next = &due
		}
	}
	return d
}

// reconcileRetraining starts scheduled and model-age retraining: a due run gets a new
// run time in status.retraining, which goes into the training request, so the run
// has a spec hash (and Job) of its own. A run is not started while the current spec
// trains; its tick is consumed (as CronJob's Forbid policy does).
func (r *DetectorReconciler) reconcileRetraining(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	sched, err := parseSchedule(det.Spec.Training)
	if err != nil {
		return stall(kadetv1.ReasonInvalidSchedule, "%v", err)
	}
	if sched == nil && det.Spec.Training.MaxModelAge == nil {
		if rs := det.Status.Retraining; rs != nil {
			rs.NextRun, rs.LastScheduleTime = nil, nil
		}
		return nil
	}
	now := r.now()
	if det.Status.Retraining == nil {
		det.Status.Retraining = &kadetv1.RetrainingStatus{}
	}
	rs := det.Status.Retraining
	if sched != nil && rs.LastScheduleTime == nil {
		// A new schedule counts from now: it does not start a run for ticks before it.
		rs.LastScheduleTime = &metav1.Time{Time: now}
	}
	due := retrainingDue(det, sched, now)
	if due.tick != nil {
		rs.LastScheduleTime = &metav1.Time{Time: *due.tick}
	}
	if due.run != nil {
		busy, err := r.trainingBusy(ctx, det, p)
		if err != nil {
			return err
		}
		if !busy {
			rs.LastRun = &metav1.Time{Time: *due.run}
			p.plan.Request.Run = rs.LastRun.UTC().Format(time.RFC3339)
			if p.plan.Hash, err = p.plan.Request.Hash(); err != nil {
				return err
			}
			p.event(corev1.EventTypeNormal, "RetrainingStarted", "Retrain", "retraining for the run at %s", p.plan.Request.Run)
		}
	}
	rs.NextRun = nil
	if due.next != nil {
		rs.NextRun = &metav1.Time{Time: *due.next}
		p.requeue(due.next.Sub(now))
	}
	return nil
}

// trainingBusy says a training run of the current plan has no result yet: no model,
// or a Job for the current spec that has not failed.
func (r *DetectorReconciler) trainingBusy(ctx context.Context, det *kadetv1.Detector, p *pass) (bool, error) {
	m := det.Status.Model
	if m == nil {
		return true, nil
	}
	if m.SpecHash == p.plan.Hash {
		return false, nil
	}
	job := &batchv1.Job{}
	err := r.Get(ctx, types.NamespacedName{Namespace: det.Namespace, Name: builders.TrainingJobName(det, p.plan.Hash)}, job)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return jobCondition(job) != batchv1.JobFailed, nil
}

// reconcileVersions keeps one ModelVersion per trained model, chooses the version to
// serve (the pin, or the newest), and prunes versions beyond storage.keepVersions.
func (r *DetectorReconciler) reconcileVersions(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	m := det.Status.Model
	if m == nil {
		return nil
	}
	if err := r.ensureModelVersion(ctx, det, p, m); err != nil {
		return err
	}
	list := &kadetv1.ModelVersionList{}
	if err := r.List(ctx, list, client.InNamespace(det.Namespace), childrenOf(det.Name)); err != nil {
		return fmt.Errorf("listing ModelVersions in %s: %w", det.Namespace, err)
	}
	versions := list.Items
	slices.SortFunc(versions, func(a, b kadetv1.ModelVersion) int { return strings.Compare(a.Spec.Version, b.Spec.Version) })
	p.modelVersions = versions
	newest := &kadetv1.ModelStatus{Version: m.Version, Digest: m.Digest, Threshold: m.Threshold, TrainedAt: m.TrainedAt}
	served := newest
	pin := det.Spec.Scoring.ModelVersion
	if pin == "" {
		var err error
		if served, err = r.promote(ctx, det, p, newest, versions); err != nil {
			return err
		}
	}
	if pin != "" {
		i := slices.IndexFunc(versions, func(v kadetv1.ModelVersion) bool { return v.Spec.Version == pin })
		if i < 0 || versions[i].Status.Phase == kadetv1.ModelRetired {
			return stall(kadetv1.ReasonModelVersionNotFound,
				"spec.scoring.modelVersion %q: no ModelVersion of this Detector has that version (kubectl get modelversions -l %s=%s)",
				pin, builders.LabelDetector, det.Name)
		}
		v := versions[i].Spec
		served = &kadetv1.ModelStatus{Version: v.Version, Digest: v.Digest, Threshold: v.Threshold, TrainedAt: v.TrainedAt}
	}
	p.served = served
	return r.prune(ctx, det, p, versions)
}

// ensureModelVersion creates the ModelVersion of m once; its name is the version's, so
// a second pass, or a restarted manager, finds it there.
func (r *DetectorReconciler) ensureModelVersion(ctx context.Context, det *kadetv1.Detector, p *pass, m *kadetv1.ModelStatus) error {
	key := types.NamespacedName{Namespace: det.Namespace, Name: builders.ModelVersionName(det, m.Version)}
	existing := &kadetv1.ModelVersion{}
	if err := r.Get(ctx, key, existing); !apierrors.IsNotFound(err) {
		if err != nil {
			return fmt.Errorf("reading ModelVersion %s: %w", key, err)
		}
		if err := claimed(det.Name, applier.CheckControlled(existing, controllerRef(det))); err != nil {
			return err
		}
		return r.recordBacktest(ctx, existing, m.Backtest)
	}
	mv := builders.ModelVersion(det, p.dataSource, p.plan, m, p.kadetVersion)
	if err := r.Create(ctx, mv); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil // the next pass finds it
		}
		return fmt.Errorf("creating ModelVersion %s: %w", key, err)
	}
	return r.recordBacktest(ctx, mv, m.Backtest)
}

// recordBacktest writes a version's backtest into its status once: status cannot be
// set on create, and the version's phase comes only once something serves, which a
// backtest need not wait for.
func (r *DetectorReconciler) recordBacktest(ctx context.Context, mv *kadetv1.ModelVersion, bt *kadetv1.BacktestSummary) error {
	if bt == nil || mv.Status.Backtest != nil {
		return nil
	}
	return r.patchBacktest(ctx, mv, bt)
}

// patchBacktest writes bt as mv's status.backtest.
func (r *DetectorReconciler) patchBacktest(ctx context.Context, mv *kadetv1.ModelVersion, bt *kadetv1.BacktestSummary) error {
	before := mv.DeepCopy()
	mv.Status.Backtest = bt.DeepCopy()
	if err := r.Status().Patch(ctx, mv, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("recording the backtest in ModelVersion %s/%s: %w", mv.Namespace, mv.Name, err)
	}
	return nil
}

// prune keeps keepVersions versions: the served, the pinned and the newest model
// first, then the newest others; it never removes the first three. The rest go: a Job deletes their files from the volume (only a pod mounts it), and
// their ModelVersions go once it has.
func (r *DetectorReconciler) prune(ctx context.Context, det *kadetv1.Detector, p *pass, versions []kadetv1.ModelVersion) error {
	keep := int(ptr.Deref(det.Spec.Storage.KeepVersions, DefaultKeepVersions))
	protected := map[string]bool{p.served.Version: true, det.Status.Model.Version: true, det.Spec.Scoring.ModelVersion: true,
		det.Status.ServedVersion: true}
	// The protected versions take their places first, then the newest others.
	kept := 0
	for _, v := range versions {
		if protected[v.Spec.Version] {
			kept++
		}
	}
	var old []kadetv1.ModelVersion
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		switch {
		case protected[v.Spec.Version]:
		case kept < keep:
			kept++
		default:
			old = append(old, v)
		}
	}
	if len(old) == 0 {
		return nil
	}
	names := make([]string, len(old))
	for i, v := range old {
		names[i] = v.Spec.Version
	}
	slices.Sort(names)
	job := builders.PruneJob(det, names, r.Config)
	existing := &batchv1.Job{}
	err := r.Get(ctx, client.ObjectKeyFromObject(job), existing)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating pruning Job %s/%s: %w", job.Namespace, job.Name, err)
		}
		r.eventNow(det, corev1.EventTypeNormal, "PruningVersions", "Prune", "removing model versions %s (keepVersions %d)", strings.Join(names, ", "), keep)
		for _, v := range old {
			r.setVersionPhase(ctx, &v, kadetv1.ModelRetired, nil, v.Status.Message)
		}
	case err != nil:
		return fmt.Errorf("reading pruning Job %s/%s: %w", job.Namespace, job.Name, err)
	case jobCondition(existing) == batchv1.JobComplete:
		for _, v := range old {
			if err := r.Delete(ctx, &v); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting ModelVersion %s/%s: %w", v.Namespace, v.Name, err)
			}
		}
		if err := r.Delete(ctx, existing, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting pruning Job %s/%s: %w", existing.Namespace, existing.Name, err)
		}
	case jobCondition(existing) == batchv1.JobFailed:
		p.event(corev1.EventTypeWarning, "PruningFailed", "Prune", "Job %s could not remove %s: %s", existing.Name, strings.Join(names, ", "),
			r.failureMessage(ctx, existing))
	}
	return nil
}

// markVersions sets the phase of each ModelVersion the pass listed from what is served.
func (r *DetectorReconciler) markVersions(ctx context.Context, det *kadetv1.Detector, versions []kadetv1.ModelVersion) {
	for i := range versions {
		v := &versions[i]
		switch {
		case v.Status.Phase == kadetv1.ModelRetired:
		case v.Spec.Version == det.Status.ServedVersion:
			since := v.Status.ServedSince
			if v.Status.Phase != kadetv1.ModelServing || since == nil {
				since = &metav1.Time{Time: r.now()}
			}
			_, msg, _ := shadowPhase(det.Status.Shadow, v.Spec.Version)
			r.setVersionPhase(ctx, v, kadetv1.ModelServing, since, cmp.Or(msg, v.Status.Message))
		default:
			if phase, msg, ok := shadowPhase(det.Status.Shadow, v.Spec.Version); ok {
				r.setVersionPhase(ctx, v, phase, v.Status.ServedSince, msg)
				continue
			}
			phase := kadetv1.ModelAvailable
			if v.Status.Phase == kadetv1.ModelRejected || v.Status.Phase == kadetv1.ModelCandidate {
				phase = v.Status.Phase // the gate's word stays until it is pinned
			}
			r.setVersionPhase(ctx, v, phase, v.Status.ServedSince, v.Status.Message)
		}
	}
}

func (r *DetectorReconciler) setVersionPhase(ctx context.Context, v *kadetv1.ModelVersion, phase kadetv1.ModelVersionPhase, since *metav1.Time, message string) {
	if v.Status.Phase == phase && ptr.Equal(v.Status.ServedSince, since) && v.Status.Message == message {
		return
	}
	before := v.DeepCopy()
	v.Status.Phase, v.Status.ServedSince, v.Status.Message = phase, since, message
	if err := r.Status().Patch(ctx, v, client.MergeFrom(before)); err != nil {
		// The next pass sets it again; a phase is a report, not a decision.
		return
	}
}

// now is the reconciler's clock.
func (r *DetectorReconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock.Now()
	}
	return time.Now()
}
