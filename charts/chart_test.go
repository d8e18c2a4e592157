// Package charts holds kadet's Helm chart; its tests render the chart with a real helm
// binary and check what a cluster would receive.
package charts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kadet-dev/kadet/hack/promtest"
)

const chart = "kadet"

func tool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	t.Fatalf("%s is not set: run `make test`, which builds %s from the Go module proxy", env, name)
	return ""
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String() + errOut.String(), err
}

// render runs helm template and parses every document.
func render(t *testing.T, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "kadet", chart, "--namespace", "kadet-system"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := run(t, tool(t, "KADET_HELM", "helm"), args...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", sets, err, out)
	}
	return parse(t, out)
}

func parse(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(manifests, "\n---") {
		if strings.TrimSpace(strings.Trim(strings.TrimSpace(doc), "-")) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("rendered document is not YAML: %v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	k := map[string]int{}
	for _, o := range objs {
		k[o.GetKind()]++
	}
	return k
}

var allFeatures = []string{
	"monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true",
	"monitoring.grafanaDashboard.enabled=true", "image.repository=registry.example.com/kadet", "image.tag=v9",
	"nodeSelector.pool=ml", "tolerations[0].key=gpu", "tolerations[0].operator=Exists", "replicaCount=2",
}

func TestLint(t *testing.T) {
	helm := tool(t, "KADET_HELM", "helm")
	for _, sets := range [][]string{nil, allFeatures} {
		args := []string{"lint", chart, "--strict"}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		if out, err := run(t, helm, args...); err != nil {
			t.Fatalf("helm lint %v: %v\n%s", sets, err, out)
		}
	}
}

func TestDefaultRender(t *testing.T) {
	objs := render(t)
	want := map[string]int{
		"CustomResourceDefinition": 3, "ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 1,
		"Role": 1, "RoleBinding": 1, "Deployment": 1, "Service": 1,
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1,
	}
	if got := kinds(objs); !reflect.DeepEqual(got, want) {
		t.Fatalf("kinds %v; want %v", got, want)
	}
	checkSecurity(t, objs)
	checkRBAC(t, objs)
	checkCRDs(t, objs, true)
	checkAdmission(t, objs)
	// The manager refuses local Prometheus targets and admits Prometheus's namespace
	// to scoring pods, unless told otherwise.
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		args := toStrings(containers[0].(map[string]any)["args"])
		for _, want := range []string{"--allow-local-prometheus=false", "--scoring-peer-namespaces=monitoring"} {
			if !slices.Contains(args, want) {
				t.Errorf("manager args %q lack %s", args, want)
			}
		}
	}
	if k := kinds(render(t, "admission.dataSourceSecrets=false")); k["ValidatingAdmissionPolicy"]+k["ValidatingAdmissionPolicyBinding"] != 0 {
		t.Errorf("admission.dataSourceSecrets=false still renders the policy: %v", k)
	}
}

// checkAdmission: the DataSource Secrets policy is config/admission's, rule for rule,
// and its binding denies by it.
func checkAdmission(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "config", "admission", "datasource-secrets-policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &want.Object); err != nil {
		t.Fatal(err)
	}
	var policy string
	for _, o := range objs {
		if o.GetKind() == "ValidatingAdmissionPolicy" {
			policy = o.GetName()
			if !reflect.DeepEqual(o.Object["spec"], want.Object["spec"]) {
				t.Errorf("policy %s differs from config/admission's:\n%v", o.GetName(), o.Object["spec"])
			}
		}
	}
	for _, o := range objs {
		if o.GetKind() == "ValidatingAdmissionPolicyBinding" {
			name, _, _ := unstructured.NestedString(o.Object, "spec", "policyName")
			actions, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "validationActions")
			if policy == "" || name != policy || !slices.Equal(actions, []string{"Deny"}) {
				t.Errorf("binding %s: policy %q, actions %v; want policy %q denied", o.GetName(), name, actions, policy)
			}
		}
	}
}

