package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/hack/promtest"
)

// 7. Metrics in: a real Prometheus beside the cluster, with two days of history of one
// metric and a live exporter of another that has only just started. A sequence-model
// Detector on the history becomes Ready from it; one on the new metric says
// InsufficientData, then becomes Ready by itself once enough seconds have been scraped.
func TestPrometheusDetectorsBecomeReady(t *testing.T) {
	start := time.Now()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	exporter := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := float64(time.Now().Unix())
		fmt.Fprintf(w, "# TYPE kadet_e2e_young gauge\nkadet_e2e_young %g\n", 50+10*math.Sin(2*math.Pi*s/60))
	})}
	go func() { _ = exporter.Serve(l) }()
	t.Cleanup(func() { _ = exporter.Close() })

	end := time.Now().Truncate(time.Minute)
	checkout, payments := make([]float64, 2*24*60), make([]float64, 2*24*60)
	for i := range checkout {
		checkout[i] = 100 + 20*math.Sin(2*math.Pi*float64(i)/1440) + float64(i%7)
		payments[i] = 40 + 8*math.Sin(2*math.Pi*float64(i)/1440) + float64(i%5)
	}
	// An incident on payments 3 hours ago, inside the newest fifth of the range that
	// training holds out for the backtest.
	incident := end.Add(-3 * time.Hour)
	for i := len(payments) - 181; i < len(payments)-151; i++ {
		payments[i] += 60
	}
	first := end.Add(-time.Duration(len(checkout)-1) * time.Minute)
	srv := promtest.Start(t, promtest.Options{
		History: []promtest.Series{
			{Metric: "kadet_e2e_load", Labels: map[string]string{"service": "checkout"}, Start: first, Step: time.Minute, Values: checkout},
			{Metric: "kadet_e2e_load", Labels: map[string]string{"service": "payments"}, Start: first, Step: time.Minute, Values: payments},
		},
		Targets: []string{l.Addr().String()},
	})
	// The prometheus-operator CRDs (a pinned copy), so the alert gate has a rule to hold back.
	mustKubectl(t, nil, "apply", "--server-side", "-f", filepath.Join(env.root, "hack", "crds", "prometheus-operator"))
	mustKubectl(t, nil, "wait", "--for=condition=established", "--timeout=60s",
		"crd/prometheusrules.monitoring.coreos.com", "crd/podmonitors.monitoring.coreos.com")
	// The new metric exists once Prometheus has scraped it (before that its DataSource
	// says NoSeries): from then on its rows grow by one a second.
	waitFor(t, "the first scrape of the new metric", time.Minute, func() (bool, error) {
		resp, err := http.Get(srv.URL + "/api/v1/query?query=kadet_e2e_young")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"__name__":"kadet_e2e_young"`), err
	})
	ns := namespace(t, "metrics")
	mustKubectl(t, []byte(fmt.Sprintf(`apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: load}
spec:
  prometheus: {url: %[1]q, queries: [{name: load, query: kadet_e2e_load}], entityLabels: [service], range: 36h, step: 5m}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: load}
spec:
  dataSourceRef: {name: load}
  model: {type: ConvAutoencoder, window: 16}
  training: {epochs: 5}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: young}
spec:
  prometheus: {url: %[1]q, queries: [{name: young, query: kadet_e2e_young}], range: 10m, step: 1s}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: young}
spec:
  dataSourceRef: {name: young}
  model: {type: ConvAutoencoder, window: 8}
  training: {epochs: 3}
