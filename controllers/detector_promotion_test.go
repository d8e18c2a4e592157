package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

func TestGate(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rep := func(rows, anomalies int64, expected float64, age time.Duration) contract.ShadowReport {
		return contract.ShadowReport{Version: "v2", Served: "v1", Since: now.Add(-age), Rows: rows, Anomalies: anomalies,
			ServedAnomalies: rows / 100, Agreed: rows - anomalies, ExpectedAnomalyRate: expected, Time: now}
	}
	auto := kadetv1.PromotionSpec{Policy: kadetv1.PromoteAutomatic}
	for _, c := range []struct {
		name     string
		reports  []contract.ShadowReport
		pol      kadetv1.PromotionSpec
		decision kadetv1.ShadowDecision
		message  string
	}{
		{"no report", nil, auto, kadetv1.ShadowPending, "waiting for the scoring pods"},
		{"period not over", []contract.ShadowReport{rep(5000, 50, 0.01, 5*time.Minute)}, auto, kadetv1.ShadowPending, "scoring in shadow until 2026-11-30T12:05:00Z (5000 rows so far)"},
		{"no traffic", []contract.ShadowReport{rep(0, 0, 0.01, time.Hour)}, auto, kadetv1.ShadowPending, "needs live traffic"},
		{"as expected", []contract.ShadowReport{rep(1000, 12, 0.01, time.Hour), rep(1000, 8, 0.01, time.Hour)}, auto, kadetv1.ShadowPromoted,
			"anomaly rate 1.0% on 2000 live rows in shadow (the served model's 1.0%; agreement 99.0%) is within 2 x the rate its calibration expects (1.0%)"},
		// 2.5% of 1,000 rows against a bound of 2%: chance explains it (p = 0.15).
		{"a little above the bound on few rows", []contract.ShadowReport{rep(1000, 25, 0.01, time.Hour)}, auto, kadetv1.ShadowPromoted, "within 2 x"},
		{"far above", []contract.ShadowReport{rep(2000, 200, 0.01, time.Hour)}, auto, kadetv1.ShadowRejected,
			"anomaly rate 10.0% on 2000 live rows in shadow (the served model's 1.0%; agreement 90.0%) is above 2 x the rate its calibration expects (1.0%)"},
		{"rows instead of a period", []contract.ShadowReport{rep(400, 4, 0.01, time.Second)},
			kadetv1.PromotionSpec{Policy: kadetv1.PromoteAutomatic, ShadowRows: new(int64(500))}, kadetv1.ShadowPending, "400 of 500 rows scored in shadow"},
		{"manual", []contract.ShadowReport{rep(2000, 20, 0.01, time.Hour)}, kadetv1.PromotionSpec{Policy: kadetv1.PromoteManual},
			kadetv1.ShadowCandidate, "; pin it to serve it"},
		{"other features", []contract.ShadowReport{{Version: "v2", Served: "v1", Incompatible: "its features differ from the served model's", Time: now}}, auto,
			kadetv1.ShadowCandidate, "cannot be compared with version v1 on live rows: its features differ"},
		{"labelled feedback: worse", []contract.ShadowReport{withFeedback(rep(2000, 20, 0.01, time.Hour), 0.70, 0.84)}, auto, kadetv1.ShadowRejected,
			"on 40 labelled marks (12 anomalies) its F1 0.700 and AUROC 0.900 against the served model's 0.840 and 0.900: lower by more than 0.02"},
		{"labelled feedback: as good", []contract.ShadowReport{withFeedback(rep(2000, 20, 0.01, time.Hour), 0.83, 0.84)}, auto, kadetv1.ShadowPromoted,
			"; on 40 labelled marks (12 anomalies) its F1 0.830"},
		{"old file, the served model flagged none: one row is not refused", []contract.ShadowReport{
			{Version: "v2", Served: "v1", Since: now.Add(-time.Hour), Rows: 500, Anomalies: 1, Agreed: 499, Time: now}}, auto, kadetv1.ShadowPromoted, "within 2 x the served model's rate"},
		{"old file: the served model's rate", []contract.ShadowReport{rep(2000, 100, 0, time.Hour)}, auto, kadetv1.ShadowRejected,
			"above 2 x the served model's rate on the same rows (1.0%)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := gate(c.reports, c.pol, now)
			if v.decision != c.decision || !strings.Contains(v.message, c.message) {
				t.Errorf("%s %q; want %s containing %q", v.decision, v.message, c.decision, c.message)
			}
		})
	}
}

func withFeedback(r contract.ShadowReport, shadowF1, servedF1 float64) contract.ShadowReport {
	r.Feedback = &contract.FeedbackComparison{Marks: 40, Anomalies: 12, ServedF1: servedF1, ShadowF1: shadowF1, ServedAUROC: 0.9, ShadowAUROC: 0.9}
	return r
}

