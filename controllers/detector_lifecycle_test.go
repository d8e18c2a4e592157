package controllers

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// offsetClock is the real clock moved forward by what the tests add: schedules and
// model ages tick without waiting.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *offsetClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

var testClock = &offsetClock{}

// trainedVersion completes job with a model of the given version and waits until the
// Detector records it.
func trainedVersion(t *testing.T, det *kadetv1.Detector, job *batchv1.Job, version string) {
	t.Helper()
	at := testClock.Now().UTC().Truncate(time.Second)
	completeJob(t, job, contract.TrainingResult{Version: version, Digest: "sha256:" + version, Threshold: 0.5, TrainedAt: &at,
		Metrics: map[string]float64{"loss": 0.25}, Kadet: "v-test"})
	NewWithT(t).Eventually(func(g Gomega) {
		m := getDetector(g, det).Status.Model
		g.Expect(m).NotTo(BeNil())
		g.Expect(m.Version).To(Equal(version))
	}, timeout, interval).Should(Succeed())
}

func listModelVersions(g Gomega, det *kadetv1.Detector) []kadetv1.ModelVersion {
	list := &kadetv1.ModelVersionList{}
	g.Expect(k8sClient.List(context.Background(), list, client.InNamespace(det.Namespace),
		client.MatchingLabels{builders.LabelDetector: det.Name})).To(Succeed())
	return list.Items
}

func servedArg(g Gomega, det *kadetv1.Detector) string {
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: det.Namespace, Name: builders.ScoringName(det)}, dep)).To(Succeed())
	args := dep.Spec.Template.Spec.Containers[0].Args
	for i, a := range args {
		if a == "--model-version" {
			return args[i+1]
		}
	}
	return ""
}

// Each training result gives one ModelVersion (the same one after the manager
// restarts: its name is the version's); a retraining by the annotation that fails keeps
// the model serving and Ready with TrainingFailed; a pin serves an older version, a
// pin to none stalls naming it; keepVersions prunes the oldest through a Job and never
// the pinned one.
func TestModelVersionsPinningAndPruning(t *testing.T) {
	ns := newNamespace(t)
	create(t, csvConfigMap(ns, "tx", sampleCSV), csvDataSource(ns, "tx", "tx"))
	det := detector(ns, "life", "tx", func(d *kadetv1.Detector) { d.Spec.Storage.KeepVersions = new(int32(2)) })
	create(t, det)
	ctx := context.Background()
	trainedVersion(t, det, waitForOneJob(t, det), "20261129-100000-aaaaaaaa")
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: "life-scoring"})
	NewWithT(t).Eventually(func(g Gomega) {
		vs := listModelVersions(g, det)
		g.Expect(vs).To(HaveLen(1))
		v := vs[0]
		g.Expect(v.Name).To(Equal("life-20261129-100000-aaaaaaaa"))
		g.Expect(v.Spec.Digest).To(Equal("sha256:20261129-100000-aaaaaaaa"))
		g.Expect(v.Spec.Metrics["loss"]).To(Equal(0.25))
		g.Expect(v.Spec.Data.Source).To(Equal("csv"))
		g.Expect(v.Spec.Data.Digest).To(HavePrefix("sha256:"))
		g.Expect(v.Spec.DetectorVersion).To(Equal("v-test"))
		g.Expect(v.Spec.Seed).To(Equal(int64(1)))
		g.Expect(v.Status.Phase).To(Equal(kadetv1.ModelServing))
		g.Expect(v.Status.ServedSince).NotTo(BeNil())
		g.Expect(metav1.IsControlledBy(&v, getDetector(g, det))).To(BeTrue())
		g.Expect(getDetector(g, det).Status.ServedVersion).To(Equal("20261129-100000-aaaaaaaa"))
	}, timeout, interval).Should(Succeed())
	// The record cannot be edited.
	v := listModelVersions(NewWithT(t), det)[0]
	v.Spec.Threshold = 9
	if err := k8sClient.Update(ctx, &v); err == nil || !strings.Contains(err.Error(), "spec is immutable") {
		t.Errorf("editing a ModelVersion's spec: %v", err)
	}

	// A retraining that fails: still Ready, serving the first model, TrainingFailed.
	job := retrainWith(t, det, "1")
	NewWithT(t).Consistently(func(g Gomega) {
		g.Expect(condition(getDetector(g, det), kadetv1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
	}, 2*time.Second, interval).Should(Succeed())
	failJob(t, job, 1, "out of memory")
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(condition(d, kadetv1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(d, kadetv1.StalledCondition)).To(BeNil())
		tf := condition(d, kadetv1.TrainingFailedCondition)
		g.Expect(tf).NotTo(BeNil())
		g.Expect(tf.Message).To(ContainSubstring("model 20261129-100000-aaaaaaaa keeps serving"))
		g.Expect(servedArg(g, d)).To(Equal("20261129-100000-aaaaaaaa"))
	}, timeout, interval).Should(Succeed())

	// Two more models: the third prunes the first (keepVersions 2).
	trainedVersion(t, det, retrainWith(t, det, "2"), "20261129-110000-bbbbbbbb")
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: "life-scoring"})
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(condition(getDetector(g, det), kadetv1.TrainingFailedCondition)).To(BeNil())
	}, timeout, interval).Should(Succeed())

	// Pin the first: the Deployment serves it.
	pin := func(version string) {
		t.Helper()
		NewWithT(t).Eventually(func(g Gomega) {
			d := getDetector(g, det)
			d.Spec.Scoring.ModelVersion = version
			g.Expect(k8sClient.Update(ctx, d)).To(Succeed())
		}, timeout, interval).Should(Succeed())
	}
	pin("20261129-100000-aaaaaaaa")
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(servedArg(g, det)).To(Equal("20261129-100000-aaaaaaaa"))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: "life-scoring"})
	trainedVersion(t, det, retrainWith(t, det, "3"), "20261129-120000-cccccccc")
	// The pinned first stays; the second is the oldest unprotected one beyond two.
	var prune batchv1.Job
	NewWithT(t).Eventually(func(g Gomega) {
		for _, j := range trainingJobs(g, det) {
			if j.Labels[builders.LabelComponent] == builders.ComponentPruning {
				prune = j
			}
		}
		g.Expect(prune.Name).NotTo(BeEmpty())
	}, timeout, interval).Should(Succeed())
	args := strings.Join(prune.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.HasSuffix(args, "--versions 20261129-110000-bbbbbbbb") {
		t.Errorf("prune Job args %q; want only the unpinned oldest", args)
	}
	if got := servedArg(NewWithT(t), det); got != "20261129-100000-aaaaaaaa" {
		t.Errorf("a new model replaced the pinned one: serving %s", got)
	}
	setJobStatus(t, &prune, func(s *batchv1.JobStatus) {
		now := metav1.Now()
		s.StartTime, s.CompletionTime, s.Succeeded = &now, &now, 1
		s.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	})
	NewWithT(t).Eventually(func(g Gomega) {
		var left []string
		for _, v := range listModelVersions(g, det) {
			left = append(left, v.Spec.Version)
		}
		g.Expect(left).To(ConsistOf("20261129-100000-aaaaaaaa", "20261129-120000-cccccccc"))
	}, timeout, interval).Should(Succeed())

	// A pin to a version that does not exist stalls, naming it.
	pin("20261129-090000-dddddddd")
	NewWithT(t).Eventually(func(g Gomega) {
		st := condition(getDetector(g, det), kadetv1.StalledCondition)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(kadetv1.ReasonModelVersionNotFound))
		g.Expect(st.Message).To(ContainSubstring(`spec.scoring.modelVersion "20261129-090000-dddddddd"`))
	}, timeout, interval).Should(Succeed())
}

