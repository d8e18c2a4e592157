package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

func report(version string, rows int, ks float64, features ...contract.FeatureDrift) contract.DriftReport {
	return contract.DriftReport{Version: version, Rows: rows, Window: 1000, ScoreKS: ks, Features: features}
}

func TestDriftedCondition(t *testing.T) {
	l := limitsOf(&kadetv1.DriftPolicy{})
	for _, c := range []struct {
		name    string
		reports []contract.DriftReport
		status  metav1.ConditionStatus
		reason  string
		message string
	}{
		{"no report", nil, metav1.ConditionUnknown, kadetv1.ReasonNoReports, "no scoring pod has reported on version v1 yet"},
		{"window not full", []contract.DriftReport{report("v1", 999, 0.9, contract.FeatureDrift{Name: "a", PSI: 3})},
			metav1.ConditionFalse, kadetv1.ReasonMeasuring, "fewer than 1000 rows scored by version v1"},
		{"within limits", []contract.DriftReport{report("v1", 1000, 0.29, contract.FeatureDrift{Name: "a", PSI: 0.24})},
			metav1.ConditionFalse, kadetv1.ReasonNoDrift, "within the limits (feature PSI below 0.25, score KS below 0.3)"},
		{"two features over two pods, largest first", []contract.DriftReport{
			report("v1", 1000, 0.1, contract.FeatureDrift{Name: "b", PSI: 0.3}, contract.FeatureDrift{Name: "c", PSI: 0.2}),
			report("v1", 500, 0.1, contract.FeatureDrift{Name: "z", PSI: 5}), // not full: not counted
			report("v1", 1000, 0.35, contract.FeatureDrift{Name: "a", PSI: 0.9}, contract.FeatureDrift{Name: "b", PSI: 0.26}),
		}, metav1.ConditionTrue, kadetv1.ReasonFeaturesDrifted,
			"features a, b moved from the training data of version v1 (PSI at least 0.25 over the last 1000 rows); its scores moved too (KS at least 0.3)"},
		{"scores alone", []contract.DriftReport{report("v1", 1000, 0.3)}, metav1.ConditionTrue, kadetv1.ReasonScoresDrifted,
			"the scores of version v1 moved from its calibration scores (KS at least 0.3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := driftedCondition(c.reports, "v1", l)
			if got.Status != c.status || got.Reason != c.reason || !strings.Contains(got.Message, c.message) {
				t.Errorf("%s %s %q; want %s %s containing %q", got.Status, got.Reason, got.Message, c.status, c.reason, c.message)
			}
		})
	}
}

func TestDriftReportsKeepTheServedVersionsFreshOnes(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	enc := func(r contract.DriftReport, age time.Duration) string {
		r.Time = now.Add(-age)
		b, _ := json.Marshal(r)
		return string(b)
	}
	data := map[string]string{
		"drift.pod-a":   enc(report("v2", 1000, 0.1), time.Minute),
		"drift.pod-b":   enc(report("v1", 1000, 0.1), time.Minute),    // an older model's
		"drift.pod-c":   enc(report("v2", 1000, 0.1), 11*time.Minute), // a pod gone for two heartbeats
		"drift.pod-d":   "{not json",                                  // garbled
		"status.json":   `{"entities": 3}`,                            // the watch's
		"drift.pod-new": enc(report("v2", 10, 0), 0),
	}
	got := driftReports(data, "v2", now)
	if len(got) != 2 || got[0].Rows != 1000 || got[1].Rows != 10 {
		t.Errorf("reports %+v; want pod-a's and pod-new's", got)
	}
}

func TestDriftRunDue(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	drifted := &metav1.Condition{Status: metav1.ConditionTrue, LastTransitionTime: metav1.Time{Time: t0}}
	l := limitsOf(&kadetv1.DriftPolicy{})
	if due, ok := driftRunDue(drifted, nil, l); !ok || !due.Equal(t0.Add(DefaultDriftFor)) {
		t.Errorf("first drift: due %v %v; want %v", due, ok, t0.Add(DefaultDriftFor))
	}
	last := &metav1.Time{Time: t0.Add(-30 * time.Minute)}
	if due, _ := driftRunDue(drifted, last, l); !due.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("a drift run 30m ago: due %v; want an hour after it", due)
	}
	if _, ok := driftRunDue(&metav1.Condition{Status: metav1.ConditionFalse}, nil, l); ok {
		t.Error("due while not drifted")
	}
	if _, ok := driftRunDue(drifted, nil, limitsOf(&kadetv1.DriftPolicy{Action: kadetv1.DriftReport})); ok {
		t.Error("due with action Report")
	}
}

// writePodReport stands in for a scoring pod: it patches report under key into the
// status ConfigMap as `detector serve --status-configmap` does.
func writePodReport(t *testing.T, det *kadetv1.Detector, key string, report any) {
	t.Helper()
	b, _ := json.Marshal(report)
	cm := &corev1.ConfigMap{}
	name := client.ObjectKey{Namespace: det.Namespace, Name: builders.WatchStatusConfigMapName(det)}
	NewWithT(t).Eventually(func() error { return k8sClient.Get(context.Background(), name, cm) }, timeout, interval).Should(Succeed())
	patch := client.MergeFrom(cm.DeepCopy())
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[key] = string(b)
	if err := k8sClient.Patch(context.Background(), cm, patch); err != nil {
		t.Fatal(err)
	}
}

