package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/hack/promtest"
)

// expectStalled waits until det is Stalled for reason with a message containing want.
func expectStalled(t *testing.T, det *kadetv1.Detector, reason, want string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		st := condition(d, kadetv1.StalledCondition)
		g.Expect(st).NotTo(BeNil(), "%+v", d.Status)
		g.Expect(st.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(st.Reason).To(Equal(reason))
		g.Expect(st.Message).To(ContainSubstring(want), "%+v", d.Status)
		g.Expect(condition(d, kadetv1.ReadyCondition)).To(HaveField("Status", metav1.ConditionFalse))
		g.Expect(d.Status.Phase).To(Equal(kadetv1.PhaseFailed), "%+v", d.Status)
		g.Expect(kstatusOf(g, d)).To(Equal(status.FailedStatus))
	}, timeout, interval).Should(Succeed())
}

func TestMissingDataSourceStallsUntilCreated(t *testing.T) {
	ns := newNamespace(t)
	det := detector(ns, "sensors", "pumps")
	create(t, det)
	expectStalled(t, det, kadetv1.ReasonDataSourceNotFound, `DataSource "pumps" not found`)
	NewWithT(t).Consistently(func(g Gomega) { g.Expect(trainingJobs(g, det)).To(BeEmpty()) }, "1s", interval).Should(Succeed())

	// The DataSource refers to a ConfigMap that does not exist yet.
	ds := csvDataSource(ns, "pumps", "pumps-csv")
	create(t, ds)
	expectStalled(t, det, kadetv1.ReasonDataSourceNotReady, `ConfigMap "pumps-csv" not found`)
	NewWithT(t).Eventually(func(g Gomega) {
		cur := &kadetv1.DataSource{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ds), cur)).To(Succeed())
		g.Expect(readyCondition(cur)).To(HaveField("Message", `ConfigMap "pumps-csv" not found`))
		g.Expect(cur.Status.SourceType).To(Equal("csv"))
		// Only someone creating the ConfigMap can help: kstatus reads it as failed.
		g.Expect(kstatusOf(g, cur)).To(Equal(status.FailedStatus))
	}, timeout, interval).Should(Succeed())

	// A ConfigMap without the key is still not enough.
	cm := &corev1.ConfigMap{}
	cm.Namespace, cm.Name, cm.Data = ns, "pumps-csv", map[string]string{"other.csv": sampleCSV}
	create(t, cm)
	expectStalled(t, det, kadetv1.ReasonDataSourceNotReady, `ConfigMap "pumps-csv" has no key "data.csv"`)

	cm.Data = map[string]string{"data.csv": sampleCSV}
	NewWithT(t).Expect(k8sClient.Update(context.Background(), cm)).To(Succeed())
	waitForOneJob(t, det)
	NewWithT(t).Eventually(func(g Gomega) {
		cur := &kadetv1.DataSource{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ds), cur)).To(Succeed())
		g.Expect(apimeta.FindStatusCondition(cur.Status.Conditions, kadetv1.StalledCondition)).To(BeNil())
		g.Expect(kstatusOf(g, cur)).To(Equal(status.CurrentStatus))
	}, timeout, interval).Should(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(condition(d, kadetv1.StalledCondition)).To(BeNil())
		g.Expect(condition(d, kadetv1.DataSourceReadyCondition)).To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(d.Status.Phase).To(Equal(kadetv1.PhaseTraining))
	}, timeout, interval).Should(Succeed())
}

