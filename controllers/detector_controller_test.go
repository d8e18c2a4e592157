package controllers

import (
	"context"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// TestDetectorLifecycle walks one Detector through its life: training, serving, a spec
// change, suspension and deletion.
func TestDetectorLifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	det := detector(ns, "fraud", "transactions")
	create(t, csvConfigMap(ns, "transactions-csv", sampleCSV), csvDataSource(ns, "transactions", "transactions-csv"), det)

	// A training Job with the expected pod spec, and the Detector shows it trains.
	job := waitForOneJob(t, det)
	hash := job.Labels[builders.LabelSpecHash]
	g.Expect(job.Name).To(Equal("fraud-train-" + hash))
	pod := job.Spec.Template.Spec
	g.Expect(pod.RestartPolicy).To(Equal(corev1.RestartPolicyNever))
	g.Expect(pod.ServiceAccountName).To(Equal("fraud-trainer"))
	g.Expect(*job.Spec.BackoffLimit).To(Equal(int32(1)))
	g.Expect(pod.Containers).To(HaveLen(1))
	g.Expect(pod.Containers[0].Image).To(Equal(testCfg.Image))
	g.Expect(pod.Containers[0].Args).To(Equal([]string{"train", "--spec", "/etc/kadet/spec/spec.json", "--out", "/var/lib/kadet/models"}))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("VolumeSource.ConfigMap.Name", "fraud-spec-"+hash)))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("VolumeSource.PersistentVolumeClaim.ClaimName", "fraud-models")))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("VolumeSource.ConfigMap.Name", "transactions-csv")))

	// The spec ConfigMap holds the resolved request the binary reads.
	specCM := &corev1.ConfigMap{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fraud-spec-" + hash}, specCM)).To(Succeed())
	g.Expect(*specCM.Immutable).To(BeTrue())
	var req contract.TrainingRequest
	g.Expect(json.Unmarshal([]byte(specCM.Data[contract.SpecFileName]), &req)).To(Succeed())
	g.Expect(req.Data.CSV.File.Path).To(Equal("/var/run/kadet/data/data.csv"))
	g.Expect(req.Data.CSV.Columns).To(Equal([]string{"amount", "hour"}))
	g.Expect(req.Training.Epochs).To(Equal(int32(20)), "CRD default")
	g.Expect(*req.Threshold.Percentile).To(Equal(contract.DefaultPercentile))
	g.Expect(req.Hash()).To(Equal(hash))

	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.Phase).To(Equal(kadetv1.PhaseTraining))
		g.Expect(condition(d, kadetv1.ReconcilingCondition)).To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(condition(d, kadetv1.ReadyCondition)).To(HaveField("Status", metav1.ConditionFalse))
		g.Expect(kstatusOf(g, d)).To(Equal(status.InProgressStatus))
	}, timeout, interval).Should(Succeed())

	// Progress written by the training pod reaches status.training.
	progress := &corev1.ConfigMap{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fraud-progress"}, progress)).To(Succeed())
	progress.Data = map[string]string{
		contract.ProgressKeySpecHash: hash, contract.ProgressKeyEpoch: "3", contract.ProgressKeyEpochs: "20",
		contract.ProgressKeyLoss: "0.25", contract.ProgressKeyValLoss: "0.3",
	}
	g.Expect(k8sClient.Update(ctx, progress)).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		tr := getDetector(g, det).Status.Training
		g.Expect(tr).NotTo(BeNil())
		g.Expect(tr.Epoch).To(Equal(int32(3)))
		g.Expect(tr.Loss).To(HaveValue(BeNumerically("==", 0.25)))
	}, timeout, interval).Should(Succeed())

	// A finished Job's termination message becomes the model; scoring follows.
	// The controller records what the pod reports, scoring rule included.
	completeJob(t, job, contract.TrainingResult{Version: "v1-" + hash, Digest: "sha256:aaa", Threshold: 0.42,
		Metrics: map[string]float64{"valLoss": 0.1}, ScoringRule: contract.ScoringCausal})
	depKey := types.NamespacedName{Namespace: ns, Name: "fraud-scoring"}
	dep := &appsv1.Deployment{}
	svc := &corev1.Service{}
	// The Deployment and the Service are written one after the other: wait for both.
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, depKey, dep)).To(Succeed())
		g.Expect(k8sClient.Get(ctx, depKey, svc)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	g.Expect(dep.Spec.Template.Annotations).To(HaveKeyWithValue(builders.AnnotationModelVersion, "v1-"+hash))
	g.Expect(dep.Spec.Template.Annotations).To(HaveKeyWithValue(builders.AnnotationModelDigest, "sha256:aaa"))
	g.Expect(dep.Spec.Template.Spec.Containers[0].Args).To(ContainElements("--model-version", "v1-"+hash))
	g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(8080)))

	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.Model).NotTo(BeNil())
		g.Expect(d.Status.Model.Version).To(Equal("v1-" + hash))
		g.Expect(d.Status.Model.Threshold).To(Equal(0.42))
		g.Expect(d.Status.Model.ScoringRule).To(Equal(contract.ScoringCausal))
		g.Expect(condition(d, kadetv1.ServingCondition)).To(HaveField("Reason", kadetv1.ReasonRollingOut))
	}, timeout, interval).Should(Succeed())

	rollOutDeployment(t, depKey)
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.Phase).To(Equal(kadetv1.PhaseServing))
		g.Expect(d.Status.Endpoint).To(Equal("http://fraud-scoring." + ns + ".svc:8080"))
		for _, c := range []string{kadetv1.ReadyCondition, kadetv1.DataSourceReadyCondition, kadetv1.TrainedCondition, kadetv1.ServingCondition} {
			g.Expect(condition(d, c)).To(HaveField("Status", metav1.ConditionTrue), c)
			g.Expect(condition(d, c).ObservedGeneration).To(Equal(d.Generation), c)
		}
		g.Expect(condition(d, kadetv1.ReconcilingCondition)).To(BeNil())
		g.Expect(condition(d, kadetv1.StalledCondition)).To(BeNil())
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(kstatusOf(g, d)).To(Equal(status.CurrentStatus))
	}, timeout, interval).Should(Succeed())

	// A spec change starts a new Job and deletes the old one and its spec; the old model
	// keeps serving meanwhile.
	patchDetector(t, det, func(d *kadetv1.Detector) { d.Spec.Training.Epochs = 5 })
	job2 := waitForOneJob(t, det, job.Name)
	hash2 := job2.Labels[builders.LabelSpecHash]
	g.Expect(hash2).NotTo(Equal(hash))
	NewWithT(t).Eventually(func(g Gomega) {
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fraud-spec-" + hash}, &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		d := getDetector(g, det)
		g.Expect(d.Status.Phase).To(Equal(kadetv1.PhaseTraining))
		g.Expect(d.Status.Model.Version).To(Equal("v1-" + hash))
		g.Expect(condition(d, kadetv1.ReadyCondition).ObservedGeneration).To(Equal(d.Generation))
	}, timeout, interval).Should(Succeed())

	// The new model rolls the Deployment.
	completeJob(t, job2, contract.TrainingResult{Version: "v2-" + hash2, Digest: "sha256:bbb", Threshold: 0.5})
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, depKey, dep)).To(Succeed())
		g.Expect(dep.Spec.Template.Annotations).To(HaveKeyWithValue(builders.AnnotationModelVersion, "v2-"+hash2))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, depKey)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(kstatusOf(g, getDetector(g, det))).To(Equal(status.CurrentStatus))
	}, timeout, interval).Should(Succeed())

	// Suspended: a spec change creates nothing.
	patchDetector(t, det, func(d *kadetv1.Detector) { d.Spec.Suspend = true })
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(getDetector(g, det).Status.Phase).To(Equal(kadetv1.PhaseSuspended))
	}, timeout, interval).Should(Succeed())
	patchDetector(t, det, func(d *kadetv1.Detector) { d.Spec.Training.Epochs = 7 })
	g.Consistently(func(g Gomega) {
		jobs := trainingJobs(g, det)
		g.Expect(jobs).To(HaveLen(1))
		g.Expect(jobs[0].Name).To(Equal(job2.Name))
	}, "2s", interval).Should(Succeed())

	// Every child is owned by the Detector, so garbage collection removes it; the model
	// PVC is retained by default.
	d := getDetector(g, det)
	owned := []client.Object{
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: job2.Name}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "fraud-scoring"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "fraud-scoring"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fraud-spec-" + hash2}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fraud-progress"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "fraud-trainer"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "fraud-trainer"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "fraud-trainer"}},
	}
	for _, o := range owned {
		o.SetNamespace(ns)
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed(), "%T %s", o, o.GetName())
		g.Expect(metav1.IsControlledBy(o, d)).To(BeTrue(), "%T %s is not controlled by the Detector", o, o.GetName())
	}
	pvc := &corev1.PersistentVolumeClaim{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fraud-models"}, pvc)).To(Succeed())
	g.Expect(pvc.OwnerReferences).To(BeEmpty(), "retention Retain keeps the PVC after the Detector is gone")

	// With retention Delete the PVC is owned too. Resumed, the Detector trains the spec
	// changed while it was suspended.
	patchDetector(t, det, func(d *kadetv1.Detector) {
		d.Spec.Suspend = false
		d.Spec.Storage.RetentionPolicy = kadetv1.DeleteModels
	})
	waitForOneJob(t, det, job2.Name)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fraud-models"}, pvc)).To(Succeed())
		g.Expect(metav1.IsControlledBy(pvc, d)).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	g.Eventually(func() map[string]float64 { return seriesOf(t, ctrlmetrics.Registry, ns, "fraud") }, timeout, interval).
		Should(HaveKey("kadet_detector_threshold"))

	// Deleting: kadet holds no finalizer, so the Detector goes at once, and its series
	// with it; its children stay for the garbage collector (not running here), and the
	// pass that finds the Detector gone creates nothing.
	g.Expect(k8sClient.Delete(ctx, d)).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(d), &kadetv1.Detector{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Get after delete: %v", err)
		g.Expect(seriesOf(t, ctrlmetrics.Registry, ns, "fraud")).To(BeEmpty(), "the deleted Detector's series are still exported")
	}, timeout, interval).Should(Succeed())
	left := trainingJobs(g, det)
	g.Consistently(func(g Gomega) {
		g.Expect(trainingJobs(g, det)).To(HaveLen(len(left)))
	}, "2s", interval).Should(Succeed())
}

func patchDetector(t *testing.T, det *kadetv1.Detector, mutate func(*kadetv1.Detector)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		cur := getDetector(g, det)
		before := cur.DeepCopy()
		mutate(cur)
		g.Expect(k8sClient.Patch(context.Background(), cur, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))).To(Succeed())
	}, timeout, interval).Should(Succeed())
}