func writeDriftReport(t *testing.T, det *kadetv1.Detector, pod string, r contract.DriftReport) {
	t.Helper()
	r.Time = testClock.Now().UTC().Truncate(time.Second)
	writePodReport(t, det, contract.DriftReportPrefix+pod, r)
}

// A Detector with onDrift: its scoring pods get the scorer identity and the drift
// flags; a report naming two features makes Drifted True; once it has lasted `for`,
// exactly one retraining starts, and a drift that goes on does not start another
// within minInterval; the new version starts over (Drifted Unknown until it reports).
func TestDriftRetrainsOnce(t *testing.T) {
	ns := newNamespace(t)
	create(t, csvConfigMap(ns, "tx", sampleCSV), csvDataSource(ns, "tx", "tx"))
	det := detector(ns, "drifty", "tx", func(d *kadetv1.Detector) {
		d.Spec.Retraining.OnDrift = &kadetv1.DriftPolicy{Window: new(int32(500)),
			For: &metav1.Duration{Duration: 2 * time.Minute}, MinInterval: &metav1.Duration{Duration: time.Hour}}
	})
	create(t, det)
	first := waitForOneJob(t, det)
	trainedVersion(t, det, first, "20261130-100000-aaaaaaaa")
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: builders.ScoringName(det)})
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		dep := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: builders.ScoringName(det)}, dep)).To(Succeed())
		pod := dep.Spec.Template.Spec
		g.Expect(pod.ServiceAccountName).To(Equal("drifty-scorer"))
		g.Expect(*pod.AutomountServiceAccountToken).To(BeTrue())
		g.Expect(strings.Join(pod.Containers[0].Args, " ")).To(ContainSubstring("--status-configmap drifty-watch-status --drift-window 500"))
		role := &rbacv1.Role{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "drifty-scorer"}, role)).To(Succeed())
		g.Expect(getDetector(g, det).Status.ServedVersion).To(Equal("20261130-100000-aaaaaaaa"))
		c := condition(getDetector(g, det), kadetv1.DriftedCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(kadetv1.ReasonNoReports))
	}, timeout, interval).Should(Succeed())

	writeDriftReport(t, det, "drifty-scoring-1", contract.DriftReport{Version: "20261130-100000-aaaaaaaa", Rows: 500, Window: 500, ScoreKS: 0.2,
		Features: []contract.FeatureDrift{{Name: "amount", PSI: 1.4}, {Name: "hour", PSI: 0.6}, {Name: "merchant_risk", PSI: 0.12}}})
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		c := condition(d, kadetv1.DriftedCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Message).To(HavePrefix("features amount, hour moved from the training data of version 20261130-100000-aaaaaaaa"))
		g.Expect(condition(d, kadetv1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(trainingJobs(g, det)).To(HaveLen(1)) }, 2*time.Second, interval).Should(Succeed())

	testClock.advance(2 * time.Minute)
	// Any write wakes the Detector; a pod's next report does in practice.
	writeDriftReport(t, det, "drifty-scoring-1", contract.DriftReport{Version: "20261130-100000-aaaaaaaa", Rows: 500, Window: 500, ScoreKS: 0.21,
		Features: []contract.FeatureDrift{{Name: "amount", PSI: 1.5}, {Name: "hour", PSI: 0.6}}})
	second := waitForOneJob(t, det, first.Name)
	g.Eventually(func(g Gomega) {
		rs := getDetector(g, det).Status.Retraining
		g.Expect(rs).NotTo(BeNil())
		g.Expect(rs.LastDriftRun).NotTo(BeNil())
	}, timeout, interval).Should(Succeed())

	// The drift goes on while the retraining runs and after: no second run within the hour.
	testClock.advance(10 * time.Minute)
	writeDriftReport(t, det, "drifty-scoring-1", contract.DriftReport{Version: "20261130-100000-aaaaaaaa", Rows: 500, Window: 500, ScoreKS: 0.22,
		Features: []contract.FeatureDrift{{Name: "amount", PSI: 1.6}}})
	trainedVersion(t, det, second, "20261130-110000-bbbbbbbb")
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: builders.ScoringName(det)})
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.ServedVersion).To(Equal("20261130-110000-bbbbbbbb"))
		c := condition(d, kadetv1.DriftedCondition)
		g.Expect(c.Reason).To(Equal(kadetv1.ReasonNoReports))
	}, timeout, interval).Should(Succeed())
	writeDriftReport(t, det, "drifty-scoring-2", contract.DriftReport{Version: "20261130-110000-bbbbbbbb", Rows: 500, Window: 500, ScoreKS: 0.4,
		Features: []contract.FeatureDrift{{Name: "amount", PSI: 1.6}}})
	testClock.advance(5 * time.Minute)
	writeDriftReport(t, det, "drifty-scoring-2", contract.DriftReport{Version: "20261130-110000-bbbbbbbb", Rows: 500, Window: 500, ScoreKS: 0.41,
		Features: []contract.FeatureDrift{{Name: "amount", PSI: 1.7}}})
	// (a new run's Job replaces the one before it)
	g.Consistently(func(g Gomega) {
		jobs := trainingJobs(g, det)
		g.Expect(jobs).To(HaveLen(1))
		g.Expect(jobs[0].Name).To(Equal(second.Name))
	}, 3*time.Second, interval).Should(Succeed())
	g.Expect(condition(getDetector(g, det), kadetv1.DriftedCondition).Status).To(Equal(metav1.ConditionTrue))
}