func TestFailedTrainingStallsUntilDataIsFixed(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	det := detector(ns, "cards", "cards-data")
	// The controller reads this file before training and finds nothing wrong; what the
	// trainer finds (here, too few rows) is reported from the pod.
	cm := csvConfigMap(ns, "cards-csv", sampleCSV)
	create(t, cm, csvDataSource(ns, "cards-data", "cards-csv"), det)
	job := waitForOneJob(t, det)

	failJob(t, job, contract.ExitInvalidInput,
		`{"error":"/var/run/kadet/data/data.csv: 3 rows: too few to train on"}`)
	expectStalled(t, det, kadetv1.ReasonTrainingFailed, `data.csv: 3 rows: too few to train on`)
	g.Eventually(func() map[string]float64 { return seriesOf(t, ctrlmetrics.Registry, ns, "cards") }, timeout, interval).
		Should(HaveKeyWithValue("kadet_detector_stalled{reason="+kadetv1.ReasonTrainingFailed+"}", 1.0),
			"the alert on failed training reads this series")
	d := getDetector(g, det)
	g.Expect(condition(d, kadetv1.TrainedCondition)).To(HaveField("Reason", kadetv1.ReasonTrainingFailed))
	g.Expect(condition(d, kadetv1.ReadyCondition).Message).To(HavePrefix("training Job " + job.Name + " failed (PodFailurePolicy)"))
	// No retry: the same spec would fail the same way.
	g.Consistently(func(g Gomega) {
		jobs := trainingJobs(g, det)
		g.Expect(jobs).To(HaveLen(1))
		g.Expect(jobs[0].Name).To(Equal(job.Name))
	}, "2s", interval).Should(Succeed())

	// Fixing the data starts a new run; nothing had to be deleted.
	cm.Data["data.csv"] += "12,4,0\n"
	g.Expect(k8sClient.Update(context.Background(), cm)).To(Succeed())
	waitForOneJob(t, det, job.Name)
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(condition(d, kadetv1.StalledCondition)).To(BeNil())
		g.Expect(d.Status.Phase).To(Equal(kadetv1.PhaseTraining))
		g.Expect(seriesOf(t, ctrlmetrics.Registry, ns, "cards")).To(HaveKeyWithValue("kadet_detector_phase{phase=Training}", 1.0))
	}, timeout, interval).Should(Succeed())
	g.Expect(seriesOf(t, ctrlmetrics.Registry, ns, "cards")).NotTo(HaveKey(ContainSubstring("kadet_detector_stalled")), "a recovered Detector still reports a stall")
}

func TestTrainingPodWithoutResultIsReported(t *testing.T) {
	ns := newNamespace(t)
	det := detector(ns, "silent", "silent-data")
	create(t, csvConfigMap(ns, "silent-csv", sampleCSV), csvDataSource(ns, "silent-data", "silent-csv"), det)
	job := waitForOneJob(t, det)
	// A crash with no message: the kubelet falls back to the log tail, here empty.
	failJob(t, job, 137, "")
	expectStalled(t, det, kadetv1.ReasonTrainingFailed, "exit code 137")

	// A transient failure is retried on request: the retrain annotation starts a new Job.
	patchDetector(t, det, func(d *kadetv1.Detector) {
		d.Annotations = map[string]string{builders.AnnotationRetrain: "2026-11-28T19:45:00Z"}
	})
	waitForOneJob(t, det, job.Name)
}

func TestIncompatibleModelAndData(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ds := csvDataSource(ns, "tx", "tx-csv")
	det := detector(ns, "classifier", "tx", withModel(kadetv1.MLPClassifier))
	create(t, csvConfigMap(ns, "tx-csv", sampleCSV), ds, det)
	expectStalled(t, det, kadetv1.ReasonIncompatible, "MLPClassifier needs a csv DataSource with labelColumn")
	g.Expect(condition(getDetector(g, det), kadetv1.DataSourceReadyCondition)).To(HaveField("Reason", kadetv1.ReasonIncompatible))

	g.Eventually(func(g Gomega) {
		cur := &kadetv1.DataSource{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ds), cur)).To(Succeed())
		withLabelColumn("label")(cur.Spec.CSV)
		g.Expect(k8sClient.Update(context.Background(), cur)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	job := waitForOneJob(t, det)
	g.Expect(job.Spec.Template.Spec.Volumes).NotTo(BeEmpty())
}

// A trainer killed with SIGKILL (exit 137) is reported as killed, most likely out of
// memory, with its limit and the field that raises it.
func TestKilledTrainingSuggestsMoreMemory(t *testing.T) {
	ns := newNamespace(t)
	det := detector(ns, "big", "big-data", func(d *kadetv1.Detector) {
		d.Spec.Training.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}
	})
	create(t, csvConfigMap(ns, "big-csv", sampleCSV), csvDataSource(ns, "big-data", "big-csv"), det)
	job := waitForOneJob(t, det)
	failJobFor(t, job, batchv1.JobReasonBackoffLimitExceeded, 137, "")
	expectStalled(t, det, kadetv1.ReasonTrainingFailed, "training Job "+job.Name+" failed (BackoffLimitExceeded): the training container was killed (SIGKILL, exit code 137), "+
		"most likely for running out of memory with a memory limit of 256Mi: give it more with spec.training.resources.limits.memory")
}