func TestAllFeaturesRender(t *testing.T) {
	objs := render(t, allFeatures...)
	k := kinds(objs)
	if k["ServiceMonitor"] != 2 || k["PrometheusRule"] != 1 || k["ConfigMap"] != 1 {
		t.Fatalf("kinds %v", k)
	}
	checkSecurity(t, objs)
	checkRBAC(t, objs)
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			spec := o.Object["spec"].(map[string]any)
			pod := spec["template"].(map[string]any)["spec"].(map[string]any)
			c := pod["containers"].([]any)[0].(map[string]any)
			if c["image"] != "registry.example.com/kadet:v9" || spec["replicas"] != float64(2) {
				t.Errorf("image %v replicas %v", c["image"], spec["replicas"])
			}
			if !slices.Contains(toStrings(c["args"]), "--detector-image=registry.example.com/kadet:v9") {
				t.Errorf("detector image does not follow the manager's: %v", c["args"])
			}
			if pod["nodeSelector"].(map[string]any)["pool"] != "ml" || len(pod["tolerations"].([]any)) != 1 {
				t.Errorf("scheduling values lost: %v %v", pod["nodeSelector"], pod["tolerations"])
			}
		case "PrometheusRule":
			var alerts []string
			for _, g := range o.Object["spec"].(map[string]any)["groups"].([]any) {
				for _, r := range g.(map[string]any)["rules"].([]any) {
					alerts = append(alerts, r.(map[string]any)["alert"].(string))
				}
			}
			for _, a := range []string{"KadetAnomalyRateHigh", "KadetTrainingFailed", "KadetModelLoadFailures"} {
				if !slices.Contains(alerts, a) {
					t.Errorf("alert %s missing from %v", a, alerts)
				}
			}
		case "ConfigMap":
			if o.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("dashboard lacks the sidecar label: %v", o.GetLabels())
			}
			var dash struct {
				Panels []struct {
					Title   string `json:"title"`
					Targets []struct {
						Expr string `json:"expr"`
					} `json:"targets"`
				} `json:"panels"`
				Annotations struct {
					List []struct {
						Expr string `json:"expr"`
					} `json:"list"`
				} `json:"annotations"`
			}
			if err := json.Unmarshal([]byte(o.Object["data"].(map[string]any)["kadet.json"].(string)), &dash); err != nil {
				t.Fatalf("dashboard is not JSON: %v", err)
			}
			var exprs []string
			for _, p := range dash.Panels {
				for _, tg := range p.Targets {
					exprs = append(exprs, tg.Expr)
				}
			}
			all := strings.Join(exprs, "\n")
			for _, metric := range []string{"kadet_anomalies_total", "kadet_score_bucket", "kadet_detector_threshold", "kadet_detector_training_loss",
				"kadet_anomaly_score", "kadet_expected_value"} {
				if !strings.Contains(all, metric) {
					t.Errorf("no dashboard panel reads %s", metric)
				}
			}
			if len(dash.Annotations.List) == 0 || !strings.Contains(dash.Annotations.List[0].Expr, "kadet_anomaly{") {
				t.Errorf("no annotation marks anomaly episodes: %+v", dash.Annotations)
			}
			for _, a := range dash.Annotations.List {
				exprs = append(exprs, a.Expr)
			}
			checkPromQL(t, exprs)
		}
	}
}

// The manager reads Secrets only in the namespaces the values list, each by a
// RoleBinding of the secret reader; nothing binds it cluster-wide.
func TestSecretReaderNamespaces(t *testing.T) {
	objs := render(t, "rbac.secretReaderNamespaces={team-a,team-b}")
	var bound []string
	for _, o := range objs {
		if o.GetKind() == "ClusterRoleBinding" && o.Object["roleRef"].(map[string]any)["name"] != "kadet-manager" {
			t.Errorf("ClusterRoleBinding %s binds %v cluster-wide", o.GetName(), o.Object["roleRef"])
		}
		if o.GetKind() == "RoleBinding" && o.Object["roleRef"].(map[string]any)["name"] == "kadet-secret-reader" {
			bound = append(bound, o.GetNamespace())
		}
	}
	if !slices.Equal(bound, []string{"team-a", "team-b"}) {
		t.Fatalf("secret reader bound in %v; want team-a and team-b", bound)
	}
}