`, srv.URL)), "apply", "-n", ns, "-f", "-")

	// The young metric has been scraped for seconds: 100 rows are needed.
	var insufficient string
	waitFor(t, "InsufficientData on the young metric", 3*time.Minute, func() (bool, error) {
		d := getDetector(t, ns, "young")
		if c := readyCondition(d); c != nil && c.Reason == kadetv1.ReasonInsufficientData {
			insufficient = c.Message
			return true, nil
		}
		if c := readyCondition(d); c != nil && c.Status == "True" {
			return false, fmt.Errorf("Ready before InsufficientData was seen: %s", c.Message)
		}
		return false, nil
	})
	if !strings.Contains(insufficient, "of 100 rows; enough in about") {
		t.Errorf("InsufficientData says %q", insufficient)
	}
	t.Logf("young metric: %s", insufficient)
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/load")
	t.Logf("detector on two days of history Ready after %s", time.Since(start).Round(time.Second))
	det := getDetector(t, ns, "load")
	// 36h at 5m is 433 rows an entity; the newest fifth (from row 346) is held out.
	if m := det.Status.Model; m == nil || m.ScoringRule != "Causal" || m.Data == nil || m.Data.Rows != 2*346 || m.Data.Entities != 2 {
		t.Errorf("model %+v: want one scoring causally, trained on 692 rows of two entities", det.Status.Model)
	}
	backtestAndGate(t, ns, det, incident)

	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/young")
	t.Logf("detector on the young metric Ready after %s", time.Since(start).Round(time.Second))
}

// backtestAndGate checks the load Detector's backtest (the incident on payments is its
// largest episode) and that a gate below its figure holds the alert back until raised.
func backtestAndGate(t *testing.T, ns string, det *kadetv1.Detector, incident time.Time) {
	t.Helper()
	mv := &kadetv1.ModelVersion{}
	name := det.Name + "-" + det.Status.Model.Version
	waitFor(t, "the ModelVersion's backtest", time.Minute, func() (bool, error) {
		err := env.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, mv)
		return err == nil && mv.Status.Backtest != nil, client.IgnoreNotFound(err)
	})
	bt := mv.Status.Backtest
	t.Logf("backtest: %d rows of %d entities, %d anomalous, %d episodes (%.2f a day), largest %+v", bt.Rows, bt.Entities,
		bt.AnomalousRows, bt.Episodes, bt.EpisodesPerDay, bt.Largest)
	if bt.Skipped != "" || bt.Rows != 2*87 || bt.Entities != 2 || len(bt.Largest) == 0 {
		t.Fatalf("backtest %+v: want 174 rows of 2 entities and episodes", bt)
	}
	top := bt.Largest[0]
	if !strings.Contains(top.Entity, `service="payments"`) || top.Start.Time.Before(incident.Add(-10*time.Minute)) || top.Start.After(incident.Add(30*time.Minute)) {
		t.Errorf("largest episode %+v: want payments, starting near %s", top, incident.UTC().Format(time.RFC3339))
	}
	out := mustKubectl(t, nil, "get", "modelversions", "-n", ns)
	if !strings.Contains(out, "EPISODES/DAY") {
		t.Errorf("kubectl get modelversions:\n%s", out)
	}
	t.Logf("kubectl get modelversions:\n%s", out)

	rule := &unstructured.Unstructured{}
	rule.SetAPIVersion("monitoring.coreos.com/v1")
	rule.SetKind("PrometheusRule")
	ruleKey := client.ObjectKey{Namespace: ns, Name: det.Name + "-alerts"}
	waitFor(t, "the PrometheusRule", time.Minute, func() (bool, error) {
		return env.client.Get(context.Background(), ruleKey, rule) == nil, nil
	})
	gate := func(v float64) {
		mustKubectl(t, nil, "patch", "detector", det.Name, "-n", ns, "--type=merge", "-p", fmt.Sprintf(`{"spec":{"alerting":{"maxEpisodesPerDay":%g}}}`, v))
	}
	gate(bt.EpisodesPerDay / 2)
	waitFor(t, "BacktestTooNoisy and no rule", time.Minute, func() (bool, error) {
		d := getDetector(t, ns, det.Name)
		c := apimeta.FindStatusCondition(d.Status.Conditions, kadetv1.AlertingCondition)
		err := env.client.Get(context.Background(), ruleKey, rule)
		return c != nil && c.Reason == kadetv1.ReasonBacktestTooNoisy && apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	d := getDetector(t, ns, det.Name)
	t.Logf("gated: %s", apimeta.FindStatusCondition(d.Status.Conditions, kadetv1.AlertingCondition).Message)
	if c := readyCondition(d); c == nil || c.Status != "True" {
		t.Errorf("the gate changed Ready: %+v", c)
	}
	gate(bt.EpisodesPerDay)
	waitFor(t, "the rule back", time.Minute, func() (bool, error) {
		return env.client.Get(context.Background(), ruleKey, rule) == nil, nil
	})

	// A backtest by annotation: a Job scores the last 12 hours with the served version;
	// its figures replace the version's.
	mustKubectl(t, nil, "annotate", "detector", det.Name, "-n", ns, "anomaly.kadet.dev/backtest=12h")
	waitFor(t, "the backtest Job's figures", 3*time.Minute, func() (bool, error) {
		run := getDetector(t, ns, det.Name).Status.BacktestRun
		if run != nil && run.Message != "" {
			return false, fmt.Errorf("backtest run: %s", run.Message)
		}
		return run != nil && run.CompletedAt != nil, nil
	})
	if err := env.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, mv); err != nil {
		t.Fatal(err)
	}
	bt = mv.Status.Backtest
	t.Logf("backtest by annotation: %d rows of %d entities, %d episodes (%.2f a day), largest %+v", bt.Rows, bt.Entities, bt.Episodes, bt.EpisodesPerDay, bt.Largest)
	// 145 rows an entity at 5m, but for the newest few steps past the history's end.
	if bt.Rows < 2*140 || bt.Rows > 2*145 || bt.Entities != 2 || len(bt.Largest) == 0 || !strings.Contains(bt.Largest[0].Entity, `service="payments"`) {
		t.Errorf("backtest by annotation %+v: want about 290 rows of 2 entities, payments' incident the largest episode", bt)
	}
}