// A training pod lost with its node (the kubelet's ContainerStatusUnknown, exit code
// 137) while its Job runs another: the Detector stays Reconciling, names the attempt
// and the lost pod (not a lack of memory), records one TrainingRetried event, and the
// retry's model makes it Ready.
func TestLostTrainingPodIsRetried(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	det := detector(ns, "lost", "lost-data")
	create(t, csvConfigMap(ns, "lost-csv", sampleCSV), csvDataSource(ns, "lost-data", "lost-csv"), det)
	job := waitForOneJob(t, det)
	pod := finishTrainingPod(t, job, corev1.PodFailed, 137, "")
	pod.Status.ContainerStatuses[0].State.Terminated.Reason = "ContainerStatusUnknown"
	g.Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
	setJobStatus(t, job, func(s *batchv1.JobStatus) { s.Failed, s.Active = 1, 1 })

	want := "training Job " + job.Name + " is running (attempt 2 of 2; pod " + pod.Name + " failed: the training container was lost " +
		"when its node restarted or went down (ContainerStatusUnknown); the Job retries it while spec.training.backoffLimit allows)"
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(condition(d, kadetv1.TrainedCondition)).To(HaveField("Message", want))
		g.Expect(condition(d, kadetv1.ReconcilingCondition)).To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(condition(d, kadetv1.StalledCondition)).To(BeNil())
		evs := &eventsv1.EventList{}
		g.Expect(k8sClient.List(ctx, evs, client.InNamespace(ns))).To(Succeed())
		n := 0
		for _, e := range evs.Items {
			if e.Reason == kadetv1.ReasonTrainingRetried && e.Regarding.Name == det.Name {
				n += max(1, int(e.DeprecatedCount))
				g.Expect(e.Note).To(ContainSubstring("pod " + pod.Name + " failed"))
			}
		}
		g.Expect(n).To(Equal(1))
	}, timeout, interval).Should(Succeed())

	completeJob(t, job, contract.TrainingResult{Version: "v2", Digest: "sha256:abc", Threshold: 0.75})
	g.Eventually(func(g Gomega) {
		g.Expect(condition(getDetector(g, det), kadetv1.TrainedCondition)).To(HaveField("Status", metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
}

// A ConfigMap CSV that cannot train stalls the Detector before any Job exists, and
// fixing the file brings the Job.
func TestUnreadableCSVStallsBeforeTraining(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	cm := csvConfigMap(ns, "labels-csv", "amount,hour,label\n12.5,3,0\n80.1,14,2\n")
	det := detector(ns, "labels", "labels-data")
	create(t, cm, csvDataSource(ns, "labels-data", "labels-csv", withLabelColumn("label")), det)
	expectStalled(t, det, kadetv1.ReasonIncompatible,
		`DataSource "labels-data" spec.csv: ConfigMap "labels-csv" key "data.csv" line 3, column "label": label "2" is not 0 or 1`)
	g.Consistently(func(g Gomega) { g.Expect(trainingJobs(g, det)).To(BeEmpty()) }, "1s", interval).Should(Succeed())

	g.Eventually(func(g Gomega) {
		cur := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(cm), cur)).To(Succeed())
		cur.Data["data.csv"] = sampleCSV
		g.Expect(k8sClient.Update(context.Background(), cur)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	waitForOneJob(t, det)
}

func TestForeignPVCIsNotTakenOver(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	pvc := builders.ModelPVC(detector(ns, "owned", "x"))
	pvc.Labels = map[string]string{"team": "someone-else"}
	pvc.TypeMeta = metav1.TypeMeta{}
	det := detector(ns, "owned", "owned-data")
	create(t, pvc, csvConfigMap(ns, "owned-csv", sampleCSV), csvDataSource(ns, "owned-data", "owned-csv"), det)
	expectStalled(t, det, kadetv1.ReasonStorageConflict, `PersistentVolumeClaim "owned-models" exists and is not managed by this Detector`)
	g.Consistently(func(g Gomega) { g.Expect(trainingJobs(g, det)).To(BeEmpty()) }, "1s", interval).Should(Succeed())
	cur := &corev1.PersistentVolumeClaim{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pvc), cur)).To(Succeed())
	g.Expect(cur.Labels).To(Equal(pvc.Labels))
}

// A team's own object that holds the name of one of a Detector's children is not
// taken over: the Detector stalls naming it before it creates anything, the object
// keeps what it had, and once the object goes the Detector carries on.
func TestForeignChildrenAreNotTakenOver(t *testing.T) {
	for _, tc := range []struct {
		name    string
		foreign func(ns string) client.Object
		message string
	}{
		{"service", func(ns string) client.Object {
			return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-scoring", Labels: map[string]string{"team": "web"}},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
		}, "Service %s/taken-scoring exists and is not this Detector's (it has no controller)"},
		{"rolebinding", func(ns string) client.Object {
			return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-trainer", Labels: map[string]string{"team": "web"}},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: ns}}}
		}, "RoleBinding %s/taken-trainer exists and is not this Detector's (it has no controller)"},
		{"configmap of another owner", func(ns string) client.Object {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-progress", Labels: map[string]string{"team": "web"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "other", UID: "uid-other", Controller: new(true)}}},
				Data: map[string]string{"team": "data"}}
		}, "ConfigMap %s/taken-progress exists and is not this Detector's (its controller is ConfigMap other)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			obj := tc.foreign(ns)
			det := detector(ns, "taken", "taken-data")
			create(t, obj, csvConfigMap(ns, "taken-csv", sampleCSV), csvDataSource(ns, "taken-data", "taken-csv"), det)
			expectStalled(t, det, kadetv1.ReasonNameConflict, fmt.Sprintf(tc.message, ns))
			g.Consistently(func(g Gomega) { g.Expect(trainingJobs(g, det)).To(BeEmpty()) }, "1s", interval).Should(Succeed())
			cur := obj.DeepCopyObject().(client.Object)
			g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), cur)).To(Succeed())
			g.Expect(cur.GetLabels()).To(Equal(obj.GetLabels()))
			g.Expect(cur.GetAnnotations()).NotTo(HaveKey(AnnotationAppliedHash))
			g.Expect(cur.GetOwnerReferences()).To(Equal(obj.GetOwnerReferences()))
			for _, f := range cur.GetManagedFields() {
				g.Expect(f.Manager).NotTo(Equal(string(FieldOwner)))
			}
			g.Expect(k8sClient.Delete(context.Background(), cur)).To(Succeed())
			waitForOneJob(t, det)
		})
	}
}

