package controllers

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/applier"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// maxMessage bounds what of a pod's termination message lands in a condition.
const maxMessage = 1024

// reconcileTraining runs one Job per spec hash: it starts the Job for the current
// plan, mirrors its progress, records its result once, and deletes Jobs of older specs.
func (r *DetectorReconciler) reconcileTraining(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	o := trainingObservation{hash: p.plan.Hash}
	if err := r.deleteStaleTraining(ctx, det, o.hash); err != nil {
		return err
	}
	if m := det.Status.Model; m == nil || m.SpecHash != o.hash {
		if err := r.observeTraining(ctx, det, p, &o); err != nil {
			return err
		}
	}
	if o.retry != "" {
		// One event per failed attempt: the condition carries the attempt's message.
		if prev := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.TrainedCondition); prev == nil || !strings.Contains(prev.Message, o.retry) {
			p.event(corev1.EventTypeWarning, kadetv1.ReasonTrainingRetried, "Train", "training Job %s: %s", o.job, o.retry)
		}
	}
	if m := det.Status.Model; m != nil && m.BaseHash != "" && m.BaseHash == p.plan.BaseHash && m.SpecHash != o.hash {
		return r.retrainingOutcome(det, p, o)
	}
	c := trainedCondition(det, o)
	setStatusCondition(det, c)
	switch {
	case c.Status == metav1.ConditionTrue:
		removeCondition(det, kadetv1.TrainingFailedCondition)
		return nil
	case c.Reason == kadetv1.ReasonTrainingFailed:
		return stall(c.Reason, "%s", c.Message)
	case c.Reason == kadetv1.ReasonInsufficientData:
		if due := time.Until(o.retryAt); due > 0 {
			return waitFor(due, c.Reason, "%s", c.Message)
		}
		// Enough rows should be there now: the Job goes, and its deletion brings the
		// pass that starts the next one.
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: det.Namespace, Name: o.job}}
		if err := r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting training Job %s/%s: %w", det.Namespace, o.job, err)
		}
		return waitFor(time.Second, c.Reason, "%s", c.Message)
	}
	return wait(c.Reason, "%s", c.Message)
}

// retrainingOutcome is a retraining of the spec the served model was trained on (by
// schedule, model age or the retrain annotation): the model keeps serving and the
// Detector stays Ready while it runs; when it fails, TrainingFailed says why (with a
// Warning event) until a later run succeeds.
func (r *DetectorReconciler) retrainingOutcome(det *kadetv1.Detector, p *pass, o trainingObservation) error {
	m := det.Status.Model
	c := metav1.Condition{Type: kadetv1.TrainedCondition, ObservedGeneration: det.Generation, Status: metav1.ConditionTrue,
		Reason: kadetv1.ReasonModelTrained}
	failure := o.failure
	if o.insufficient != nil {
		failure = "not enough data to train yet: " + o.insufficient.Message()
	}
	switch {
	case failure != "":
		c.Message = fmt.Sprintf("model %s is trained on the current spec; retraining Job %s failed", m.Version, o.job)
		msg := fmt.Sprintf("retraining Job %s failed; model %s keeps serving: %s", o.job, m.Version, failure)
		if prev := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.TrainingFailedCondition); prev == nil || prev.Message != msg {
			p.event(corev1.EventTypeWarning, kadetv1.ReasonRetrainingFailed, "Train", "%s", msg)
		}
		setStatusCondition(det, metav1.Condition{Type: kadetv1.TrainingFailedCondition, Status: metav1.ConditionTrue,
			Reason: kadetv1.ReasonRetrainingFailed, Message: msg, ObservedGeneration: det.Generation})
	default:
		c.Message = fmt.Sprintf("model %s is trained on the current spec; retraining Job %s is running", m.Version, o.job)
		if ts := det.Status.Training; ts != nil && ts.Job == o.job && ts.Epoch > 0 {
			c.Message += fmt.Sprintf(" (epoch %d/%d)", ts.Epoch, ts.Epochs)
		}
		if o.retry != "" {
			c.Message += " (" + o.retry + ")"
		}
	}
	setStatusCondition(det, c)
	return nil
}

