package builders

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	prommodel "github.com/prometheus/common/model"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

// WatchDir is where scoring pods read their WatchRequest.
const WatchDir = "/etc/kadet/watch"

// AnnotationWatchHash on the scoring pod template rolls the pods when the watch
// request changes.
const AnnotationWatchHash = "anomaly.kadet.dev/watch-hash"

// Defaults of the generated alert.
const (
	DefaultAlertFor      = contract.DefaultAlertFor
	DefaultAlertSeverity = "warning"
	AlertName            = "KadetAnomaly"
)

// WatchPlan is the WatchRequest of a Detector on a Prometheus DataSource, with the
// volumes that put its credentials into the scoring pods.
type WatchPlan struct {
	Request contract.WatchRequest
	Hash    string
	Volumes []corev1.Volume
	Mounts  []corev1.VolumeMount
	// EntityLabels are the DataSource's, as the watch exports them.
	EntityLabels []string
	Interval     metav1.Duration
}

// ResolveWatch renders the WatchRequest of det on ds, or returns nil when ds is not a
// Prometheus source (nothing to watch). The credentials are mounted exactly as for
// training.
func ResolveWatch(det *kadetv1.Detector, ds *kadetv1.DataSource) (*WatchPlan, error) {
	pr := ds.Spec.Prometheus
	if pr == nil {
		return nil, nil
	}
	var tp TrainingPlan
	tp.resolvePrometheus(pr)
	interval := pr.Step
	if i := det.Spec.Scoring.Interval; i != nil {
		interval = *i
	}
	w := &WatchPlan{
		Request: contract.WatchRequest{
			APIVersion: contract.APIVersion, Kind: contract.WatchKind,
			Detector:   contract.ObjectKey{Namespace: det.Namespace, Name: det.Name},
			Prometheus: *tp.Request.Data.Prometheus, Interval: interval.Duration.String(),
			Lease: LeaseName(det), StatusConfigMap: WatchStatusConfigMapName(det),
		},
		Volumes: tp.Volumes, Mounts: tp.Mounts, Interval: interval,
	}
	w.Request.Prometheus.Range = "" // the pod reads windows, not the training range
	if d := det.Spec.Scoring.Delay; d != nil && d.Duration > 0 {
		w.Request.Delay = d.Duration.String()
	}
	for _, l := range pr.EntityLabels {
		w.EntityLabels = append(w.EntityLabels, exportedLabel(l))
	}
	slices.Sort(w.EntityLabels)
	b, err := json.Marshal(w.Request)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	w.Hash = hex.EncodeToString(sum[:])[:10]
	return w, nil
}

// exportedLabel is the name an entity label has on the watch's series: namespace,
// detector and feature name the Detector and the feature, so an entity label of one
// of those names is entity_<name>.
func exportedLabel(l string) string {
	switch l {
	case "namespace", "detector", "feature":
		return "entity_" + l
	}
	return l
}

// WatchConfigMapName names the ConfigMap holding the WatchRequest.
func WatchConfigMapName(det *kadetv1.Detector) string { return det.Name + "-watch" }

// WatchStatusConfigMapName names the ConfigMap the scoring pods report into: the
// watching pod its watch, every pod its drift.
func WatchStatusConfigMapName(det *kadetv1.Detector) string { return det.Name + "-watch-status" }

// LeaseName names the Lease the scoring pods elect their watcher with.
func LeaseName(det *kadetv1.Detector) string { return det.Name + "-scoring" }

// ScorerName names the scoring pods' ServiceAccount, Role and RoleBinding.
func ScorerName(det *kadetv1.Detector) string { return det.Name + "-scorer" }

// WatchConfigMap holds the WatchRequest. The scoring pods may not write it: it says
// where their credentials go.
func WatchConfigMap(det *kadetv1.Detector, w *WatchPlan) (*corev1.ConfigMap, error) {
	b, err := json.MarshalIndent(w.Request, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rendering watch request: %w", err)
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(det, WatchConfigMapName(det), ComponentScoring),
		Data:       map[string]string{contract.WatchFileName: string(b)},
	}, nil
}

// WatchStatusConfigMap is the one ConfigMap the scoring pods may write.
func WatchStatusConfigMap(det *kadetv1.Detector) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(det, WatchStatusConfigMapName(det), ComponentScoring),
	}
}

// ScoringLease is the Lease the scoring pods elect their watcher with. kadet creates
// it, so the pods need no right to create Leases.
func ScoringLease(det *kadetv1.Detector) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		TypeMeta:   metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
		ObjectMeta: objectMeta(det, LeaseName(det), ComponentScoring),
	}
}

// ScorerServiceAccount is the identity of scoring pods that watch or report drift.
func ScorerServiceAccount(det *kadetv1.Detector) *corev1.ServiceAccount {
	return serviceAccount(det, ScorerName(det), ComponentScoring)
}

