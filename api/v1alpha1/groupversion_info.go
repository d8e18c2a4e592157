// Package v1alpha1 contains the anomaly.kadet.dev/v1alpha1 API: DataSource, Detector
// and ModelVersion, and their condition types and reasons.
// +kubebuilder:object:generate=true
// +groupName=anomaly.kadet.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "anomaly.kadet.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API types with a runtime.Scheme. It is
	// apimachinery's, so importing the API pulls in no controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &DataSource{}, &DataSourceList{}, &Detector{}, &DetectorList{}, &ModelVersion{}, &ModelVersionList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