// minDataRecheck is the shortest wait before training again on a range that held too
// few rows, so a tiny step does not make Jobs back to back.
const minDataRecheck = 10 * time.Second

// observeTraining starts the current spec's Job if it does not exist, mirrors its
// progress into status.training and, once it has finished, records its model or
// notes why it failed.
func (r *DetectorReconciler) observeTraining(ctx context.Context, det *kadetv1.Detector, p *pass, o *trainingObservation) error {
	job := &batchv1.Job{}
	o.job = builders.TrainingJobName(det, o.hash)
	err := r.Get(ctx, types.NamespacedName{Namespace: det.Namespace, Name: o.job}, job)
	if apierrors.IsNotFound(err) {
		job = builders.TrainingJob(det, p.plan, r.Config)
		if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating training Job %s/%s: %w", det.Namespace, o.job, err)
		}
		r.eventNow(det, corev1.EventTypeNormal, "TrainingStarted", "Create", "started training Job %s", o.job)
	} else if err != nil {
		return fmt.Errorf("reading training Job %s/%s: %w", det.Namespace, o.job, err)
	} else if err := claimed(det.Name, applier.CheckControlled(job, controllerRef(det))); err != nil {
		// Its pods' termination message would be taken for this Detector's model.
		return err
	}
	if det.Status.Training == nil || det.Status.Training.Job != o.job {
		det.Status.Training = &kadetv1.TrainingStatus{Job: o.job, SpecHash: o.hash, Epochs: p.plan.Request.Training.Epochs}
	}
	ts := det.Status.Training
	if job.Status.StartTime != nil {
		ts.StartedAt = job.Status.StartTime
	}
	r.mirrorProgress(ctx, det, o.hash)
	switch jobCondition(job) {
	case batchv1.JobComplete:
		res, err := r.podResult(ctx, job, corev1.PodSucceeded)
		if err != nil {
			return err
		}
		if res == nil || res.Error != "" {
			o.failure = fmt.Sprintf("training Job %s succeeded but its pod left no training result in its termination message", o.job)
			return nil
		}
		det.Status.Model = &kadetv1.ModelStatus{
			Version: res.Version, Digest: res.Digest, Threshold: res.Threshold, SpecHash: o.hash, Metrics: res.Metrics,
			ScoringRule: res.ScoringRule, Normalization: res.Normalization, ScaleBy: res.ScaleBy, BaseHash: p.plan.BaseHash,
			Seasonality: res.Seasonality, SeasonalPeriod: res.SeasonalPeriod,
		}
		p.kadetVersion = res.Kadet
		switch {
		case res.TrainedAt != nil:
			det.Status.Model.TrainedAt = new(metav1.NewTime(*res.TrainedAt))
		case job.Status.CompletionTime != nil:
			det.Status.Model.TrainedAt = job.Status.CompletionTime.DeepCopy()
		}
		det.Status.Model.Backtest = builders.BacktestSummary(res.Backtest)
		if d := res.Data; d != nil {
			det.Status.Model.Data = &kadetv1.ModelData{Start: metav1.NewTime(d.Start), End: metav1.NewTime(d.End), Step: d.Step,
				Rows: int64(d.Rows), Entities: int32(d.Entities), Digest: d.Digest}
		}
		ts.CompletedAt = job.Status.CompletionTime
		p.event(corev1.EventTypeNormal, "TrainingSucceeded", "Train", "model %s trained by Job %s", res.Version, o.job)
	case "":
		if job.Status.Failed > 0 {
			pods, err := r.jobPods(ctx, job)
			if err != nil {
				return err
			}
			if pod, detail := lastPodFailure(job, pods); pod != "" {
				o.retry = fmt.Sprintf("attempt %d of %d; pod %s failed: %s", job.Status.Failed+1,
					ptr.Deref(job.Spec.BackoffLimit, 6)+1, pod, detail)
			}
		}
	case batchv1.JobFailed:
		res, err := r.podResult(ctx, job, corev1.PodFailed)
		if err != nil {
			return err
		}
		if res != nil && res.InsufficientData != nil {
			o.insufficient = res.InsufficientData
			o.retryAt = jobFinished(job).Add(max(res.InsufficientData.Wait(), minDataRecheck))
			return nil
		}
		o.failure = r.failureMessage(ctx, job)
	}
	return nil
}

