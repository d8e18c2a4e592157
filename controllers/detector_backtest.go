package controllers

import (
	"context"
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/applier"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// reconcileBacktestRun runs the backtest the anomaly.kadet.dev/backtest annotation asks
// for, once per value and served version: a Job like the training Job scores the
// annotation's range of history, ending when it runs, with the served version, as a
// watching pod would. Its figures become that version's ModelVersion status.backtest,
// which the alert gate reads; status.backtestRun says where it stands.
func (r *DetectorReconciler) reconcileBacktestRun(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	request := strings.TrimSpace(det.Annotations[builders.AnnotationBacktest])
	if request == "" || p.served == nil || p.plan == nil {
		return nil // a served version to backtest comes with a later pass
	}
	version := p.served.Version
	run := det.Status.BacktestRun
	if run != nil && run.Request == request && run.Version == version && (run.CompletedAt != nil || run.Message != "") {
		return nil
	}
	refuse := func(format string, args ...any) error {
		det.Status.BacktestRun = &kadetv1.BacktestRunStatus{Request: builders.Truncate(request, 64), Version: version, Message: fmt.Sprintf(format, args...)}
		p.event(corev1.EventTypeWarning, "BacktestRefused", "Backtest", "%s", det.Status.BacktestRun.Message)
		return nil
	}
	if d, err := contract.ParseDuration(request); err != nil || d <= 0 || len(request) > 64 {
		return refuse("annotation %s %q: give a positive range of history such as 7d or 24h", builders.AnnotationBacktest, builders.Truncate(request, 64))
	}
	if p.dataSource == nil || p.dataSource.Spec.Prometheus == nil {
		return refuse("annotation %s: a backtest Job reads a prometheus DataSource; this Detector's is not one", builders.AnnotationBacktest)
	}
	name := builders.BacktestJobName(det, request, version)
	job := &batchv1.Job{}
	err := r.Get(ctx, types.NamespacedName{Namespace: det.Namespace, Name: name}, job)
	switch {
	case apierrors.IsNotFound(err):
		job = builders.BacktestJob(det, p.plan, version, request, r.Config)
		if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating backtest Job %s/%s: %w", det.Namespace, name, err)
		}
		det.Status.BacktestRun = &kadetv1.BacktestRunStatus{Request: request, Version: version, Job: name}
		p.event(corev1.EventTypeNormal, "BacktestStarted", "Backtest", "backtesting model %s over the last %s: Job %s", version, request, name)
		return nil
	case err != nil:
		return fmt.Errorf("reading backtest Job %s/%s: %w", det.Namespace, name, err)
	}
	if err := claimed(det.Name, applier.CheckControlled(job, controllerRef(det))); err != nil {
		return err
	}
	det.Status.BacktestRun = &kadetv1.BacktestRunStatus{Request: request, Version: version, Job: name}
	switch jobCondition(job) {
	case batchv1.JobComplete:
		res, err := r.podResult(ctx, job, corev1.PodSucceeded)
		if err != nil {
			return err
		}
		if res == nil || res.Backtest == nil || res.Version != version {
			det.Status.BacktestRun.Message = fmt.Sprintf("backtest Job %s succeeded but its pod left no backtest of model %s in its termination message", name, version)
			return nil
		}
		bt := builders.BacktestSummary(res.Backtest)
		if err := r.setVersionBacktest(ctx, det, version, bt); err != nil {
			return err
		}
		det.Status.BacktestRun.CompletedAt = &metav1.Time{Time: r.now()}
		p.event(corev1.EventTypeNormal, "BacktestDone", "Backtest", "model %s over the last %s: %d rows of %d entities, %d episodes (%.2f a day)",
			version, request, bt.Rows, bt.Entities, bt.Episodes, bt.EpisodesPerDay)
	case batchv1.JobFailed:
		det.Status.BacktestRun.Message = builders.Truncate(r.failureMessage(ctx, job), 1024)
		p.event(corev1.EventTypeWarning, "BacktestFailed", "Backtest", "%s", det.Status.BacktestRun.Message)
	}
	return nil
}

// setVersionBacktest puts bt in the status of det's ModelVersion of version.
func (r *DetectorReconciler) setVersionBacktest(ctx context.Context, det *kadetv1.Detector, version string, bt *kadetv1.BacktestSummary) error {
	mv := &kadetv1.ModelVersion{}
	key := types.NamespacedName{Namespace: det.Namespace, Name: builders.ModelVersionName(det, version)}
	if err := r.Get(ctx, key, mv); err != nil {
		return fmt.Errorf("reading ModelVersion %s: %w", key, err)
	}
	if err := claimed(det.Name, applier.CheckControlled(mv, controllerRef(det))); err != nil {
		return err
	}
	return r.patchBacktest(ctx, mv, bt)
}
