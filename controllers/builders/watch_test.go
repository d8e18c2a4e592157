package builders

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

func promDS() *kadetv1.DataSource {
	return &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{
		URL: "http://prom:9090", Queries: []kadetv1.PrometheusQuery{{Name: "lat", Query: "latency"}},
		Step: metav1.Duration{Duration: time.Minute}, Range: metav1.Duration{Duration: 24 * time.Hour},
		BearerTokenSecretRef: &kadetv1.SecretKeyReference{Name: "tok", Key: "t"},
		EntityLabels:         []string{"pod", "namespace"},
	}}}
}

func TestResolveWatch(t *testing.T) {
	if w, err := ResolveWatch(det(), csvDS(nil)); w != nil || err != nil {
		t.Fatalf("a CSV source watches: %+v %v", w, err)
	}
	tests := []struct {
		name           string
		mutate         func(*kadetv1.Detector)
		interval       string
		delay          string
		alerting       bool
		wantFor, wantS string
		scrape         string
	}{
		{"defaults: the step, no delay, alerting on", nil, "1m0s", "", true, "5m", "warning", "1m"},
		{"interval, delay, alert settings", func(d *kadetv1.Detector) {
			d.Spec.Scoring.Interval = &metav1.Duration{Duration: 15 * time.Second}
			d.Spec.Scoring.Delay = &metav1.Duration{Duration: 30 * time.Second}
			d.Spec.Alerting = kadetv1.AlertingSpec{For: &metav1.Duration{Duration: time.Hour + 30*time.Second}, Severity: "page",
				Labels: map[string]kadetv1.AlertText{"team": "sre"}, Annotations: map[string]kadetv1.AlertText{"runbook_url": "https://r"}}
		}, "15s", "30s", true, "1h30s", "page", "15s"},
		{"alerting off", func(d *kadetv1.Detector) { d.Spec.Alerting.Enabled = new(false) }, "1m0s", "", false, "5m", "warning", "1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []func(*kadetv1.Detector)
			if tt.mutate != nil {
				opts = append(opts, tt.mutate)
			}
			d := det(opts...)
			w, err := ResolveWatch(d, promDS())
			if err != nil {
				t.Fatal(err)
			}
			r := w.Request
			if r.Interval != tt.interval || r.Delay != tt.delay || r.Lease != "fraud-scoring" || r.StatusConfigMap != "fraud-watch-status" ||
				r.Prometheus.BearerTokenFile != "/var/run/kadet/secrets/prometheus/token" || r.Prometheus.Range != "" {
				t.Errorf("request %+v", r)
			}
			if _, err := contract.ParseWatchRequest(mustJSON(t, r)); err != nil {
				t.Errorf("the pod would refuse the request: %v", err)
			}
			if AlertingEnabled(d, w) != tt.alerting {
				t.Errorf("alerting %v; want %v", AlertingEnabled(d, w), tt.alerting)
			}
			dep := ScoringDeployment(d, &kadetv1.ModelStatus{Version: "v1", Digest: "sha256:1"}, w, cfg)
			pod := dep.Spec.Template.Spec
			c := pod.Containers[0]
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m.Name
			}
			if pod.ServiceAccountName != "fraud-scorer" || !*pod.AutomountServiceAccountToken ||
				!strings.HasSuffix(strings.Join(c.Args, " "), "--watch /etc/kadet/watch/watch.json") ||
				mounts[WatchDir] != "watch" || mounts["/var/run/kadet/secrets/prometheus"] == "" ||
				dep.Spec.Template.Annotations[AnnotationWatchHash] != w.Hash {
				t.Errorf("scoring pod does not watch: sa %s args %v mounts %v", pod.ServiceAccountName, c.Args, mounts)
			}
			rule := PrometheusRule(d, w).Object
			groups, _, _ := unstructured.NestedSlice(rule, "spec", "groups")
			rl := groups[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
			labels := rl["labels"].(map[string]any)
			ann := rl["annotations"].(map[string]any)
			if rl["expr"] != `max by (namespace, detector, entity_namespace, pod) (kadet_anomaly_score{namespace="ml",detector="fraud"}) > 1` ||
				rl["for"] != tt.wantFor || labels["severity"] != tt.wantS || rl["alert"] != "KadetAnomaly" {
				t.Errorf("rule %v", rl)
			}
			desc := ann["description"].(string)
			for _, want := range []string{"{{ $value", `kadet_anomaly_contribution{namespace=%q,detector=%q,entity_namespace=%q,pod=%q}`,
				"$labels.entity_namespace $labels.pod", "{{ .Labels.feature }}"} {
				if !strings.Contains(desc, want) {
					t.Errorf("description %q has no %s", desc, want)
				}
			}
			if !strings.Contains(ann["summary"].(string), "entity_namespace={{ $labels.entity_namespace }}, pod={{ $labels.pod }}") {
				t.Errorf("summary %q does not name the entity", ann["summary"])
			}
			for k, v := range d.Spec.Alerting.Labels {
				if labels[k] != string(v) {
					t.Errorf("label %s=%v; want %s", k, labels[k], v)
				}
			}
			pm := PodMonitor(d, w).Object
			eps, _, _ := unstructured.NestedSlice(pm, "spec", "podMetricsEndpoints")
			ep := eps[0].(map[string]any)
			forced := []any{
				map[string]any{"action": "replace", "targetLabel": "namespace", "replacement": d.Namespace},
				map[string]any{"action": "replace", "targetLabel": "detector", "replacement": d.Name},
			}
			if !reflect.DeepEqual(ep["metricRelabelings"], forced) {
				t.Errorf("metric relabelings %v; want namespace and detector set to the Detector's", ep["metricRelabelings"])
			}
			if ep["honorLabels"] != true || ep["interval"] != tt.scrape || ep["port"] != "http" {
				t.Errorf("pod monitor endpoint %v", ep)
			}
			sel, _, _ := unstructured.NestedStringMap(pm, "spec", "selector", "matchLabels")
			for k, v := range sel {
				if dep.Spec.Template.Labels[k] != v {
					t.Errorf("pod monitor selector %s=%s does not select the scoring pods", k, v)
				}
			}
		})
	}
}