// ScorerRole lets scoring pods hold their one Lease and write their one status
// ConfigMap, and nothing else.
func ScorerRole(det *kadetv1.Detector) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: objectMeta(det, ScorerName(det), ComponentScoring),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
				ResourceNames: []string{LeaseName(det)}, Verbs: []string{"get", "update"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"},
				ResourceNames: []string{WatchStatusConfigMapName(det)}, Verbs: []string{"get", "patch"}},
		},
	}
}

// ScorerRoleBinding binds ScorerRole to ScorerServiceAccount.
func ScorerRoleBinding(det *kadetv1.Detector) *rbacv1.RoleBinding {
	return roleBinding(det, ScorerName(det), ComponentScoring)
}

// AlertingEnabled says whether det gets a PrometheusRule and PodMonitor: by default
// when it watches a Prometheus source.
func AlertingEnabled(det *kadetv1.Detector, w *WatchPlan) bool {
	return w != nil && ptr.Deref(det.Spec.Alerting.Enabled, true)
}

// PrometheusRule alerts KadetAnomaly for each entity whose score stays above 1 for
// alerting.for. The score is taken as the max over the scoring pods, so an alert does
// not depend on which pod leads the watch. The annotations name the detector, the
// entity, the score and the top feature (read at evaluation with a template query).
func PrometheusRule(det *kadetv1.Detector, w *WatchPlan) *unstructured.Unstructured {
	a := det.Spec.Alerting
	by := append([]string{"namespace", "detector"}, w.EntityLabels...)
	selector := fmt.Sprintf("namespace=%q,detector=%q", det.Namespace, det.Name)
	labels := map[string]any{"severity": DefaultAlertSeverity}
	if a.Severity != "" {
		labels["severity"] = a.Severity
	}
	for k, v := range a.Labels {
		labels[k] = literalTemplate(string(v))
	}
	entity := make([]string, 0, len(w.EntityLabels))
	topQuery := `printf "topk(1, kadet_anomaly_contribution{namespace=%q,detector=%q`
	args := " $labels.namespace $labels.detector"
	for _, l := range w.EntityLabels {
		entity = append(entity, l+"={{ $labels."+l+" }}")
		topQuery += "," + l + "=%q"
		args += " $labels." + l
	}
	topQuery += `})"` + args
	what := "its series"
	if len(entity) > 0 {
		what = strings.Join(entity, ", ")
	}
	annotations := map[string]any{
		"summary": fmt.Sprintf("Detector %s/%s: %s is anomalous", det.Namespace, det.Name, what),
		"description": fmt.Sprintf("Detector %s/%s scores %s at {{ $value | printf \"%%.2f\" }} (above 1 is an anomaly) for %s; "+
			"top feature: {{ with %s | query }}{{ range . }}{{ .Labels.feature }}{{ end }}{{ end }}.",
			det.Namespace, det.Name, what, alertFor(det), topQuery),
		"detector": det.Namespace + "/" + det.Name,
	}
	for k, v := range a.Annotations {
		annotations[k] = literalTemplate(string(v))
	}
	rule := map[string]any{
		"alert":       AlertName,
		"expr":        fmt.Sprintf("max by (%s) (kadet_anomaly_score{%s}) > 1", strings.Join(by, ", "), selector),
		"for":         alertFor(det),
		"labels":      labels,
		"annotations": annotations,
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
		"spec": map[string]any{"groups": []any{map[string]any{
			"name": "kadet-" + det.Name, "rules": []any{rule},
		}}},
	}}
	setMeta(u, objectMeta(det, det.Name+"-alerts", ComponentScoring))
	return u
}

// alertReference is the one template action a user's alert label or annotation keeps:
// a reference to the alert's own labels or value, through functions that only format
// it (the CRD's rule, written once more).
var alertReference = regexp.MustCompile(`^[{][{] *((humanize|humanize1024|humanizePercentage|humanizeDuration|toUpper|toLower|title) +)?[$](labels[.][a-zA-Z_][a-zA-Z0-9_]*|value)( *[|] *(humanize|humanize1024|humanizePercentage|humanizeDuration|toUpper|toLower|title))* *[}][}]`)

// literalTemplate is s with every template action but alertReference's made literal
// text, so that Prometheus prints it instead of running it (a query would run with
// Prometheus's rights). The CRD refuses such values; this covers Detectors written
// before it did.
func literalTemplate(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		if ref := alertReference.FindString(s[i:]); ref != "" {
			b.WriteString(ref)
			s = s[i+len(ref):]
			continue
		}
		b.WriteString(`{{ "{{" }}`)
		s = s[i+2:]
	}
}