// jobFinished is when the Job completed or failed.
func jobFinished(job *batchv1.Job) time.Time {
	if c := finishedCondition(job); c != nil {
		return c.LastTransitionTime.Time
	}
	return time.Now()
}

// jobCondition is Complete or Failed once the Job has finished, else "".
func jobCondition(job *batchv1.Job) batchv1.JobConditionType {
	if c := finishedCondition(job); c != nil {
		return c.Type
	}
	return ""
}

// finishedCondition is the Job's true Complete or Failed condition, or nil.
func finishedCondition(job *batchv1.Job) *batchv1.JobCondition {
	for i, c := range job.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

// deleteStaleTraining deletes training Jobs (running or not) and spec ConfigMaps of
// specs other than the current one.
func (r *DetectorReconciler) deleteStaleTraining(ctx context.Context, det *kadetv1.Detector, hash string) error {
	sel := client.MatchingLabels{builders.LabelDetector: det.Name, builders.LabelComponent: builders.ComponentTraining}
	jobs := &batchv1.JobList{}
	if err := r.List(ctx, jobs, client.InNamespace(det.Namespace), sel, childrenOf(det.Name)); err != nil {
		return fmt.Errorf("listing training Jobs in %s: %w", det.Namespace, err)
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if j.Labels[builders.LabelSpecHash] == hash || !metav1.IsControlledBy(j, det) {
			continue
		}
		if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting training Job %s/%s: %w", j.Namespace, j.Name, err)
		}
		if jobCondition(j) == "" {
			r.eventNow(det, corev1.EventTypeNormal, "TrainingSuperseded", "Delete", "deleted training Job %s: the spec changed", j.Name)
		}
	}
	cms := &corev1.ConfigMapList{}
	if err := r.List(ctx, cms, client.InNamespace(det.Namespace), sel, childrenOf(det.Name)); err != nil {
		return fmt.Errorf("listing training spec ConfigMaps in %s: %w", det.Namespace, err)
	}
	for i := range cms.Items {
		cm := &cms.Items[i]
		h, ok := cm.Labels[builders.LabelSpecHash]
		if !ok || h == hash || !metav1.IsControlledBy(cm, det) {
			continue
		}
		if err := r.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
		}
	}
	return nil
}

// jobPods lists a Job's pods, newest first. Pods are read from the API server: they are
// read only when a Job has finished, not worth a cluster-wide cache.
func (r *DetectorReconciler) jobPods(ctx context.Context, job *batchv1.Job) ([]corev1.Pod, error) {
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.InNamespace(job.Namespace),
		client.MatchingLabels{batchv1.JobNameLabel: job.Name}); err != nil {
		return nil, fmt.Errorf("listing the pods of Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[j].CreationTimestamp.Before(&pods.Items[i].CreationTimestamp)
	})
	return pods.Items, nil
}

// terminated is the trainer container's final state in pod, or nil.
func terminated(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == builders.TrainerContainer {
			return cs.State.Terminated
		}
	}
	return nil
}

// podResult parses the training result of the newest pod of job in phase.
func (r *DetectorReconciler) podResult(ctx context.Context, job *batchv1.Job, phase corev1.PodPhase) (*contract.TrainingResult, error) {
	pods, err := r.jobPods(ctx, job)
	if err != nil {
		return nil, err
	}
	for i := range pods {
		t := terminated(&pods[i])
		if pods[i].Status.Phase != phase || t == nil || t.Message == "" {
			continue
		}
		res, err := contract.ParseTrainingResult(t.Message)
		if err != nil {
			log.FromContext(ctx).Info("unreadable training result", "pod", pods[i].Name, "error", err.Error())
			return nil, nil
		}
		return res, nil
	}
	return nil, nil
}

