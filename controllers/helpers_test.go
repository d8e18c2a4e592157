package controllers

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// Helpers that play the kubelet, the Job controller and the Deployment controller,
// none of which runs in envtest.

func getDetector(g Gomega, det *kadetv1.Detector) *kadetv1.Detector {
	out := &kadetv1.Detector{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(det), out)).To(Succeed())
	return out
}

func condition(det *kadetv1.Detector, typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(det.Status.Conditions, typ)
}

// trainingJobs lists det's training Jobs.
func trainingJobs(g Gomega, det *kadetv1.Detector) []batchv1.Job {
	jobs := &batchv1.JobList{}
	g.Expect(k8sClient.List(context.Background(), jobs, client.InNamespace(det.Namespace),
		client.MatchingLabels{builders.LabelDetector: det.Name})).To(Succeed())
	return jobs.Items
}

// waitForOneJob waits until det has exactly one training Job, other than those in
// exclude, and returns it.
func waitForOneJob(t *testing.T, det *kadetv1.Detector, exclude ...string) *batchv1.Job {
	t.Helper()
	var job batchv1.Job
	NewWithT(t).Eventually(func(g Gomega) {
		jobs := trainingJobs(g, det)
		g.Expect(jobs).To(HaveLen(1))
		g.Expect(exclude).NotTo(ContainElement(jobs[0].Name))
		job = jobs[0]
	}, timeout, interval).Should(Succeed())
	return &job
}

// finishTrainingPod creates the pod a Job would run and gives it the final state the
// kubelet would report: its phase, exit code and termination message.
func finishTrainingPod(t *testing.T, job *batchv1.Job, phase corev1.PodPhase, exitCode int32, message string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: job.Namespace, GenerateName: job.Name + "-",
			Labels: map[string]string{batchv1.JobNameLabel: job.Name},
		},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := k8sClient.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase: phase,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: builders.TrainerContainer, Image: pod.Spec.Containers[0].Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: exitCode, Message: message, StartedAt: now, FinishedAt: now,
			}},
		}},
	}
	if err := k8sClient.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// completeJob marks job succeeded the way the Job controller does.
func completeJob(t *testing.T, job *batchv1.Job, res contract.TrainingResult) {
	t.Helper()
	msg, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	finishTrainingPod(t, job, corev1.PodSucceeded, 0, string(msg))
	start := metav1.NewTime(time.Now().Add(-time.Minute))
	now := metav1.Now()
	setJobStatus(t, job, func(s *batchv1.JobStatus) {
		s.StartTime, s.CompletionTime, s.Succeeded, s.Active = &start, &now, 1, 0
		s.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	})
}

// failJob marks job failed the way the Job controller does after a pod failure policy
// matched the pod's exit code.
func failJob(t *testing.T, job *batchv1.Job, exitCode int32, message string) {
	t.Helper()
	failJobFor(t, job, batchv1.JobReasonPodFailurePolicy, exitCode, message)
}

// failJobFor marks job failed for reason (PodFailurePolicy, BackoffLimitExceeded) after
// a pod ended with exitCode and message.
func failJobFor(t *testing.T, job *batchv1.Job, reason string, exitCode int32, message string) {
	t.Helper()
	finishTrainingPod(t, job, corev1.PodFailed, exitCode, message)
	start := metav1.NewTime(time.Now().Add(-time.Minute))
	now := metav1.Now()
	setJobStatus(t, job, func(s *batchv1.JobStatus) {
		s.StartTime, s.Failed = &start, 1
		s.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, LastTransitionTime: now},
		}
	})
}

func setJobStatus(t *testing.T, job *batchv1.Job, mutate func(*batchv1.JobStatus)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		cur := &batchv1.Job{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(job), cur)).To(Succeed())
		mutate(&cur.Status)
		g.Expect(k8sClient.Status().Update(context.Background(), cur)).To(Succeed())
	}, timeout, interval).Should(Succeed())
}

// rollOutDeployment reports every replica of dep's newest template as available.
func rollOutDeployment(t *testing.T, key client.ObjectKey) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		dep := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(context.Background(), key, dep)).To(Succeed())
		n := *dep.Spec.Replicas
		dep.Status = appsv1.DeploymentStatus{
			ObservedGeneration: dep.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		}
		g.Expect(k8sClient.Status().Update(context.Background(), dep)).To(Succeed())
	}, timeout, interval).Should(Succeed())
}

// kstatusOf computes the kstatus of det as kubectl, Flux and Argo CD would.
func kstatusOf(g Gomega, obj runtime.Object) status.Status {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// kubectl runs the real kubectl against the test API server as a cluster admin.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	user, err := testEnv.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := kc.Run(args...)
	out, _ := io.ReadAll(stdout)
	errOut, _ := io.ReadAll(stderr)
	if err != nil {
		return string(out) + string(errOut), err
	}
	return string(out), nil
}

// retrainWith sets the retrain annotation to token and waits for the Job it starts, one
// that was not there before.
func retrainWith(t *testing.T, det *kadetv1.Detector, token string) *batchv1.Job {
	t.Helper()
	var names []string
	for _, j := range trainingJobs(NewWithT(t), det) {
		names = append(names, j.Name)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[builders.AnnotationRetrain] = token
		g.Expect(k8sClient.Update(context.Background(), d)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	return waitForOneJob(t, det, names...)
}