// With watchNamespaces the manager's ClusterRole keeps only the rules on
// cluster-scoped kinds, and each watched namespace has a Role with the rest, bound to
// the manager: together config/rbac's rules, rule for rule; the manager is told the
// namespaces.
func TestWatchNamespaces(t *testing.T) {
	objs := render(t, "watchNamespaces={team-a,team-b}")
	raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := map[string]any{}
	if err := yaml.Unmarshal(raw, &role); err != nil {
		t.Fatal(err)
	}
	var cluster []any
	roles := map[string][]any{}
	bound := map[string]bool{}
	for _, o := range objs {
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		switch {
		case o.GetKind() == "ClusterRole" && o.GetName() == "kadet-manager":
			cluster = rules
		case o.GetKind() == "Role" && o.GetName() == "kadet-manager":
			roles[o.GetNamespace()] = rules
		case o.GetKind() == "RoleBinding" && o.GetName() == "kadet-manager":
			bound[o.GetNamespace()] = o.Object["roleRef"].(map[string]any)["name"] == "kadet-manager"
		case o.GetKind() == "Deployment":
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			if args := toStrings(containers[0].(map[string]any)["args"]); !slices.Contains(args, "--watch-namespaces=team-a,team-b") {
				t.Errorf("manager args %q do not name the namespaces", args)
			}
		}
	}
	for _, r := range cluster {
		if g := toStrings(r.(map[string]any)["apiGroups"]); !slices.Contains([]string{"apiextensions.k8s.io", "authentication.k8s.io", "authorization.k8s.io"}, g[0]) {
			t.Errorf("the ClusterRole grants %v cluster-wide", r)
		}
	}
	for _, ns := range []string{"team-a", "team-b"} {
		both := append(slices.Clone(cluster), roles[ns]...)
		if !bound[ns] || len(both) != len(role["rules"].([]any)) {
			t.Errorf("namespace %s: bound %v, %d rules in the Role and %d in the ClusterRole; want config/rbac's %d between them",
				ns, bound[ns], len(roles[ns]), len(cluster), len(role["rules"].([]any)))
		}
		for _, r := range role["rules"].([]any) {
			if !slices.ContainsFunc(both, func(x any) bool { return reflect.DeepEqual(x, r) }) {
				t.Errorf("namespace %s: rule %v is in neither", ns, r)
			}
		}
	}
	if len(roles) != 2 {
		t.Errorf("manager Roles in %v; want team-a and team-b", slices.Collect(maps.Keys(roles)))
	}
}

func TestCRDOptions(t *testing.T) {
	if k := kinds(render(t, "crds.enabled=false")); k["CustomResourceDefinition"] != 0 {
		t.Fatalf("crds.enabled=false still renders CRDs: %v", k)
	}
	checkCRDs(t, render(t, "crds.keep=false"), false)
}

func TestValuesSchemaRefusesBadValues(t *testing.T) {
	helm := tool(t, "KADET_HELM", "helm")
	for set, want := range map[string]string{
		"replicaCount=two":                                 "replicaCount",
		"image.pullPolicy=Sometimes":                       "pullPolicy",
		"monitoring.serviceMonitor.interval=soon":          "interval",
		"colour=blue":                                      "colour",
		"monitoring.prometheusRule.anomalyRateThreshold=0": "anomalyRateThreshold",
	} {
		out, err := run(t, helm, "template", "kadet", chart, "--set", set)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("--set %s: err %v, output %q; want a schema error naming %s", set, err, out, want)
		}
	}
}

// TestKustomizeDefault builds config/default with kubectl's kustomize.
func TestKustomizeDefault(t *testing.T) {
	kubectl := filepath.Join(tool(t, "KUBEBUILDER_ASSETS", "kubectl"), "kubectl")
	out, err := run(t, kubectl, "kustomize", filepath.Join("..", "config", "default"))
	if err != nil {
		t.Fatalf("kustomize build: %v\n%s", err, out)
	}
	objs := parse(t, out)
	k := kinds(objs)
	if k["CustomResourceDefinition"] != 3 || k["Deployment"] != 1 || k["ClusterRole"] != 3 || k["Namespace"] != 1 ||
		k["ValidatingAdmissionPolicy"] != 1 || k["ValidatingAdmissionPolicyBinding"] != 1 {
		t.Fatalf("kinds %v", k)
	}
	checkAdmission(t, objs)
	for _, o := range objs {
		if o.GetKind() == "Deployment" && o.GetNamespace() != "kadet-system" {
			t.Errorf("manager in namespace %q", o.GetNamespace())
		}
	}
	checkSecurity(t, objs)
	checkRBAC(t, objs)
	checkCRDs(t, objs, false)
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

// checkSecurity: pods run as non-root under RuntimeDefault seccomp, with a read-only
// root filesystem, no privilege escalation and every capability dropped.
func checkSecurity(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		pod, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
		if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
			t.Errorf("%s: runAsNonRoot is not true", o.GetName())
		}
		if p, _, _ := unstructured.NestedString(pod, "securityContext", "seccompProfile", "type"); p != "RuntimeDefault" {
			t.Errorf("%s: seccomp profile %q", o.GetName(), p)
		}
		containers, _, _ := unstructured.NestedSlice(pod, "containers")
		for _, c := range containers {
			cm := c.(map[string]any)
			ro, _, _ := unstructured.NestedBool(cm, "securityContext", "readOnlyRootFilesystem")
			esc, found, _ := unstructured.NestedBool(cm, "securityContext", "allowPrivilegeEscalation")
			drop, _, _ := unstructured.NestedStringSlice(cm, "securityContext", "capabilities", "drop")
			if !ro || !found || esc || !slices.Contains(drop, "ALL") {
				t.Errorf("%s/%s: readOnlyRootFilesystem %v, allowPrivilegeEscalation %v, drop %v", o.GetName(), cm["name"], ro, esc, drop)
			}
		}
	}
}

