// Package builders turns a Detector (and its DataSource) into the Kubernetes objects
// that train and serve it. Every function here is pure: same input, same object, no API
// calls, so each is covered by a table test and the controller only decides when to
// create, apply or delete.
package builders

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// Labels and annotations on every child object.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelDetector  = "anomaly.kadet.dev/detector"
	LabelSpecHash  = "anomaly.kadet.dev/spec-hash"

	AnnotationModelVersion = "anomaly.kadet.dev/model-version"
	AnnotationModelDigest  = "anomaly.kadet.dev/model-digest"
	// AnnotationRetrain on a Detector: any new value starts a new training run.
	AnnotationRetrain = "anomaly.kadet.dev/retrain"
	// AnnotationBacktest on a Detector: a range (7d, 24h) over which a Job backtests
	// the served version, each new value (or served version) once.
	AnnotationBacktest = "anomaly.kadet.dev/backtest"

	ComponentTraining = "training"
	ComponentBacktest = "backtest"
	ComponentScoring  = "scoring"
	ManagedBy         = "kadet"

	// TrainerContainer and ScoringContainer name the containers, so a pod failure
	// policy and log readers can address them.
	TrainerContainer = "trainer"
	ScoringContainer = "scoring"
)

// Paths inside training and scoring pods.
const (
	SpecDir     = "/etc/kadet/spec"
	ModelDir    = "/var/lib/kadet/models"
	FeedbackDir = "/var/lib/kadet/feedback"
	DataDir     = "/var/run/kadet/data"
	PVCDataRoot = "/var/run/kadet/pvc"
	SecretsDir  = "/var/run/kadet/secrets"
	TmpDir      = "/tmp"
)

// Names of a Detector's children. The CRD caps Detector names at 40 characters so
// each fits a 63-character label value.

// SpecConfigMapName names the immutable ConfigMap of one rendered spec.
func SpecConfigMapName(det *kadetv1.Detector, hash string) string {
	return det.Name + "-spec-" + hash
}

// TrainingJobName names the training Job of one spec.
func TrainingJobName(det *kadetv1.Detector, hash string) string { return det.Name + "-train-" + hash }

// ProgressConfigMapName names the ConfigMap the training pod reports progress into.
func ProgressConfigMapName(det *kadetv1.Detector) string { return det.Name + "-progress" }

// TrainerName names the training pod's ServiceAccount, Role and RoleBinding.
func TrainerName(det *kadetv1.Detector) string { return det.Name + "-trainer" }

// ModelPVCName names the volume that keeps every model version.
func ModelPVCName(det *kadetv1.Detector) string { return det.Name + "-models" }

// ScoringName names the scoring Deployment and Service.
func ScoringName(det *kadetv1.Detector) string { return det.Name + "-scoring" }

// childSuffixes end the names of the children ClaimedNames lists and of the model
// PVC and watch ConfigMap, after the Detector's name.
var childSuffixes = []string{"-trainer", "-progress", "-scoring", "-scorer", "-watch-status", "-watch", "-models"}

// DetectorsClaiming are the names of the Detectors one of whose children would be
// named child, so that the deletion of an object that held a child's name brings its
// Detector back.
func DetectorsClaiming(child string) []string {
	var names []string
	for _, s := range childSuffixes {
		if name, ok := strings.CutSuffix(child, s); ok && name != "" {
			names = append(names, name)
		}
	}
	return names
}

// ClaimedNames are the children det's spec implies whatever its data and model: the
// trainer's identity, the progress ConfigMap, the scoring Deployment and Service,
// the NetworkPolicy it asks for and, when its pods report, their identity and status
// ConfigMap. Each is an empty object of its kind, namespace and name, for checking
// that no object of someone else's holds the name before kadet creates anything.
func ClaimedNames(det *kadetv1.Detector) []client.Object {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: det.Namespace, Name: name} }
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: meta(TrainerName(det))},
		&rbacv1.Role{ObjectMeta: meta(TrainerName(det))},
		&rbacv1.RoleBinding{ObjectMeta: meta(TrainerName(det))},
		&corev1.ConfigMap{ObjectMeta: meta(ProgressConfigMapName(det))},
		&appsv1.Deployment{ObjectMeta: meta(ScoringName(det))},
		&corev1.Service{ObjectMeta: meta(ScoringName(det))},
	}
	if NetworkPolicyEnabled(det) {
		objs = append(objs, &networkingv1.NetworkPolicy{ObjectMeta: meta(ScoringName(det))})
	}
	if Reports(det) {
		objs = append(objs, &corev1.ServiceAccount{ObjectMeta: meta(ScorerName(det))}, &rbacv1.Role{ObjectMeta: meta(ScorerName(det))},
			&rbacv1.RoleBinding{ObjectMeta: meta(ScorerName(det))}, &corev1.ConfigMap{ObjectMeta: meta(WatchStatusConfigMapName(det))})
	}
	return objs
}

// selectorLabels identify a Detector's pods of one component.
func selectorLabels(det *kadetv1.Detector, component string) map[string]string {
	return map[string]string{LabelDetector: det.Name, LabelComponent: component}
}

// commonLabels go on every child object.
func commonLabels(det *kadetv1.Detector, component string) map[string]string {
	l := selectorLabels(det, component)
	l[LabelName] = "kadet"
	l[LabelManagedBy] = ManagedBy
	l[LabelInstance] = det.Name
	return l
}
