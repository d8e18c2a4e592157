package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kadet-dev/kadet/hack/promtest"
)

// signal is entity e's value at second s: a one-minute cycle with noise that depends
// only on (e, s), so the history written before the test and the live exporter agree.
func signal(e string, s int64) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", e, s)
	u := float64(h.Sum64()%1_000_000) / 1_000_000
	noise := 0.6 * (u - 0.5) // uniform, sd about 0.17
	phase := 0.0
	if e == "b" {
		phase = 1.3
	}
	return 50 + 10*math.Sin(2*math.Pi*float64(s)/60+phase) + noise
}

// injection is what the exporter adds to an entity now.
type injection struct {
	mu    sync.Mutex
	extra map[string]float64
}

func (in *injection) set(e string, v float64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.extra[e] = v
}

func (in *injection) get(e string) float64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.extra[e]
}

// 8. Metrics out: a real Prometheus scrapes an exporter of two seasonal series and,
// through Kubernetes service discovery against the cluster's apiserver, the scoring
// pods; it evaluates the rule groups of the PrometheusRule kadet generated. The
// Detector trains on fifteen minutes of history, watches every 2 s with two replicas,
// stays quiet for a minute, then finds a spike on a and a level shift on b, alerts
// KadetAnomaly for each with the right labels, resolves when they end, and keeps
// scoring when the watching pod is killed.
func TestWatchExportsScoresAndAlerts(t *testing.T) {
	const interval = 2 * time.Second
	inj := &injection{extra: map[string]float64{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var firstScrape sync.Once
	scrapedFrom := make(chan time.Time, 1)
	exporter := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		firstScrape.Do(func() { scrapedFrom <- time.Now() })
		s := time.Now().Unix()
		fmt.Fprintf(w, "# TYPE kadet_e2e_signal gauge\n")
		for _, e := range []string{"a", "b"} {
			fmt.Fprintf(w, "kadet_e2e_signal{entity=%q} %g\n", e, signal(e, s)+inj.get(e))
		}
	})}
	go func() { _ = exporter.Serve(l) }()
	t.Cleanup(func() { _ = exporter.Close() })

	// The prometheus-operator CRDs (a pinned copy), so kadet generates its rule.
	mustKubectl(t, nil, "apply", "--server-side", "-f", filepath.Join(env.root, "hack", "crds", "prometheus-operator"))
	mustKubectl(t, nil, "wait", "--for=condition=established", "--timeout=60s",
		"crd/prometheusrules.monitoring.coreos.com", "crd/podmonitors.monitoring.coreos.com")

	now := time.Now().Truncate(time.Second)
	const historySeconds = 15 * 60
	var history []promtest.Series
	for _, e := range []string{"a", "b"} {
		v := make([]float64, historySeconds)
		for i := range v {
			v[i] = signal(e, now.Unix()-historySeconds+int64(i))
		}
		// The labels the scrape gives the live samples: history and live are one series.
		history = append(history, promtest.Series{Metric: "kadet_e2e_signal", Labels: map[string]string{"entity": e, "job": "test", "instance": l.Addr().String()},
			Start: now.Add(-historySeconds * time.Second), Step: time.Second, Values: v})
	}
	ns := namespace(t, "watch")
	rulesDir := t.TempDir()
	// What a PodMonitor becomes in prometheus-operator's hands. Debian's Prometheus is
	// built without Kubernetes discovery, so the test serves HTTP discovery in its place:
	// the pods the generated PodMonitor selects, read from the apiserver, at the port it
	// names. The series' own labels are honoured, as the PodMonitor asks, but for the
	// namespace and detector it sets to the Detector's.
	var sdErr atomicString
	sd := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targets, err := podMonitorTargets(ns, "signal-scoring")
		if err != nil {
			sdErr.Store(err.Error())
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(targets)
	}))
	scrape := fmt.Sprintf(`- job_name: kadet-scoring
  scrape_interval: 1s
  honor_labels: true
  http_sd_configs: [{url: %q, refresh_interval: 1s}]
  metric_relabel_configs:
  - {action: replace, target_label: namespace, replacement: %q}
  - {action: replace, target_label: detector, replacement: signal}
`, sd+"/targets", ns)
	srv := promtest.Start(t, promtest.Options{History: history, Targets: []string{l.Addr().String()},
		ScrapeConfigs: scrape, RuleFiles: []string{filepath.Join(rulesDir, "*.yml")}})

	mustKubectl(t, []byte(fmt.Sprintf(`apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: signal}
spec:
  prometheus:
    url: %q
    queries: [{name: signal, query: kadet_e2e_signal}]
    entityLabels: [entity]
    range: 14m
    step: 1s
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: signal}
spec:
  dataSourceRef: {name: signal}
  model: {type: ConvAutoencoder}
  training: {epochs: 10}
  scoring: {replicas: 2, interval: 2s}
  alerting: {for: 4s, severity: page}
`, srv.URL)), "apply", "-n", ns, "-f", "-")
	start := time.Now()
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/signal")
	t.Logf("Detector Ready after %s", time.Since(start).Round(time.Second))

	// The generated rule groups, checked by promtool, become Prometheus's rules.
	rule := &unstructured.Unstructured{}
	rule.SetAPIVersion("monitoring.coreos.com/v1")
	rule.SetKind("PrometheusRule")
	waitFor(t, "the PrometheusRule", time.Minute, func() (bool, error) {
		return env.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "signal-alerts"}, rule) == nil, nil
	})
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	b, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	ruleFile := filepath.Join(rulesDir, "kadet.yml")
	if err := os.WriteFile(ruleFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, promtool := promtest.Binaries(t)
	if out, err := exec.Command(promtool, "check", "rules", ruleFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, b)
	}
	srv.Reload(t)

	// The watching pod's /metrics.
	scored := func() (total float64, anomalous map[string]bool) {
		anomalous = map[string]bool{}
		urls, _ := scoringURLs(context.Background(), ns, "signal", 8080)
		for _, u := range urls {
			m := metricsOf(u)
			total += metricValue(m, "kadet_watch_rows_scored_total")
			for _, e := range []string{"a", "b"} {
				if strings.Contains(m, fmt.Sprintf(`kadet_anomaly{detector="signal",entity=%q,namespace=%q} 1`, e, ns)) {
					anomalous[e] = true
				}
			}
		}
		return total, anomalous
	}
	t.Cleanup(func() {
		if t.Failed() {
			resp, err := http.Get(srv.URL + "/api/v1/targets")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("prometheus targets: %s; discovery's last error: %s", b, sdErr.Load())
				t.Logf("prometheus log:\n%s", srv.Log())
			}
			urls, _ := scoringURLs(context.Background(), ns, "signal", 8080)
			for _, u := range urls {
				t.Logf("%s/metrics:\n%s", u, metricsOf(u))
			}
		}
	})
	waitFor(t, "scores of both entities in Prometheus", time.Minute, func() (bool, error) {
		r, err := promQuery(srv.URL, fmt.Sprintf(`count(kadet_anomaly_score{namespace=%q,detector="signal"})`, ns))
		return r == "2", err
	})

	// Quiet: a minute with no injection: no alert, pending or firing. It starts once
	// the seam between the written history and the first scrape (seconds of the last
	// written value carried forward: a real stuck value the model may flag) can no
	// longer hold an alert: out of the model's window (32 rows of 1 s) and the
	// likelihood's short mean (3 rows), then a tick, the alert's for (4 s), a rule
	// evaluation and a scrape of slack.
	const seamEffect = (32+3)*time.Second + interval + 4*time.Second + 3*time.Second
	select {
	case seam := <-scrapedFrom:
		time.Sleep(time.Until(seam.Add(seamEffect)))
	case <-time.After(time.Minute):
		t.Fatal("Prometheus has not scraped the exporter")
	}
	quiet := time.Now()
	anomalousTicks := 0
	for time.Since(quiet) < time.Minute {
		if alerts := kadetAlerts(t, srv.URL); len(alerts) > 0 {
			t.Errorf("alert in the quiet period: %+v", alerts)
			break
		}
		if _, an := scored(); len(an) > 0 {
			anomalousTicks++
		}
		time.Sleep(time.Second)
	}
	r, _ := promQuery(srv.URL, fmt.Sprintf(`sum(count_over_time(kadet_anomaly{namespace=%q}[1m]))`, ns))
	t.Logf("quiet minute: %d of 60 checks saw an anomalous entity; %s scores scraped", anomalousTicks, r)
	t.Logf("scores of at least 0.5 from the end of the written history to the end of the quiet minute, s from %s: %s",
		now.Format(time.TimeOnly), scoreTrace(srv.URL, ns, now, time.Now()))

	// Inject: a spike on a (+25 for 10 s) and a level shift on b (+12 for 40 s).
	injected := time.Now()
	inj.set("a", 25)
	inj.set("b", 12)
	found := map[string]time.Duration{}
	for time.Since(injected) < 40*time.Second && len(found) < 2 {
		_, an := scored()
		for e := range an {
			if _, ok := found[e]; !ok {
				found[e] = time.Since(injected)
			}
		}
		if time.Since(injected) > 10*time.Second {
			inj.set("a", 0)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, e := range []string{"a", "b"} {
		d, ok := found[e]
		if !ok || d > 3*interval+time.Second {
			t.Errorf("entity %s: anomaly found after %v (found: %v); want within three intervals (%s) plus a scrape", e, d, ok, 3*interval)
		}
		t.Logf("entity %s: kadet_anomaly 1 after %.1f s (%.1f intervals)", e, d.Seconds(), d.Seconds()/interval.Seconds())
	}
	// The alert fires for each, labelled with its entity and the rule's severity.
	firing := map[string]alert{}
	waitFor(t, "KadetAnomaly firing for a and b", 40*time.Second, func() (bool, error) {
		if time.Since(injected) > 10*time.Second {
			inj.set("a", 0)
		}
		for _, a := range kadetAlerts(t, srv.URL) {
			if a.State == "firing" {
				if _, ok := firing[a.Labels["entity"]]; !ok {
					firing[a.Labels["entity"]] = a
					t.Logf("KadetAnomaly firing for %s after %.1f s: %s", a.Labels["entity"], time.Since(injected).Seconds(), a.Annotations["description"])
				}
			}
		}
		return len(firing) == 2, nil
	})
	for e, a := range firing {
		if a.Labels["namespace"] != ns || a.Labels["detector"] != "signal" || a.Labels["severity"] != "page" ||
			!strings.Contains(a.Annotations["description"], "top feature: signal") || !strings.Contains(a.Annotations["summary"], "entity="+e) {
			t.Errorf("alert for %s: %+v", e, a)
		}
	}
	inj.set("a", 0)
	for time.Since(injected) < 40*time.Second {
		time.Sleep(200 * time.Millisecond)
	}
	inj.set("b", 0)
	ended := time.Now()
	waitFor(t, "the alerts to resolve", 2*time.Minute, func() (bool, error) {
		return len(kadetAlerts(t, srv.URL)) == 0, nil
	})
	t.Logf("alerts resolved %.1f s after the level shift ended", time.Since(ended).Seconds())
	waitFor(t, "status.watch to report the episodes", time.Minute, func() (bool, error) {
		w := getDetector(t, ns, "signal").Status.Watch
		return w != nil && len(w.RecentAnomalies) >= 2, nil
	})
	if evs := events(t, ns, "signal", "AnomalyStarted"); len(evs) == 0 {
		t.Error("no AnomalyStarted event")
	}
	wide := mustKubectl(t, nil, "get", "detector", "signal", "-n", ns, "-o", "wide")
	if lines := strings.Split(strings.TrimSpace(wide), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "ANOMALOUS") ||
		!strings.Contains(lines[0], "LAST-SCORE") || strings.Contains(lines[1], "<none>") {
		t.Errorf("kubectl get -o wide:\n%s", wide)
	}

	// Kill the watching pod's process: the other replica takes over.
	lease := &coordinationv1.Lease{}
	if err := env.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "signal-scoring"}, lease); err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("lease %+v: %v", lease.Spec, err)
	}
	leader := *lease.Spec.HolderIdentity
	leader = leader[:strings.LastIndex(leader, "_")] // pod name _ process suffix
	ip := podIP(t, ns, leader)
	// Counters per pod: the killed pod's restarts from zero, the standby's counts from
	// its own start.
	rowsByPod := func() map[string]float64 {
		out := map[string]float64{}
		urls, _ := scoringURLs(context.Background(), ns, "signal", 8080)
		for _, u := range urls {
			out[u] = metricValue(metricsOf(u), "kadet_watch_rows_scored_total")
		}
		return out
	}
	leaderURL := fmt.Sprintf("http://%s:8080", ip)
	base := rowsByPod()
	var last time.Time
	for {
		now := rowsByPod()
		if now[leaderURL] > base[leaderURL] {
			base, last = now, time.Now()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := exec.Command("pkill", "-KILL", "-f", "serve .*--addr "+regexp.QuoteMeta(ip)+":8080").CombinedOutput(); err != nil {
		t.Fatalf("killing %s (%s): %v %s", leader, ip, err, out)
	}
	killed := time.Now()
	base[leaderURL] = 0
	var resumed time.Duration
	waitFor(t, "scores after the kill", 30*time.Second, func() (bool, error) {
		for u, v := range rowsByPod() {
			if v > base[u] {
				resumed = time.Since(killed)
				return true, nil
			}
		}
		return false, nil
	})
	gap := killed.Sub(last) + resumed
	t.Logf("watching pod %s killed %.1f s after its last tick; scores resumed %.1f s after the kill (a gap of %.1f s between ticks, %.1f intervals)",
		leader, killed.Sub(last).Seconds(), resumed.Seconds(), gap.Seconds(), gap.Seconds()/interval.Seconds())
	if resumed > 2*interval+time.Second {
		t.Errorf("scores resumed %s after the kill; want within two intervals (%s)", resumed, 2*interval)
	}
}

// httptestServer serves h on loopback for the test's duration and returns its URL.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

type atomicString struct {
	mu sync.Mutex
	s  string
}

func (a *atomicString) Store(s string) { a.mu.Lock(); a.s = s; a.mu.Unlock() }
func (a *atomicString) Load() string   { a.mu.Lock(); defer a.mu.Unlock(); return a.s }

type sdTarget struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// podMonitorTargets lists what prometheus-operator would scrape for a PodMonitor: the
// running pods its selector matches, at the container port each endpoint names.
func podMonitorTargets(ns, name string) ([]sdTarget, error) {
	pm := &unstructured.Unstructured{}
	pm.SetAPIVersion("monitoring.coreos.com/v1")
	pm.SetKind("PodMonitor")
	out := []sdTarget{}
	ctx := context.Background()
	if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pm); err != nil {
		return out, client.IgnoreNotFound(err)
	}
	sel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	pods := &corev1.PodList{}
	if err := env.client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(sel)); err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		for _, ep := range eps {
			port := ep.(map[string]any)["port"]
			for _, c := range p.Spec.Containers {
				for _, cp := range c.Ports {
					if cp.Name == port {
						out = append(out, sdTarget{Targets: []string{fmt.Sprintf("%s:%d", p.Status.PodIP, cp.ContainerPort)},
							Labels: map[string]string{"pod": p.Name}})
					}
				}
			}
		}
	}
	return out, nil
}

type alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// kadetAlerts are the KadetAnomaly alerts Prometheus has pending or firing.
func kadetAlerts(t *testing.T, url string) []alert {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []alert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []alert
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == "KadetAnomaly" {
			out = append(out, a)
		}
	}
	return out
}

// promQuery runs an instant query and returns its one value ("" for none).
func promQuery(url, q string) (string, error) {
	resp, err := http.Get(url + "/api/v1/query?query=" + neturl.QueryEscape(q))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if len(body.Data.Result) == 0 {
		return "", nil
	}
	return fmt.Sprint(body.Data.Result[0].Value[1]), nil
}

func metricsOf(url string) string {
	resp, err := httpClient.Get(url + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue is the value of an unlabelled series in an exposition, or 0.
func metricValue(exposition, name string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func podIP(t *testing.T, ns, name string) string {
	t.Helper()
	return strings.TrimSpace(mustKubectl(t, nil, "get", "pod", "-n", ns, name, "-o", "jsonpath={.status.podIP}"))
}

// scoreTrace is each entity's scores in Prometheus from..to, at one-second steps, as
// "entity: +s=score ..." for the scores of at least 0.5 (seconds from from): what a
// failed quiet minute needs to say when the scores rose.
func scoreTrace(url, ns string, from, to time.Time) string {
	q := neturl.Values{}
	q.Set("query", fmt.Sprintf(`kadet_anomaly_score{namespace=%q,detector="signal"}`, ns))
	q.Set("start", strconv.FormatInt(from.Unix(), 10))
	q.Set("end", strconv.FormatInt(to.Unix(), 10))
	q.Set("step", "1")
	resp, err := http.Get(url + "/api/v1/query_range?" + q.Encode())
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, r := range body.Data.Result {
		fmt.Fprintf(&b, "%s:", r.Metric["entity"])
		for _, v := range r.Values {
			ts, _ := v[0].(float64)
			s, _ := v[1].(string)
			if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0.5 {
				fmt.Fprintf(&b, " +%.0f=%.2f", ts-float64(from.Unix()), f)
			}
		}
		b.WriteString("; ")
	}
	return b.String()
}