// An error from the API server reaches the Ready condition saying what was being done
// and on which object: here a ValidatingAdmissionPolicy refuses every claim in the
// Detector's namespace, the model PVC with it.
func TestAPIErrorNamesItsObject(t *testing.T) {
	ns := newNamespace(t)
	name := "no-claims-in-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"persistentvolumeclaims"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "no claims in this namespace"}},
		}}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		}}
	for _, obj := range []client.Object{policy, binding} {
		NewWithT(t).Expect(k8sClient.Create(context.Background(), obj)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), obj) })
	}
	// The policy is in force once it refuses a claim of its own.
	probe := builders.ModelPVC(detector(ns, "probe", "x"))
	probe.TypeMeta = metav1.TypeMeta{}
	NewWithT(t).Eventually(func() error { return k8sClient.Create(context.Background(), probe.DeepCopy()) }, timeout, interval).
		Should(MatchError(ContainSubstring("no claims in this namespace")))

	det := detector(ns, "quoted", "quoted-data")
	create(t, csvConfigMap(ns, "quoted-csv", sampleCSV), csvDataSource(ns, "quoted-data", "quoted-csv"), det)
	NewWithT(t).Eventually(func(g Gomega) {
		ready := condition(getDetector(g, det), kadetv1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(kadetv1.ReasonReconcileError))
		g.Expect(ready.Message).To(HavePrefix("applying PersistentVolumeClaim "+ns+"/quoted-models: "), ready.Message)
		g.Expect(ready.Message).To(ContainSubstring("no claims in this namespace"))
	}, timeout, interval).Should(Succeed())
}