// checkRBAC: no wildcard anywhere, and the ClusterRole grants exactly the rules
// generated from the controllers' markers.
func checkRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	// Each ClusterRole of the chart is one of config/rbac, rule for rule.
	want := map[string]map[string]any{}
	for suffix, file := range map[string]string{"-manager": "role.yaml", "-secret-reader": "secret_reader_role.yaml", "-metrics-reader": "metrics_reader_role.yaml"} {
		raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", file))
		if err != nil {
			t.Fatal(err)
		}
		role := map[string]any{}
		if err := yaml.Unmarshal(raw, &role); err != nil {
			t.Fatal(err)
		}
		want[suffix] = role
	}
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			for _, field := range []string{"verbs", "resources", "apiGroups"} {
				vals, _, _ := unstructured.NestedStringSlice(r.(map[string]any), field)
				if slices.Contains(vals, "*") {
					t.Errorf("%s %s grants %s *", o.GetKind(), o.GetName(), field)
				}
			}
		}
		if o.GetKind() != "ClusterRole" {
			continue
		}
		suffix := "-manager"
		for _, s := range []string{"-secret-reader", "-metrics-reader"} {
			if strings.HasSuffix(o.GetName(), s) {
				suffix = s
			}
		}
		if w := want[suffix]; !reflect.DeepEqual(rules, w["rules"]) {
			t.Errorf("ClusterRole %s rules differ from config/rbac", o.GetName())
		}
	}
}

// checkCRDs: the rendered CRDs are config/crd/bases, but for Helm's keep annotation.
func checkCRDs(t *testing.T, objs []*unstructured.Unstructured, keep bool) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "config", "crd", "bases", "*.yaml"))
	want := map[string]map[string]any{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		u := map[string]any{}
		if err := yaml.Unmarshal(raw, &u); err != nil {
			t.Fatal(err)
		}
		want[u["metadata"].(map[string]any)["name"].(string)] = u
	}
	seen := 0
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		seen++
		got := o.DeepCopy()
		ann := got.GetAnnotations()
		if (ann["helm.sh/resource-policy"] == "keep") != keep {
			t.Errorf("%s: resource-policy %q; keep %v", got.GetName(), ann["helm.sh/resource-policy"], keep)
		}
		delete(ann, "helm.sh/resource-policy")
		got.SetAnnotations(ann)
		w, ok := want[got.GetName()]
		if !ok {
			t.Errorf("unexpected CRD %s", got.GetName())
			continue
		}
		wu := &unstructured.Unstructured{Object: w}
		if wa := wu.GetAnnotations(); len(wa) == 0 {
			wu.SetAnnotations(nil)
		}
		if len(got.GetAnnotations()) == 0 {
			got.SetAnnotations(nil)
		}
		if !reflect.DeepEqual(got.Object["spec"], wu.Object["spec"]) || !reflect.DeepEqual(got.GetAnnotations(), wu.GetAnnotations()) {
			t.Errorf("CRD %s differs from config/crd/bases", got.GetName())
		}
	}
	if seen != len(want) {
		t.Errorf("%d CRDs rendered; config/crd/bases has %d", seen, len(want))
	}
}

// checkPromQL has promtool parse each expression (Grafana's variables stand for a
// regular expression), as recording rules.
func checkPromQL(t *testing.T, exprs []string) {
	t.Helper()
	_, promtool := promtest.Binaries(t)
	var b strings.Builder
	b.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, e := range exprs {
		e = strings.NewReplacer("$namespace", ".*", "$detector", ".*").Replace(e)
		q, _ := json.Marshal(e)
		fmt.Fprintf(&b, "  - record: dashboard:expr%d\n    expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("a dashboard query does not parse: %v\n%s", err, out)
	}
}
