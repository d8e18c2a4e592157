package builders

import (
	"encoding/json"
	"strings"
	"testing"
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
				Labels: map[string]string{"team": "sre"}, Annotations: map[string]string{"runbook_url": "https://r"}}
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
				if labels[k] != v {
					t.Errorf("label %s=%v; want %s", k, labels[k], v)
				}
			}
			pm := PodMonitor(d, w).Object
			eps, _, _ := unstructured.NestedSlice(pm, "spec", "podMetricsEndpoints")
			ep := eps[0].(map[string]any)
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