func TestKubectlWaitAndPrinterColumns(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	det := detector(ns, "metrics", "metrics-data")
	create(t, csvConfigMap(ns, "metrics-csv", sampleCSV), csvDataSource(ns, "metrics-data", "metrics-csv"), det)
	job := waitForOneJob(t, det)

	// While training, kubectl wait for Ready times out.
	out, err := kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "detector/metrics", "--timeout=1s")
	g.Expect(err).To(HaveOccurred(), out)

	// Live epoch and loss show in the wide listing.
	progress := &corev1.ConfigMap{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "metrics-progress"}, progress)).To(Succeed())
	progress.Data = map[string]string{
		contract.ProgressKeySpecHash: job.Labels[builders.LabelSpecHash], contract.ProgressKeyEpoch: "4",
		contract.ProgressKeyEpochs: "20", contract.ProgressKeyLoss: "0.125",
	}
	g.Expect(k8sClient.Update(context.Background(), progress)).To(Succeed())
	g.Eventually(func(g Gomega) {
		out, err := kubectl(t, "get", "detectors", "-n", ns, "-o", "wide")
		g.Expect(err).NotTo(HaveOccurred(), out)
		rows := parseTable(out)
		g.Expect(rows).To(HaveLen(1))
		g.Expect(rows[0]).To(Equal(map[string]string{
			"NAME": "metrics", "MODEL": "Autoencoder", "PHASE": "Training", "VERSION": "", "THRESHOLD": "",
			"READY": "False", "AGE": rows[0]["AGE"], "EPOCH": "4", "LOSS": "0.125", "ENDPOINT": "",
			"ANOMALOUS": "", "LAST-SCORE": "", // a Detector on a file is not watched
		}))
		g.Expect(rows[0]["AGE"]).NotTo(BeEmpty())
	}, timeout, interval).Should(Succeed())

	completeJob(t, job, contract.TrainingResult{Version: "v7", Digest: "sha256:abc", Threshold: 0.75})
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: "metrics-scoring"})
	start := time.Now()
	out, err = kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "detector/metrics", "--timeout=20s")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(time.Since(start)).To(BeNumerically("<", 20*time.Second))

	out, err = kubectl(t, "get", "detector", "metrics", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)
	rows := parseTable(out)
	g.Expect(rows).To(HaveLen(1))
	g.Expect(rows[0]).To(HaveKeyWithValue("PHASE", "Serving"))
	g.Expect(rows[0]).To(HaveKeyWithValue("VERSION", "v7"))
	g.Expect(rows[0]).To(HaveKeyWithValue("THRESHOLD", "0.75"))
	g.Expect(rows[0]).To(HaveKeyWithValue("READY", "True"))
	g.Expect(rows[0]).NotTo(HaveKey("EPOCH"), "wide-only column")
}

// parseTable reads kubectl's column output into one map per row, keyed by header.
// Cells are cut at the header's column offsets, so an empty cell reads as "".
func parseTable(out string) []map[string]string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header := lines[0] + " "
	type column struct {
		name       string
		start, end int
	}
	var cols []column
	for i := range header {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			if n := len(cols); n > 0 {
				cols[n-1].end = i
			}
			cols = append(cols, column{start: i, end: -1})
		}
	}
	cell := func(line string, start, end int) string {
		if end < 0 || end > len(line) {
			end = len(line)
		}
		if start >= end {
			return ""
		}
		return strings.TrimSpace(line[start:end])
	}
	for k := range cols {
		cols[k].name = cell(header, cols[k].start, cols[k].end)
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		row := map[string]string{}
		for _, c := range cols {
			row[c.name] = cell(line, c.start, c.end)
		}
		rows = append(rows, row)
	}
	return rows
}

