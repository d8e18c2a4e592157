// Package builders turns a Detector (and its DataSource) into the Kubernetes objects
// that train and serve it. Every function here is pure: same input, same object, no API
// calls, so each is covered by a table test and the controller only decides when to
// create, apply or delete.
package builders

import (
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

	ComponentTraining = "training"
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