func TestPromDuration(t *testing.T) {
	for in, want := range map[time.Duration]string{5 * time.Minute: "5m", time.Hour: "1h", time.Hour + 30*time.Second: "1h30s",
		15 * time.Second: "15s", 150 * time.Second: "2m30s", 1500 * time.Millisecond: "1s500ms"} {
		if got := promDuration(in); got != want {
			t.Errorf("promDuration(%s) = %s; want %s", in, got, want)
		}
	}
}

func TestScorerRBACIsLimitedToItsLeaseAndStatus(t *testing.T) {
	role := ScorerRole(det())
	for _, r := range role.Rules {
		if len(r.ResourceNames) != 1 {
			t.Errorf("rule %+v is not limited to one object", r)
		}
		for _, v := range r.Verbs {
			if v == "create" || v == "delete" || v == "list" || v == "watch" {
				t.Errorf("rule %+v grants %s", r, v)
			}
		}
	}
	if role.Rules[1].ResourceNames[0] == WatchConfigMapName(det()) {
		t.Error("scoring pods may rewrite their own watch request")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A user's alert label or annotation keeps references to the alert's labels and value;
// any other template action reaches Prometheus as literal text, not as something to
// run (the CRD refuses such values; older objects may hold them).
func TestLiteralTemplate(t *testing.T) {
	for in, want := range map[string]string{
		"https://r/{{ $labels.pod }}":            "https://r/{{ $labels.pod }}",
		"{{$value}} and {{ $labels.namespace }}": "{{$value}} and {{ $labels.namespace }}",
		`{{ query "up" }}`:                       `{{ "{{" }} query "up" }}`,
		`{{ with query "x" }}{{ . }}{{ end }}`:   `{{ "{{" }} with query "x" }}{{ "{{" }} . }}{{ "{{" }} end }}`,
		"{{ $value | humanize }} and {{ humanizePercentage $value }} on {{ $labels.pod | toUpper }}": "{{ $value | humanize }} and {{ humanizePercentage $value }} on {{ $labels.pod | toUpper }}",
		"{{ $labels.pod | safeHtml }}": `{{ "{{" }} $labels.pod | safeHtml }}`,
		`{{ $value | printf "%v" }}`:   `{{ "{{" }} $value | printf "%v" }}`,
		"unclosed {{":                  `unclosed {{ "{{" }}`,
		"{ plain } text":               "{ plain } text",
	} {
		got := literalTemplate(in)
		if got != want {
			t.Errorf("literalTemplate(%q) = %q, want %q", in, got, want)
		}
		// Prometheus defines the variables so before it parses a rule's text.
		format := func(v any) string { return fmt.Sprint(v) }
		funcs := template.FuncMap{"humanize": format, "humanize1024": format, "humanizePercentage": format, "humanizeDuration": format,
			"toUpper": format, "toLower": format, "title": format} // Prometheus's formatting functions, by name
		tmpl, err := template.New("").Funcs(funcs).Parse("{{$labels := .Labels}}{{$value := .Value}}" + got)
		if err != nil {
			t.Errorf("%q does not parse as a template: %v", got, err)
			continue
		}
		if strings.Contains(in, "$") {
			continue // needs Prometheus's variables
		}
		var out strings.Builder
		if err := tmpl.Execute(&out, struct {
			Labels map[string]string
			Value  float64
		}{}); err != nil || out.String() != in {
			t.Errorf("%q renders as %q (%v), want the text as written", got, out.String(), err)
		}
	}
	d := det()
	d.Spec.Alerting.Annotations = map[string]kadetv1.AlertText{"leak": `{{ query "secret" }}`}
	d.Spec.Alerting.Labels = map[string]kadetv1.AlertText{"team": `{{ query "secret" }}`}
	rule := PrometheusRule(d, &WatchPlan{})
	rules, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	r := rules[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
	for _, v := range []any{r["annotations"].(map[string]any)["leak"], r["labels"].(map[string]any)["team"]} {
		if v != `{{ "{{" }} query "secret" }}` {
			t.Errorf("a query reaches the rule as %q", v)
		}
	}
}