// A Prometheus DataSource waits for every Secret and ConfigMap its access needs, and
// says which key is missing.
func TestPrometheusDataSourceWaitsForItsCredentials(t *testing.T) {
	ns := newNamespace(t)
	allowSecrets(t, ns)
	ds := &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mimir"}, Spec: kadetv1.DataSourceSpec{
		Prometheus: &kadetv1.PrometheusSource{
			URL: "https://mimir:443", Queries: []kadetv1.PrometheusQuery{{Name: "lat", Query: "latency"}},
			Range: metav1.Duration{Duration: 24 * time.Hour}, Step: metav1.Duration{Duration: time.Minute},
			BasicAuthSecretRef: &kadetv1.LocalObjectReference{Name: "mimir-auth"},
			TLS:                &kadetv1.PrometheusTLS{CAConfigMapRef: &kadetv1.ConfigMapKeyReference{Name: "mimir-ca", Key: "ca.pem"}},
			Headers:            []kadetv1.PrometheusHeader{{Name: "X-Api-Key", ValueFrom: &kadetv1.SecretKeyReference{Name: "mimir-auth", Key: "api-key"}}},
		}}}
	create(t, ds)
	expectReady := func(status metav1.ConditionStatus, msg string) {
		t.Helper()
		NewWithT(t).Eventually(func(g Gomega) {
			cur := &kadetv1.DataSource{}
			g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ds), cur)).To(Succeed())
			g.Expect(readyCondition(cur)).To(HaveField("Status", status))
			g.Expect(readyCondition(cur).Message).To(ContainSubstring(msg))
		}, timeout, interval).Should(Succeed())
	}
	expectReady(metav1.ConditionFalse, `Secret "mimir-auth" not found; ConfigMap "mimir-ca" not found`)
	// Secrets are read, not watched (the manager may get them, not list them); the
	// ConfigMap, watched, brings the next check at once.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mimir-auth"}, Data: map[string][]byte{"username": []byte("kadet")}}
	create(t, secret)
	ca := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mimir-ca"}, Data: map[string]string{"ca.pem": "-----"}}
	create(t, ca)
	expectReady(metav1.ConditionFalse, `Secret "mimir-auth" has no key "password"; Secret "mimir-auth" has no key "api-key"`)
	secret.Data["password"], secret.Data["api-key"] = []byte("s3cret"), []byte("k3y")
	NewWithT(t).Expect(k8sClient.Update(context.Background(), secret)).To(Succeed())
	ca.Data["ca.pem"] = "----- "
	NewWithT(t).Expect(k8sClient.Update(context.Background(), ca)).To(Succeed())
	// Every reference is there and the check reads them: this CA bundle is no PEM.
	expectReady(metav1.ConditionFalse, "https://mimir:443: client settings: unable to use specified CA cert")
}

// Where the manager may not read Secrets (the default: it holds no cluster-wide right
// to them), a DataSource that names one is Ready with its Secrets unchecked and says
// how to have them checked; it never waits for what it cannot see.
func TestPrometheusDataSourceWithoutSecretAccess(t *testing.T) {
	ns := newNamespace(t)
	ds := &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mimir"}, Spec: kadetv1.DataSourceSpec{
		Prometheus: &kadetv1.PrometheusSource{
			URL: "https://mimir:443", Queries: []kadetv1.PrometheusQuery{{Name: "lat", Query: "latency"}},
			Range: metav1.Duration{Duration: 24 * time.Hour}, Step: metav1.Duration{Duration: time.Minute},
			BearerTokenSecretRef: &kadetv1.SecretKeyReference{Name: "mimir-token", Key: "token"},
		}}}
	create(t, ds, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mimir-token"}, Data: map[string][]byte{"token": []byte("t")}})
	NewWithT(t).Eventually(func(g Gomega) {
		cur := &kadetv1.DataSource{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ds), cur)).To(Succeed())
		g.Expect(readyCondition(cur)).To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(readyCondition(cur).Message).To(ContainSubstring("its Secrets are not checked: kadet may not read Secrets in namespace " + ns))
	}, timeout, interval).Should(Succeed())
}

