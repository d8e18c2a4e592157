package controllers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/hack/promtest"
)

// A Detector on Prometheus gets what its scoring pods need to watch (the request, a
// Lease, a ServiceAccount limited to that Lease and its status ConfigMap); what the
// pods report becomes status.watch and one event per episode start and end. Without
// the prometheus-operator CRDs the Alerting condition says so; once they are installed
// the PrometheusRule and PodMonitor appear, without a restart.
func TestPrometheusDetectorWatchesAndAlerts(t *testing.T) {
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{{Metric: "up", Labels: map[string]string{"pod": "a"},
		Start: time.Now().Add(-time.Hour), Step: time.Minute, Values: make([]float64, 60)}}})
	ns := newNamespace(t)
	create(t, &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "up"}, Spec: kadetv1.DataSourceSpec{
		Prometheus: &kadetv1.PrometheusSource{
			URL: srv.URL, Queries: []kadetv1.PrometheusQuery{{Name: "up", Query: "up"}}, EntityLabels: []string{"pod", "namespace"},
			Range: metav1.Duration{Duration: time.Hour}, Step: metav1.Duration{Duration: time.Minute},
		}}})
	det := detector(ns, "up", "up", withModel(kadetv1.ConvAutoencoder), func(d *kadetv1.Detector) {
		d.Spec.Scoring.Interval = &metav1.Duration{Duration: 15 * time.Second}
		d.Spec.Alerting.For = &metav1.Duration{Duration: 2 * time.Minute}
	})
	create(t, det)
	job := waitForOneJob(t, det)

	ctx := context.Background()
	key := func(name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }
	NewWithT(t).Eventually(func(g Gomega) {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(ctx, key("up-watch"), cm)).To(Succeed())
		req, err := contract.ParseWatchRequest([]byte(cm.Data[contract.WatchFileName]))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(req.Interval).To(Equal("15s"))
		g.Expect(req.Prometheus.URL).To(Equal(srv.URL))
		g.Expect(req.Lease).To(Equal("up-scoring"))
		g.Expect(k8sClient.Get(ctx, key("up-scoring"), &coordinationv1.Lease{})).To(Succeed())
		g.Expect(k8sClient.Get(ctx, key("up-watch-status"), &corev1.ConfigMap{})).To(Succeed())
		a := condition(getDetector(g, det), kadetv1.AlertingCondition)
		g.Expect(a).NotTo(BeNil())
		g.Expect(a.Reason).To(Equal(kadetv1.ReasonPrometheusOperatorMissing))
		g.Expect(a.Message).To(ContainSubstring("prometheusrules.monitoring.coreos.com"))
	}, timeout, interval).Should(Succeed())

	// The pods' identity may hold their Lease and write their status, nothing more.
	for _, c := range []struct {
		verb, resource, name string
		allowed              bool
	}{
		{"update", "leases", "up-scoring", true},
		{"update", "leases", "other", false},
		{"create", "leases", "", false},
		{"patch", "configmaps", "up-watch-status", true},
		{"patch", "configmaps", "up-watch", false},
		{"get", "secrets", "", false},
	} {
		out, _ := kubectl(t, "auth", "can-i", c.verb, c.resource+"/"+c.name, "-n", ns, "--as", "system:serviceaccount:"+ns+":up-scorer")
		if c.name == "" {
			out, _ = kubectl(t, "auth", "can-i", c.verb, c.resource, "-n", ns, "--as", "system:serviceaccount:"+ns+":up-scorer")
		}
		if got := out == "yes\n"; got != c.allowed {
			t.Errorf("scorer can-i %s %s/%s: %q; want allowed=%v", c.verb, c.resource, c.name, out, c.allowed)
		}
	}

	// Trained: the scoring pods watch with the request mounted and their identity.
	btStart, btEnd := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	// The result says what a real one says of the request's defaults, so the next
	// pass's request is the same and nothing retrains.
	completeJob(t, job, contract.TrainingResult{Version: "20261129-000000-aaaaaaaa", Digest: "sha256:aa", Threshold: 1,
		Normalization: contract.NormalizationLikelihood, ScaleBy: contract.ScaleByEntity, Seasonality: contract.SeasonalityAuto,
		Backtest: &contract.BacktestResult{Start: &btStart, End: &btEnd, Rows: 1440, Entities: 1, AnomalousRows: 9, Episodes: 2,
			EpisodesPerDay: 2.0000001, MergeGap: "2m0s", Largest: []contract.BacktestEpisode{
				{Entity: `pod="a"`, Start: btStart.Add(time.Hour), End: btStart.Add(time.Hour + 5*time.Minute), Rows: 6, Peak: 4.5}}}})
	dep := waitForDeployment(t, key("up-scoring"))
	// The training result's backtest is the ModelVersion's, in kubectl get mv, before
	// the version serves.
	NewWithT(t).Eventually(func(g Gomega) {
		vs := listModelVersions(g, det)
		g.Expect(vs).To(HaveLen(1))
		bt := vs[0].Status.Backtest
		g.Expect(bt).NotTo(BeNil())
		g.Expect(bt.Episodes).To(Equal(int32(2)))
		g.Expect(bt.EpisodesPerDay).To(Equal(2.0))
		g.Expect(bt.Largest).To(HaveLen(1))
		g.Expect(bt.Largest[0].Entity).To(Equal(`pod="a"`))
		g.Expect(bt.Largest[0].Start.Time.Equal(btStart.Add(time.Hour))).To(BeTrue())
		g.Expect(getDetector(g, det).Status.Model).To(HaveField("Backtest", Equal(bt)))
	}, timeout, interval).Should(Succeed())
	if out, err := kubectl(t, "get", "modelversions", "-n", ns); err != nil || !strings.Contains(out, "EPISODES/DAY") ||
		!regexp.MustCompile(`up-20261129-000000-aaaaaaaa .* 2 +[0-9]+s`).MatchString(out) {
		t.Errorf("kubectl get modelversions: %v\n%s", err, out)
	}
	spec := dep.Spec.Template.Spec
	if spec.ServiceAccountName != "up-scorer" || !*spec.AutomountServiceAccountToken ||
		!containsArgs(spec.Containers[0].Args, "--watch", "/etc/kadet/watch/watch.json") ||
		dep.Spec.Template.Annotations[builders.AnnotationWatchHash] == "" {
		t.Errorf("scoring pod template does not watch: %+v", spec)
	}

	// A report from the watching pod: one entity anomalous now, one episode over.
	start, end := time.Now().Add(-time.Minute).UTC().Truncate(time.Second), time.Now().UTC().Truncate(time.Second)
	report := func(s contract.WatchStatus) {
		t.Helper()
		b, _ := json.Marshal(s)
		cm := &corev1.ConfigMap{}
		if err := k8sClient.Get(ctx, key("up-watch-status"), cm); err != nil {
			t.Fatal(err)
		}
		cm.Data = map[string]string{contract.WatchStatusKey: string(b)}
		if err := k8sClient.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	report(contract.WatchStatus{Leader: "up-scoring-x", LastScoreTime: &end, Entities: 2, AnomalousNow: 1, Episodes: []contract.AnomalyEpisode{
		{Entity: `pod="b"`, Start: end, PeakScore: 3.5, PeakTime: end, TopFeatures: []string{"up"}},
		{Entity: `pod="a"`, Start: start, End: &end, PeakScore: 1.2, PeakTime: start, TopFeatures: []string{"up"}},
	}})
	NewWithT(t).Eventually(func(g Gomega) {
		w := getDetector(g, det).Status.Watch
		g.Expect(w).NotTo(BeNil())
		g.Expect(w.AnomalousEntities).To(Equal(int32(1)))
		g.Expect(w.Leader).To(Equal("up-scoring-x"))
		g.Expect(w.RecentAnomalies).To(HaveLen(2))
		g.Expect(w.RecentAnomalies[0].Entity).To(Equal(`pod="b"`))
		g.Expect(w.LastScoreTime.Time.Equal(end)).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	// b's episode ends: one more event, none repeated.
	later := end.Add(30 * time.Second)
	report(contract.WatchStatus{Leader: "up-scoring-x", LastScoreTime: &later, Entities: 2, Episodes: []contract.AnomalyEpisode{
		{Entity: `pod="b"`, Start: end, End: &later, PeakScore: 3.5, PeakTime: end, TopFeatures: []string{"up"}},
		{Entity: `pod="a"`, Start: start, End: &end, PeakScore: 1.2, PeakTime: start, TopFeatures: []string{"up"}},
	}})
	NewWithT(t).Eventually(func(g Gomega) {
		evs := &eventsv1.EventList{}
		g.Expect(k8sClient.List(ctx, evs, client.InNamespace(ns))).To(Succeed())
		count := map[string]int{}
		for _, e := range evs.Items {
			if e.Regarding.Name == "up" {
				count[e.Reason] += max(1, int(e.DeprecatedCount))
			}
		}
		g.Expect(count["AnomalyStarted"]).To(Equal(1))
		g.Expect(count["AnomalyEnded"]).To(Equal(2)) // a's (already over at the first report) and b's
		g.Expect(getDetector(g, det).Status.Watch.AnomalousEntities).To(BeZero())
	}, timeout, interval).Should(Succeed())

	// The CRDs arrive: the alerting objects follow, owned by the Detector.
	for _, f := range []string{"monitoring.coreos.com_prometheusrules.yaml", "monitoring.coreos.com_podmonitors.yaml"} {
		raw, err := os.ReadFile(filepath.Join("..", "hack", "crds", "prometheus-operator", f))
		if err != nil {
			t.Fatal(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(raw, crd); err != nil {
			t.Fatal(err)
		}
		if err := k8sClient.Create(ctx, crd); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	rule := &unstructured.Unstructured{}
	rule.SetAPIVersion("monitoring.coreos.com/v1")
	rule.SetKind("PrometheusRule")
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key("up-alerts"), rule)).To(Succeed())
		a := condition(getDetector(g, det), kadetv1.AlertingCondition)
		g.Expect(a.Reason).To(Equal(kadetv1.ReasonAlertsConfigured))
	}, 40*time.Second, interval).Should(Succeed())
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	r := groups[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
	if r["expr"] != `max by (namespace, detector, entity_namespace, pod) (kadet_anomaly_score{namespace="`+ns+`",detector="up"}) > 1` || r["for"] != "2m" {
		t.Errorf("rule %v", r)
	}
	if rule.GetOwnerReferences()[0].Name != "up" {
		t.Errorf("rule owners %v", rule.GetOwnerReferences())
	}
	pm := &unstructured.Unstructured{}
	pm.SetAPIVersion("monitoring.coreos.com/v1")
	pm.SetKind("PodMonitor")
	if err := k8sClient.Get(ctx, key("up-scoring"), pm); err != nil {
		t.Fatal(err)
	}
	// A gate below the served version's backtest (2 episodes a day) holds the rule
	// back, Ready unchanged; raising it brings the rule back.
	gate := func(limit float64) {
		t.Helper()
		NewWithT(t).Eventually(func(g Gomega) {
			d := getDetector(g, det)
			d.Spec.Alerting.MaxEpisodesPerDay = &limit
			g.Expect(k8sClient.Update(ctx, d)).To(Succeed())
		}, timeout, interval).Should(Succeed())
	}
	readyBefore := condition(getDetector(NewWithT(t), det), kadetv1.ReadyCondition).Status
	gate(1.5)
	NewWithT(t).Eventually(func(g Gomega) {
		err := k8sClient.Get(ctx, key("up-alerts"), rule)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "rule: %v", err)
		d := getDetector(g, det)
		a := condition(d, kadetv1.AlertingCondition)
		g.Expect(a.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(a.Reason).To(Equal(kadetv1.ReasonBacktestTooNoisy))
		g.Expect(a.Message).To(ContainSubstring("model 20261129-000000-aaaaaaaa flagged 2.00 episodes a day in its backtest (2 episodes, 2026-11-28T00:00:00Z to 2026-11-29T00:00:00Z), more than spec.alerting.maxEpisodesPerDay 1.5"))
		g.Expect(condition(d, kadetv1.ReadyCondition).Status).To(Equal(readyBefore))
		g.Expect(k8sClient.Get(ctx, key("up-scoring"), pm)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	gate(2)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key("up-alerts"), rule)).To(Succeed())
		g.Expect(condition(getDetector(g, det), kadetv1.AlertingCondition).Reason).To(Equal(kadetv1.ReasonAlertsConfigured))
	}, timeout, interval).Should(Succeed())

	// A backtest asked for by annotation: a Job over the last 7 days with the served
	// version; its figures (5 episodes a day) replace the version's and the gate (2)
	// holds the rule back again.
	annotate := func(v string) {
		t.Helper()
		NewWithT(t).Eventually(func(g Gomega) {
			d := getDetector(g, det)
			d.Annotations = map[string]string{builders.AnnotationBacktest: v}
			g.Expect(k8sClient.Update(ctx, d)).To(Succeed())
		}, timeout, interval).Should(Succeed())
	}
	annotate("7d")
	btJob := &batchv1.Job{}
	btName := builders.BacktestJobName(det, "7d", "20261129-000000-aaaaaaaa")
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		g.Expect(k8sClient.Get(ctx, key(btName), btJob)).To(Succeed(), "annotations %v run %+v conditions %+v", d.Annotations, d.Status.BacktestRun, d.Status.Conditions)
		g.Expect(d.Status.BacktestRun).NotTo(BeNil(), "conditions %+v", d.Status.Conditions)
		g.Expect(d.Status.BacktestRun.Job).To(Equal(btName))
	}, timeout, interval).Should(Succeed())
	if args := btJob.Spec.Template.Spec.Containers[0].Args; !containsArgs(args, "--range", "7d") || !containsArgs(args, "--merge-gap", "2m0s") {
		t.Errorf("backtest Job args %v", args)
	}
	weekAgo := btEnd.Add(-7 * 24 * time.Hour)
	completeJob(t, btJob, contract.TrainingResult{Version: "20261129-000000-aaaaaaaa", Digest: "sha256:aa",
		Backtest: &contract.BacktestResult{Start: &weekAgo, End: &btEnd, Rows: 10080, Entities: 1, AnomalousRows: 200, Episodes: 35, EpisodesPerDay: 5, MergeGap: "2m0s"}})
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(listModelVersions(g, det)[0].Status.Backtest.Episodes).To(Equal(int32(35)))
		d := getDetector(g, det)
		g.Expect(d.Status.BacktestRun.CompletedAt).NotTo(BeNil())
		a := condition(d, kadetv1.AlertingCondition)
		g.Expect(a.Reason).To(Equal(kadetv1.ReasonBacktestTooNoisy))
		g.Expect(a.Message).To(ContainSubstring("flagged 5.00 episodes a day in its backtest (35 episodes"))
		g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key("up-alerts"), rule))).To(BeTrue())
		// A model from before backtests keeps its request: the run changed no hash.
		g.Expect(d.Status.Model.Backtest.Episodes).To(Equal(int32(2)))
	}, timeout, interval).Should(Succeed())
	// A value that is not a range is refused, saying so.
	annotate("soon")
	NewWithT(t).Eventually(func(g Gomega) {
		run := getDetector(g, det).Status.BacktestRun
		g.Expect(run.Request).To(Equal("soon"))
		g.Expect(run.Message).To(ContainSubstring(`annotation anomaly.kadet.dev/backtest "soon": give a positive range of history such as 7d or 24h`))
	}, timeout, interval).Should(Succeed())
	gate(5)

	// Alerting off removes them.
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		d.Spec.Alerting.Enabled = new(false)
		g.Expect(k8sClient.Update(ctx, d)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		err := k8sClient.Get(ctx, key("up-alerts"), rule)
		g.Expect(client.IgnoreNotFound(err)).To(Succeed())
		g.Expect(err).To(HaveOccurred())
		g.Expect(condition(getDetector(g, det), kadetv1.AlertingCondition)).To(BeNil())
	}, timeout, interval).Should(Succeed())
}

func waitForDeployment(t *testing.T, key types.NamespacedName) *appsv1.Deployment {
	t.Helper()
	dep := &appsv1.Deployment{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), key, dep)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	return dep
}

func containsArgs(args []string, want ...string) bool {
	for i := 0; i+len(want) <= len(args); i++ {
		ok := true
		for j := range want {
			ok = ok && args[i+j] == want[j]
		}
		if ok {
			return true
		}
	}
	return false
}
