package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DataSourceSpec says where a detector's data comes from. Exactly one source is set.
// +kubebuilder:validation:XValidation:rule="[has(self.csv), has(self.images), has(self.prometheus)].filter(x, x).size() == 1",message="exactly one of csv, images or prometheus must be set"
type DataSourceSpec struct {
	// CSV reads a delimited text file with a header row.
	// +optional
	CSV *CSVSource `json:"csv,omitempty"`

	// Images reads IDX image files (the MNIST format), gzip-compressed or raw.
	// +optional
	Images *ImageSource `json:"images,omitempty"`

	// Prometheus reads range queries from a Prometheus server.
	// +optional
	Prometheus *PrometheusSource `json:"prometheus,omitempty"`
}

// CSVSource is a delimited text file with a header row. The file comes from exactly
// one of configMapKeyRef, persistentVolumeClaim or url.
// +kubebuilder:validation:XValidation:rule="[has(self.configMapKeyRef), has(self.persistentVolumeClaim), has(self.url)].filter(x, x).size() == 1",message="exactly one of configMapKeyRef, persistentVolumeClaim or url must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.labelColumn) || !has(self.timestampColumn) || self.labelColumn != self.timestampColumn",message="labelColumn and timestampColumn must differ"
// +kubebuilder:validation:XValidation:rule="!has(self.columns) || !has(self.labelColumn) || !(self.labelColumn in self.columns)",message="labelColumn must not be one of the feature columns"
// +kubebuilder:validation:XValidation:rule="!has(self.columns) || !has(self.timestampColumn) || !(self.timestampColumn in self.columns)",message="timestampColumn must not be one of the feature columns"
type CSVSource struct {
	// ConfigMapKeyRef reads the file from a key of a ConfigMap in the DataSource's namespace.
	// A change to that key starts a new training.
	// +optional
	ConfigMapKeyRef *ConfigMapKeyReference `json:"configMapKeyRef,omitempty"`

	// PersistentVolumeClaim reads the file from a path on a PVC in the DataSource's namespace.
	// +optional
	PersistentVolumeClaim *PVCFile `json:"persistentVolumeClaim,omitempty"`

	// URL reads the file over http or https.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	URL string `json:"url,omitempty"`

	// Columns are the feature columns, in order. Empty means every column except the
	// timestamp and label columns.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4096
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Columns []string `json:"columns,omitempty"`

	// TimestampColumn orders the rows; sequence models need it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	TimestampColumn string `json:"timestampColumn,omitempty"`

	// LabelColumn holds 0 (normal) or 1 (anomaly) per row. MLPClassifier and the BestF1
	// threshold need it; autoencoders train and calibrate on the rows labelled 0 only
	// and report held-out AUROC, AUPRC and F1 from the labels.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	LabelColumn string `json:"labelColumn,omitempty"`

	// Delimiter separates fields: one character.
	// +optional
	// +kubebuilder:default=","
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1
	// +kubebuilder:validation:XValidation:rule="self != '\"' && self != '\\n' && self != '\\r'",message="delimiter must not be a quote or a line break"
	Delimiter string `json:"delimiter,omitempty"`
}

// ImageSource is a set of 8-bit images in IDX format, optionally with IDX labels.
// +kubebuilder:validation:XValidation:rule="!has(self.classes) || has(self.labelFile)",message="classes needs labelFile to know each image's class"
type ImageSource struct {
	// File is the IDX images file (magic 0x00000803), gzip-compressed or raw.
	File RemoteFile `json:"file"`

	// LabelFile is the IDX labels file (magic 0x00000801) matching File.
	// +optional
	LabelFile *RemoteFile `json:"labelFile,omitempty"`

	// Classes keeps only images with these labels for training, e.g. [3] trains on the
	// digit 3 alone so every other digit scores as an anomaly.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:Minimum=0
	// +kubebuilder:validation:items:Maximum=255
	Classes []int32 `json:"classes,omitempty"`
}

// RemoteFile is a file on a PVC or behind an http(s) URL: exactly one of the two.
// +kubebuilder:validation:XValidation:rule="has(self.persistentVolumeClaim) != has(self.url)",message="exactly one of persistentVolumeClaim or url must be set"
type RemoteFile struct {
	// +optional
	PersistentVolumeClaim *PVCFile `json:"persistentVolumeClaim,omitempty"`

	// URL is an http(s) address the training pod downloads the file from.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	URL string `json:"url,omitempty"`
}

// ConfigMapKeyReference names a key of a ConfigMap in the same namespace.
type ConfigMapKeyReference struct {
	// Name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// SecretKeyReference names a key of a Secret in the same namespace.
type SecretKeyReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// PVCFile is a file on a PersistentVolumeClaim in the same namespace, mounted read-only.
type PVCFile struct {
	// ClaimName is the PVC's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`

	// Path is relative to the volume's root.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path must be relative to the volume root"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="path must not contain '..'"
	Path string `json:"path"`
}

// PrometheusSource reads one series per named query over a time range.
// +kubebuilder:validation:XValidation:rule="duration(self.step) >= duration('1s')",message="step must be at least 1s"
// +kubebuilder:validation:XValidation:rule="duration(self.range) > duration(self.step)",message="range must be longer than step"
// +kubebuilder:validation:XValidation:rule="duration(self.step) < duration('1s') || duration(self.range).getSeconds() / duration(self.step).getSeconds() <= 11000",message="range / step must be at most 11000 points (Prometheus' limit per query)"
type PrometheusSource struct {
	// URL of the Prometheus server, e.g. http://prometheus.monitoring:9090.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	URL string `json:"url"`

	// Queries become the feature columns, named by their name.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Queries []PrometheusQuery `json:"queries"`

	// Range is how far back from now the training data reaches.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	Range metav1.Duration `json:"range,omitempty"`

	// Step is the resolution of the range queries.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	Step metav1.Duration `json:"step,omitempty"`

	// BearerTokenSecretRef authenticates to the server.
	// +optional
	BearerTokenSecretRef *SecretKeyReference `json:"bearerTokenSecretRef,omitempty"`
}

// PrometheusQuery is a PromQL expression that must return exactly one series.
type PrometheusQuery struct {
	// Name is the feature's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	Name string `json:"name"`

	// Query is PromQL.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`
}

// DataSourceStatus is the observed state of a DataSource.
type DataSourceStatus struct {
	// ObservedGeneration is the last generation whose references were checked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// SourceType is csv, images or prometheus.
	// +optional
	SourceType string `json:"sourceType,omitempty"`

	// Conditions: Ready says whether every referenced object exists and the spec is usable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DataSource declares where training data comes from: a CSV file, IDX images or Prometheus.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ds;kds,categories=kadet
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.sourceType`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DataSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   DataSourceSpec   `json:"spec"`
	Status DataSourceStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (in *DataSource) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *DataSource) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// Type is the name of the source set in the spec: csv, images or prometheus.
func (in *DataSourceSpec) Type() string {
	switch {
	case in.CSV != nil:
		return "csv"
	case in.Images != nil:
		return "images"
	case in.Prometheus != nil:
		return "prometheus"
	}
	return ""
}

// +kubebuilder:object:root=true

// DataSourceList is a list of DataSources.
type DataSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataSource `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DataSource{}, &DataSourceList{})
}