// A DataSource URL that carries credentials (a user and password, a token in its
// query) keeps them in its spec: the status others read says where, never with what.
func TestDataSourceStatusShowsNoURLCredentials(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing answers there
	ns := newNamespace(t)
	ds := &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}, Spec: kadetv1.DataSourceSpec{
		Prometheus: &kadetv1.PrometheusSource{
			URL: "http://alice:hunter2@" + addr + "/prom?token=t0k3n", Queries: []kadetv1.PrometheusQuery{{Name: "up", Query: "up"}},
			Range: metav1.Duration{Duration: time.Hour}, Step: metav1.Duration{Duration: time.Minute},
		}}}
	create(t, ds)
	NewWithT(t).Eventually(func(g Gomega) {
		cur := &kadetv1.DataSource{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ds), cur)).To(Succeed())
		c := readyCondition(cur)
		g.Expect(c).To(HaveField("Reason", kadetv1.ReasonServerUnreachable))
		g.Expect(c.Message).To(ContainSubstring("Prometheus at http://redacted@" + addr + "/prom?token=redacted did not answer"))
		g.Expect(c.Message).NotTo(Or(ContainSubstring("hunter2"), ContainSubstring("t0k3n")))
	}, timeout, interval).Should(Succeed())
}

// A manager not told otherwise asks no Prometheus at a loopback or link-local address:
// from its network position that is the manager itself or a node's metadata service.
// The DataSource is refused with the reason and the flag that allows it.
func TestDataSourceCheckRefusesLocalTargets(t *testing.T) {
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{{Metric: "up", Start: time.Now().Add(-time.Hour),
		Step: time.Minute, Values: make([]float64, 60)}}})
	pr := &kadetv1.PrometheusSource{URL: srv.URL, Queries: []kadetv1.PrometheusQuery{{Name: "up", Query: "up"}}}
	reason, msg, err := (&DataSourceReconciler{}).checkPrometheus(context.Background(), "ns", pr)
	if err != nil || reason != kadetv1.ReasonQueryRefused || !strings.Contains(msg, "refusing to connect to 127.0.0.1") ||
		!strings.Contains(msg, "--allow-local-prometheus") {
		t.Fatalf("%s: %q, %v", reason, msg, err)
	}
	if reason, msg, err := (&DataSourceReconciler{AllowLocalTargets: true}).checkPrometheus(context.Background(), "ns", pr); err != nil || reason != "" {
		t.Fatalf("allowed: %s %q %v", reason, msg, err)
	}
}