func alertFor(det *kadetv1.Detector) string {
	if f := det.Spec.Alerting.For; f != nil {
		return promDuration(f.Duration)
	}
	return DefaultAlertFor
}

// promDuration writes d as Prometheus writes durations (5m, 1h30s).
func promDuration(d time.Duration) string { return prommodel.Duration(d).String() }

// PodMonitor scrapes det's scoring pods at the watch interval. honorLabels keeps the
// series' entity labels (a watched pod's pod, instance and job) as the pod exports
// them; every series' namespace and detector are then set to det's, so no pod the
// monitor selects can speak for another namespace or Detector.
func PodMonitor(det *kadetv1.Detector, w *WatchPlan) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{
				LabelDetector: det.Name, LabelComponent: ComponentScoring,
			}},
			"podMetricsEndpoints": []any{map[string]any{
				"port": "http", "path": "/metrics", "honorLabels": true,
				"interval": promDuration(w.Interval.Duration),
				"metricRelabelings": []any{
					map[string]any{"action": "replace", "targetLabel": "namespace", "replacement": det.Namespace},
					map[string]any{"action": "replace", "targetLabel": "detector", "replacement": det.Name},
				},
			}},
		},
	}}
	setMeta(u, objectMeta(det, ScoringName(det), ComponentScoring))
	return u
}

func setMeta(u *unstructured.Unstructured, m metav1.ObjectMeta) {
	u.SetName(m.Name)
	u.SetNamespace(m.Namespace)
	u.SetLabels(m.Labels)
	u.SetOwnerReferences(m.OwnerReferences)
}

// ScorerIdentity says whether det's scoring pods use the API, with the scorer
// ServiceAccount: to watch a Prometheus source, or to report drift and shadow counts.
func ScorerIdentity(det *kadetv1.Detector, w *WatchPlan) bool {
	return w != nil || Reports(det)
}

// Reports says whether det's scoring pods report into the status ConfigMap what
// kadet decides on: drift for onDrift, shadow counts for a gated promotion.
func Reports(det *kadetv1.Detector) bool {
	return det.Spec.Retraining.OnDrift != nil || Gated(det)
}

// Gated says whether new versions run in shadow before they serve.
func Gated(det *kadetv1.Detector) bool {
	p := det.Spec.Promotion.Policy
	return p == kadetv1.PromoteAutomatic || p == kadetv1.PromoteManual
}

// ShadowVersion is the version det's scoring pods score in shadow, or "".
func ShadowVersion(det *kadetv1.Detector) string {
	if sh := det.Status.Shadow; sh != nil && sh.Decision == kadetv1.ShadowPending && Gated(det) && det.Spec.Scoring.ModelVersion == "" {
		return sh.Version
	}
	return ""
}

// scorerPod gives a scoring pod template the scorer's identity and the pod's namespace.
func scorerPod(det *kadetv1.Detector, spec *corev1.PodSpec) {
	spec.ServiceAccountName = ScorerName(det)
	spec.AutomountServiceAccountToken = ptr.To(true)
	c := &spec.Containers[0]
	c.Env = append(c.Env, fieldEnv(contract.EnvPodNamespace, "metadata.namespace"))
}

// reportingPod has the scoring pods measure drift over the policy's window, score the
// shadow version, and report both into the status ConfigMap.
func reportingPod(det *kadetv1.Detector, spec *corev1.PodSpec) {
	c := &spec.Containers[0]
	c.Args = append(c.Args, "--status-configmap", WatchStatusConfigMapName(det),
		"--drift-window", strconv.Itoa(int(DriftWindow(det.Spec.Retraining.OnDrift))))
	if v := ShadowVersion(det); v != "" {
		c.Args = append(c.Args, "--shadow-version", v)
	}
}

// DriftWindow is the policy's window, or the default.
func DriftWindow(p *kadetv1.DriftPolicy) int32 {
	if p == nil || p.Window == nil {
		return DefaultDriftWindow
	}
	return *p.Window
}

// DefaultDriftWindow is retraining.onDrift.window when left out.
const DefaultDriftWindow = 1000

// watchPod adds the watch to a scoring pod template: the request and credentials as
// volumes and the flag.
func watchPod(det *kadetv1.Detector, w *WatchPlan, spec *corev1.PodSpec, annotations map[string]string) {
	c := &spec.Containers[0]
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "watch", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: WatchConfigMapName(det)},
	}}})
	spec.Volumes = append(spec.Volumes, w.Volumes...)
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "watch", MountPath: WatchDir, ReadOnly: true})
	c.VolumeMounts = append(c.VolumeMounts, w.Mounts...)
	c.Args = append(c.Args, "--watch", path.Join(WatchDir, contract.WatchFileName))
	annotations[AnnotationWatchHash] = w.Hash
}