// failureMessage says why a Job of the detector binary (training, backtest, pruning:
// its component label) failed, from the Job's condition and the newest failed pod's
// termination message (the binary writes its error there).
func (r *DetectorReconciler) failureMessage(ctx context.Context, job *batchv1.Job) string {
	reason := ""
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			reason = c.Reason
		}
	}
	msg := fmt.Sprintf("%s Job %s failed (%s)", cmp.Or(job.Labels[builders.LabelComponent], builders.ComponentTraining), job.Name, reason)
	pods, err := r.jobPods(ctx, job)
	if err != nil {
		return msg
	}
	if _, detail := lastPodFailure(job, pods); detail != "" {
		return msg + ": " + detail
	}
	return msg
}

// lastPodFailure names the newest of pods (newest first) whose trainer failed, and
// says why: the trainer's own error, or how it was killed or lost.
func lastPodFailure(job *batchv1.Job, pods []corev1.Pod) (pod, detail string) {
	for i := range pods {
		t := terminated(&pods[i])
		if t == nil || t.ExitCode == 0 {
			continue
		}
		detail := strings.TrimSpace(t.Message)
		if res, err := contract.ParseTrainingResult(detail); err == nil && res.Error != "" {
			detail = res.Error
		}
		if k := killedMessage(job, t); k != "" {
			detail = k
		}
		if detail == "" {
			detail = "exit code " + strconv.Itoa(int(t.ExitCode))
		}
		if len(detail) > maxMessage {
			detail = detail[:maxMessage] + "..."
		}
		return pods[i].Name, detail
	}
	return "", ""
}

// containerLost is the kubelet's reason for a container that was running when its
// node went down or restarted and that no runtime knew of afterwards (exit code 137).
const containerLost = "ContainerStatusUnknown"

// killedMessage explains a trainer that was killed rather than one that failed: exit
// code 137 is SIGKILL, which on a node almost always comes from the out-of-memory
// killer (the kubelet says OOMKilled when it knows), unless the kubelet says the
// container was lost with its node. It returns "" for other exits.
func killedMessage(job *batchv1.Job, t *corev1.ContainerStateTerminated) string {
	if t.Reason == containerLost {
		return "the training container was lost when its node restarted or went down (" + containerLost +
			"); the Job retries it while spec.training.backoffLimit allows"
	}
	if t.ExitCode != 137 && t.Reason != "OOMKilled" {
		return ""
	}
	limit := "no memory limit"
	for _, c := range job.Spec.Template.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && c.Name == builders.TrainerContainer {
			limit = "a memory limit of " + q.String()
		}
	}
	cause := "was killed (SIGKILL, exit code 137), most likely for running out of memory"
	if t.Reason == "OOMKilled" {
		cause = "ran out of memory and was killed (OOMKilled)"
	}
	return fmt.Sprintf("the training container %s with %s: give it more with spec.training.resources.limits.memory, or train a smaller model or batch",
		cause, limit)
}

// mirrorProgress copies the progress the training pod reports for this spec into
// status.training. A missing or garbled report only means no progress is shown.
func (r *DetectorReconciler) mirrorProgress(ctx context.Context, det *kadetv1.Detector, hash string) {
	cm := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: det.Namespace, Name: builders.ProgressConfigMapName(det)}
	if err := r.Get(ctx, key, cm); err != nil || cm.Data[contract.ProgressKeySpecHash] != hash {
		return
	}
	ts := det.Status.Training
	if v, err := strconv.ParseInt(cm.Data[contract.ProgressKeyEpoch], 10, 32); err == nil {
		ts.Epoch = int32(v)
	}
	if v, err := strconv.ParseInt(cm.Data[contract.ProgressKeyEpochs], 10, 32); err == nil {
		ts.Epochs = int32(v)
	}
	parse := func(k string) *float64 {
		if v, err := strconv.ParseFloat(cm.Data[k], 64); err == nil {
			return ptr.To(v)
		}
		return nil
	}
	ts.Loss, ts.ValLoss = parse(contract.ProgressKeyLoss), parse(contract.ProgressKeyValLoss)
}