// The DataSource asks a real Prometheus each query: a PromQL error comes back with
// Prometheus's message and its position; a query that parses makes it Ready.
func TestPrometheusDataSourceChecksItsQueries(t *testing.T) {
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{{Metric: "up", Start: time.Now().Add(-time.Hour),
		Step: time.Minute, Values: make([]float64, 60)}}})
	ns := newNamespace(t)
	ds := &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prom"}, Spec: kadetv1.DataSourceSpec{
		Prometheus: &kadetv1.PrometheusSource{
			URL: srv.URL, Queries: []kadetv1.PrometheusQuery{{Name: "ok", Query: "up"}, {Name: "broken", Query: "sum(rate(up[5m])"}},
			Range: metav1.Duration{Duration: time.Hour}, Step: metav1.Duration{Duration: time.Minute},
		}}}
	create(t, ds)
	ready := func(g Gomega) *metav1.Condition {
		cur := &kadetv1.DataSource{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ds), cur)).To(Succeed())
		ds = cur
		return readyCondition(cur)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		c := ready(g)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(kadetv1.ReasonQueryRefused))
		g.Expect(c.Message).To(ContainSubstring(`query broken: invalid parameter "query": 1:17: parse error: unclosed left parenthesis`))
		g.Expect(c.Message).NotTo(ContainSubstring("query ok"))
	}, timeout, interval).Should(Succeed())
	// A query with no series now is a metric not scraped yet: not final.
	ds.Spec.Prometheus.Queries[1].Query = "not_scraped_yet"
	NewWithT(t).Expect(k8sClient.Update(context.Background(), ds)).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		c := ready(g)
		g.Expect(c.Reason).To(Equal(kadetv1.ReasonNoSeries))
		g.Expect(c.Message).To(HavePrefix("query broken returns no series now on Prometheus at " + srv.URL))
	}, timeout, interval).Should(Succeed())
	ds.Spec.Prometheus.Queries[1].Query = "sum(rate(up[5m]))"
	NewWithT(t).Expect(k8sClient.Update(context.Background(), ds)).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(ready(g)).To(HaveField("Status", metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
}

// A range that holds too few rows is not a failure: the Detector says how far it is
// from enough, is not Stalled, and trains again when enough should have arrived.
func TestInsufficientDataWaitsAndTriesAgain(t *testing.T) {
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{{Metric: "up", Start: time.Now().Add(-time.Hour),
		Step: time.Minute, Values: make([]float64, 60)}}})
	ns := newNamespace(t)
	create(t, &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fresh"}, Spec: kadetv1.DataSourceSpec{
		Prometheus: &kadetv1.PrometheusSource{
			URL: srv.URL, Queries: []kadetv1.PrometheusQuery{{Name: "up", Query: "up"}},
			Range: metav1.Duration{Duration: time.Hour}, Step: metav1.Duration{Duration: time.Second},
		}}})
	det := detector(ns, "fresh", "fresh", withModel(kadetv1.ConvAutoencoder))
	create(t, det)
	first := waitForOneJob(t, det)
	msg, _ := json.Marshal(contract.TrainingResult{Error: "not enough data to train yet",
		InsufficientData: &contract.InsufficientData{Rows: 317, Needed: 320, Entities: 1, Step: "1s"}})
	failJob(t, first, contract.ExitInsufficientData, string(msg))
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(condition(d, kadetv1.StalledCondition)).To(BeNil())
		ready := condition(d, kadetv1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(kadetv1.ReasonInsufficientData))
		g.Expect(ready.Message).To(ContainSubstring("not enough data to train yet: 317 of 320 rows; enough in about 3s at step 1s; trying again at"))
		g.Expect(condition(d, kadetv1.ReconcilingCondition)).To(HaveField("Status", metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
	// The shortest recheck is 10 s; then a new Job replaces the failed one.
	start := time.Now()
	NewWithT(t).Eventually(func(g Gomega) {
		jobs := trainingJobs(g, det)
		g.Expect(jobs).To(HaveLen(1))
		g.Expect(jobs[0].UID).NotTo(Equal(first.UID))
	}, 30*time.Second, interval).Should(Succeed())
	if waited := time.Since(start); waited > 25*time.Second {
		t.Errorf("the next Job came after %s; want about 10 s", waited)
	}
}

// spec.scoring.networkPolicy.from brings a NetworkPolicy owned by the Detector that
// admits those peers; taken out of the spec, the default admits the Detector's
// namespace; enabled: false deletes it.
func TestScoringNetworkPolicyFollowsTheSpec(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	det := detector(ns, "guarded", "guarded-data", func(d *kadetv1.Detector) {
		d.Spec.Scoring.NetworkPolicy = &kadetv1.ScoringNetworkPolicy{From: []networkingv1.NetworkPolicyPeer{
			{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "payments"}}},
		}}
	})
	create(t, csvConfigMap(ns, "guarded-csv", sampleCSV), csvDataSource(ns, "guarded-data", "guarded-csv"), det)
	completeJob(t, waitForOneJob(t, det), contract.TrainingResult{Version: "20261129-100000-aaaaaaaa", Digest: "sha256:aa", Threshold: 1})
	key := types.NamespacedName{Namespace: ns, Name: "guarded-scoring"}
	np := &networkingv1.NetworkPolicy{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, np) }, timeout, interval).Should(Succeed())
	g.Expect(metav1.IsControlledBy(np, getDetector(g, det))).To(BeTrue())
	g.Expect(np.Spec.Ingress).To(HaveLen(1))
	g.Expect(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels).To(HaveKeyWithValue("app", "payments"))

	g.Eventually(func(g Gomega) {
		cur := getDetector(g, det)
		cur.Spec.Scoring.NetworkPolicy = nil
		g.Expect(k8sClient.Update(ctx, cur)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
		g.Expect(np.Spec.Ingress).To(HaveLen(1))
		g.Expect(np.Spec.Ingress[0].From).To(Equal([]networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}))
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		cur := getDetector(g, det)
		cur.Spec.Scoring.NetworkPolicy = &kadetv1.ScoringNetworkPolicy{Enabled: new(false)}
		g.Expect(k8sClient.Update(ctx, cur)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, &networkingv1.NetworkPolicy{})) }, timeout, interval).Should(BeTrue())
}