func writeShadowReport(t *testing.T, det *kadetv1.Detector, pod string, r contract.ShadowReport) {
	t.Helper()
	r.Time = testClock.Now().UTC().Truncate(time.Second)
	writePodReport(t, det, contract.ShadowReportPrefix+pod, r)
}

func scoringArgs(g Gomega, det *kadetv1.Detector) string {
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: det.Namespace, Name: builders.ScoringName(det)}, dep)).To(Succeed())
	return strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
}

func versionPhase(g Gomega, det *kadetv1.Detector, version string) (kadetv1.ModelVersionPhase, string) {
	vs := listModelVersions(g, det)
	i := slices.IndexFunc(vs, func(v kadetv1.ModelVersion) bool { return v.Spec.Version == version })
	g.Expect(i).NotTo(Equal(-1))
	return vs[i].Status.Phase, vs[i].Status.Message
}

// Under the Automatic policy a retrained version first scores in shadow beside the
// served one (both versions in the pods' flags, the ModelVersion in phase Shadow, the
// Detector Ready on the served one); a gate that passes serves it; a later version
// whose anomaly rate in shadow is far above its calibration's is Rejected and the
// served version does not change.
func TestShadowThenGate(t *testing.T) {
	ns := newNamespace(t)
	create(t, csvConfigMap(ns, "tx", sampleCSV), csvDataSource(ns, "tx", "tx"))
	det := detector(ns, "gated", "tx", func(d *kadetv1.Detector) {
		d.Spec.Promotion = kadetv1.PromotionSpec{Policy: kadetv1.PromoteAutomatic, ShadowPeriod: &metav1.Duration{Duration: 5 * time.Minute}}
	})
	create(t, det)
	dep := client.ObjectKey{Namespace: ns, Name: builders.ScoringName(det)}
	trainedVersion(t, det, waitForOneJob(t, det), "20261130-100000-aaaaaaaa")
	rollOutDeployment(t, dep)
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		g.Expect(getDetector(g, det).Status.ServedVersion).To(Equal("20261130-100000-aaaaaaaa"))
	}, timeout, interval).Should(Succeed())

	trainedVersion(t, det, retrainWith(t, det, "1"), "20261130-110000-bbbbbbbb")
	g.Eventually(func(g Gomega) {
		args := scoringArgs(g, det)
		g.Expect(args).To(ContainSubstring("--model-version 20261130-100000-aaaaaaaa"))
		g.Expect(args).To(ContainSubstring("--shadow-version 20261130-110000-bbbbbbbb"))
		g.Expect(args).To(ContainSubstring("--status-configmap gated-watch-status"))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, dep)
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.Shadow).NotTo(BeNil())
		g.Expect(d.Status.Shadow.Decision).To(Equal(kadetv1.ShadowPending))
		g.Expect(condition(d, kadetv1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
		phase, _ := versionPhase(g, det, "20261130-110000-bbbbbbbb")
		g.Expect(phase).To(Equal(kadetv1.ModelShadow))
	}, timeout, interval).Should(Succeed())

	since := testClock.Now().UTC().Truncate(time.Second) // when the pod loaded the shadow
	shadowRep := func(version, served string, rows, anomalies int64) contract.ShadowReport {
		return contract.ShadowReport{Version: version, Served: served, Since: since,
			Rows: rows, Anomalies: anomalies, ServedAnomalies: rows / 100, Agreed: rows - anomalies, ExpectedAnomalyRate: 0.01}
	}
	writeShadowReport(t, det, "gated-scoring-a", shadowRep("20261130-110000-bbbbbbbb", "20261130-100000-aaaaaaaa", 3000, 31))
	g.Consistently(func(g Gomega) {
		g.Expect(getDetector(g, det).Status.Shadow.Decision).To(Equal(kadetv1.ShadowPending)) // the period is not over
	}, 2*time.Second, interval).Should(Succeed())
	testClock.advance(6 * time.Minute)
	writeShadowReport(t, det, "gated-scoring-a", shadowRep("20261130-110000-bbbbbbbb", "20261130-100000-aaaaaaaa", 3100, 32))
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.Shadow.Decision).To(Equal(kadetv1.ShadowPromoted))
		args := scoringArgs(g, det)
		g.Expect(args).To(ContainSubstring("--model-version 20261130-110000-bbbbbbbb"))
		g.Expect(args).NotTo(ContainSubstring("--shadow-version"))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, dep)
	g.Eventually(func(g Gomega) {
		g.Expect(getDetector(g, det).Status.ServedVersion).To(Equal("20261130-110000-bbbbbbbb"))
		phase, msg := versionPhase(g, det, "20261130-110000-bbbbbbbb")
		g.Expect(phase).To(Equal(kadetv1.ModelServing))
		// the report before the clock moved may be the one the gate read, if it came late
		g.Expect(msg).To(MatchRegexp(`^anomaly rate 1\.0% on 3[01]00 live rows in shadow`))
		phase, _ = versionPhase(g, det, "20261130-100000-aaaaaaaa")
		g.Expect(phase).To(Equal(kadetv1.ModelAvailable))
	}, timeout, interval).Should(Succeed())

	// A bad candidate: rejected, the served version stays.
	trainedVersion(t, det, retrainWith(t, det, "2"), "20261130-120000-cccccccc")
	g.Eventually(func(g Gomega) {
		g.Expect(scoringArgs(g, det)).To(ContainSubstring("--shadow-version 20261130-120000-cccccccc"))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, dep)
	// One report, written after the period: the gate decides on it.
	since = testClock.Now().Add(-6 * time.Minute).UTC().Truncate(time.Second)
	writeShadowReport(t, det, "gated-scoring-b", shadowRep("20261130-120000-cccccccc", "20261130-110000-bbbbbbbb", 2100, 735))
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.Shadow.Decision).To(Equal(kadetv1.ShadowRejected))
		args := scoringArgs(g, det)
		g.Expect(args).To(ContainSubstring("--model-version 20261130-110000-bbbbbbbb"))
		g.Expect(args).NotTo(ContainSubstring("--shadow-version"))
		phase, msg := versionPhase(g, det, "20261130-120000-cccccccc")
		g.Expect(phase).To(Equal(kadetv1.ModelRejected))
		g.Expect(msg).To(ContainSubstring("anomaly rate 35.0% on 2100 live rows in shadow"))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, dep)
	g.Eventually(func(g Gomega) {
		g.Expect(condition(getDetector(g, det), kadetv1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.ServedVersion).To(Equal("20261130-110000-bbbbbbbb"))
		g.Expect(condition(d, kadetv1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
	}, 2*time.Second, interval).Should(Succeed())
}

// Under the Manual policy a version that passes its shadow period waits as a
// Candidate, the served version unchanged, until people pin it.
func TestManualPromotionWaitsForAPin(t *testing.T) {
	ns := newNamespace(t)
	create(t, csvConfigMap(ns, "tx", sampleCSV), csvDataSource(ns, "tx", "tx"))
	det := detector(ns, "manual", "tx", func(d *kadetv1.Detector) {
		d.Spec.Promotion = kadetv1.PromotionSpec{Policy: kadetv1.PromoteManual, ShadowRows: new(int64(100))}
	})
	create(t, det)
	ctx := context.Background()
	dep := client.ObjectKey{Namespace: ns, Name: builders.ScoringName(det)}
	first := waitForOneJob(t, det)
	trainedVersion(t, det, first, "20261130-100000-aaaaaaaa")
	rollOutDeployment(t, dep)
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		g.Expect(getDetector(g, det).Status.ServedVersion).To(Equal("20261130-100000-aaaaaaaa"))
	}, timeout, interval).Should(Succeed())
	trainedVersion(t, det, retrainWith(t, det, "1"), "20261130-110000-bbbbbbbb")
	g.Eventually(func(g Gomega) {
		g.Expect(scoringArgs(g, det)).To(ContainSubstring("--shadow-version 20261130-110000-bbbbbbbb"))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, dep)
	writeShadowReport(t, det, "manual-scoring-a", contract.ShadowReport{Version: "20261130-110000-bbbbbbbb", Served: "20261130-100000-aaaaaaaa",
		Since: testClock.Now().UTC(), Rows: 150, Anomalies: 1, ServedAnomalies: 2, Agreed: 149, ExpectedAnomalyRate: 0.01})
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(d.Status.Shadow.Decision).To(Equal(kadetv1.ShadowCandidate))
		g.Expect(d.Status.Shadow.Message).To(HaveSuffix("; pin it to serve it"))
		phase, _ := versionPhase(g, det, "20261130-110000-bbbbbbbb")
		g.Expect(phase).To(Equal(kadetv1.ModelCandidate))
		args := scoringArgs(g, det)
		g.Expect(args).To(ContainSubstring("--model-version 20261130-100000-aaaaaaaa"))
		g.Expect(args).NotTo(ContainSubstring("--shadow-version"))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, dep)
	g.Consistently(func(g Gomega) {
		g.Expect(getDetector(g, det).Status.ServedVersion).To(Equal("20261130-100000-aaaaaaaa"))
	}, 2*time.Second, interval).Should(Succeed())

	// People promote it by pinning it.
	g.Eventually(func(g Gomega) {
		d := getDetector(g, det)
		d.Spec.Scoring.ModelVersion = "20261130-110000-bbbbbbbb"
		g.Expect(k8sClient.Update(ctx, d)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(scoringArgs(g, det)).To(ContainSubstring("--model-version 20261130-110000-bbbbbbbb"))
	}, timeout, interval).Should(Succeed())
	rollOutDeployment(t, dep)
	g.Eventually(func(g Gomega) {
		g.Expect(getDetector(g, det).Status.ServedVersion).To(Equal("20261130-110000-bbbbbbbb"))
		phase, _ := versionPhase(g, det, "20261130-110000-bbbbbbbb")
		g.Expect(phase).To(Equal(kadetv1.ModelServing))
	}, timeout, interval).Should(Succeed())
}