// A schedule starts a run at each tick (the clock moved forward), a run of its own
// with a new Job; ticks missed while nothing reconciled give one run; an invalid
// schedule stalls naming the field.
func TestScheduledRetraining(t *testing.T) {
	ns := newNamespace(t)
	create(t, csvConfigMap(ns, "tx", sampleCSV), csvDataSource(ns, "tx", "tx"))
	det := detector(ns, "sched", "tx", func(d *kadetv1.Detector) {
		d.Spec.Training.Schedule = "0 3 * * *"
		d.Spec.Training.TimeZone = "Europe/Berlin"
	})
	create(t, det)
	trainedVersion(t, det, waitForOneJob(t, det), "20261129-100000-aaaaaaaa")
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: "sched-scoring"})
	var next time.Time
	NewWithT(t).Eventually(func(g Gomega) {
		rs := getDetector(g, det).Status.Retraining
		g.Expect(rs).NotTo(BeNil())
		g.Expect(rs.NextRun).NotTo(BeNil())
		next = rs.NextRun.Time
	}, timeout, interval).Should(Succeed())
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if n := next.In(berlin); n.Hour() != 3 || n.Minute() != 0 || !n.After(testClock.Now()) {
		t.Errorf("next run %s (%s in Berlin); want the next 03:00 in Berlin", next, n)
	}
	if len(trainingJobs(NewWithT(t), det)) != 1 {
		t.Error("a new schedule started a run for a tick before it")
	}
	// Three days pass while nothing reconciles: one run, for the latest tick.
	testClock.advance(next.Sub(testClock.Now()) + 48*time.Hour + time.Minute)
	poke(t, det)
	job := waitForOneJob(t, det, builders.TrainingJobName(det, getDetector(NewWithT(t), det).Status.Model.SpecHash))
	// The Job is created within the pass; its status lands at the pass's end.
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		lr := d.Status.Retraining.LastRun
		g.Expect(lr).NotTo(BeNil())
		g.Expect(lr.Time.Equal(next.Add(48*time.Hour))).To(BeTrue(), "last run %s; want the latest missed tick %s", lr, next.Add(48*time.Hour))
		c := condition(d, kadetv1.ReadyCondition)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "Ready while retraining: %s", c.Message)
	}, timeout, interval).Should(Succeed())
	trainedVersion(t, det, job, "20261129-120000-bbbbbbbb")

	// An expression CEL lets through but cron cannot read stalls, naming the field.
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		d.Spec.Training.Schedule = "61 3 * * *"
		g.Expect(k8sClient.Update(context.Background(), d)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		st := condition(getDetector(g, det), kadetv1.StalledCondition)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(kadetv1.ReasonInvalidSchedule))
		g.Expect(st.Message).To(ContainSubstring(`spec.training.schedule "61 3 * * *"`))
	}, timeout, interval).Should(Succeed())
}

// poke brings a pass now (an annotation unrelated to training).
func poke(t *testing.T, det *kadetv1.Detector) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["test/poke"] = time.Now().String()
		g.Expect(k8sClient.Update(context.Background(), d)).To(Succeed())
	}, timeout, interval).Should(Succeed())
}
