// Package v1alpha1 contains the anomaly.kadet.dev/v1alpha1 API: DataSource and
// Detector, plus the JSON contract shared by the controller and the detector binary.
// +kubebuilder:object:generate=true
// +groupName=anomaly.kadet.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "anomaly.kadet.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
