package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DataSourceSpec says where a detector's data comes from. Exactly one source is set.
// +kubebuilder:validation:XValidation:rule="[has(self.csv), has(self.images), has(self.prometheus)].filter(x, x).size() == 1",message="exactly one of csv, images or prometheus must be set"
type DataSourceSpec struct {
	// csv reads a delimited text file with a header row.
	// +optional
	CSV *CSVSource `json:"csv,omitempty"`

	// images reads IDX image files (the MNIST format), gzip-compressed or raw.
	// +optional
	Images *ImageSource `json:"images,omitempty"`

	// prometheus reads range queries from a Prometheus server.
	// +optional
	Prometheus *PrometheusSource `json:"prometheus,omitempty"`
}

// CSVSource is a delimited text file with a header row. The file comes from exactly
// one of configMapKeyRef, persistentVolumeClaim or url.
// +kubebuilder:validation:XValidation:rule="[has(self.configMapKeyRef), has(self.persistentVolumeClaim), has(self.url)].filter(x, x).size() == 1",message="exactly one of configMapKeyRef, persistentVolumeClaim or url must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.labelColumn) || !has(self.timestampColumn) || self.labelColumn != self.timestampColumn",message="labelColumn and timestampColumn must differ"
// +kubebuilder:validation:XValidation:rule="!has(self.columns) || !has(self.labelColumn) || !(self.labelColumn in self.columns)",message="labelColumn must not be one of the feature columns"
// +kubebuilder:validation:XValidation:rule="!has(self.columns) || !has(self.timestampColumn) || !(self.timestampColumn in self.columns)",message="timestampColumn must not be one of the feature columns"
// +kubebuilder:validation:XValidation:rule="!has(self.entityColumn) || ((!has(self.columns) || !(self.entityColumn in self.columns)) && (!has(self.timestampColumn) || self.entityColumn != self.timestampColumn) && (!has(self.labelColumn) || self.entityColumn != self.labelColumn))",message="entityColumn must not be a feature, the timestamp or the label column"
type CSVSource struct {
	// configMapKeyRef reads the file from a key of a ConfigMap in the DataSource's namespace.
	// A change to that key starts a new training.
	// +optional
	ConfigMapKeyRef *ConfigMapKeyReference `json:"configMapKeyRef,omitempty"`

	// persistentVolumeClaim reads the file from a path on a PVC in the DataSource's namespace.
	// +optional
	PersistentVolumeClaim *PVCFile `json:"persistentVolumeClaim,omitempty"`

	// url reads the file over http or https.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	URL string `json:"url,omitempty"`

	// columns are the feature columns, in order. Empty means every column except the
	// timestamp and label columns.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4096
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Columns []string `json:"columns,omitempty"`

	// timestampColumn orders the rows; sequence models need it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	TimestampColumn string `json:"timestampColumn,omitempty"`

	// entityColumn names each row's entity (a pod, a host): each entity's rows are a
	// series of their own, as a Prometheus query's series are, and one model learns
	// them all.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	EntityColumn string `json:"entityColumn,omitempty"`

	// labelColumn holds 0 (normal) or 1 (anomaly) per row. MLPClassifier and the BestF1
	// threshold need it; autoencoders train and calibrate on the rows labelled 0 only
	// and report held-out AUROC, AUPRC and F1 from the labels.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	LabelColumn string `json:"labelColumn,omitempty"`

	// delimiter separates fields: one character.
	// +optional
	// +kubebuilder:default=","
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1
	// +kubebuilder:validation:XValidation:rule="self != '\"' && self != '\\n' && self != '\\r'",message="delimiter must not be a quote or a line break"
	Delimiter string `json:"delimiter,omitempty"`
}

// ImageSource is a set of 8-bit images in IDX format, optionally with IDX labels.
// +kubebuilder:validation:XValidation:rule="!has(self.classes) || has(self.labelFile)",message="classes needs labelFile to know each image's class"
// +kubebuilder:validation:XValidation:rule="!has(self.labelFile) || !((has(self.labelFile.url) && has(self.file.url) && self.labelFile.url == self.file.url) || (has(self.labelFile.persistentVolumeClaim) && has(self.file.persistentVolumeClaim) && self.labelFile.persistentVolumeClaim.claimName == self.file.persistentVolumeClaim.claimName && self.labelFile.persistentVolumeClaim.path == self.file.persistentVolumeClaim.path))",message="labelFile must be the labels file, not the images file again"
type ImageSource struct {
	// file is the IDX images file (magic 0x00000803), gzip-compressed or raw.
	// +required
	File RemoteFile `json:"file"`

	// labelFile is the IDX labels file (magic 0x00000801) matching File.
	// +optional
	LabelFile *RemoteFile `json:"labelFile,omitempty"`

	// classes keeps only images with these labels for training, e.g. [3] trains on the
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
	// persistentVolumeClaim is a file on a PVC in the same namespace.
	// +optional
	PersistentVolumeClaim *PVCFile `json:"persistentVolumeClaim,omitempty"`

	// url is an http(s) address the training pod downloads the file from.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	URL string `json:"url,omitempty"`
}

// ConfigMapKeyReference names a key of a ConfigMap in the same namespace.
type ConfigMapKeyReference struct {
	// name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be the name of a Kubernetes object: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +required
	Name string `json:"name"`
	// key within it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +required
	Key string `json:"key"`
}

// SecretKeyReference names a key of a Secret in the same namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be the name of a Kubernetes object: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +required
	Name string `json:"name"`
	// key within it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +required
	Key string `json:"key"`
}

// PVCFile is a file on a PersistentVolumeClaim in the same namespace, mounted read-only.
type PVCFile struct {
	// claimName is the PVC's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be the name of a Kubernetes object: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +required
	ClaimName string `json:"claimName"`

	// path is relative to the volume's root.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path must be relative to the volume root"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="path must not contain '..'"
	// +required
	Path string `json:"path"`
}

// PrometheusSource reads one series per named query (or per entity, with entityLabels)
// over a time range; long ranges are read in requests under Prometheus's limit of
// 11,000 points per series.
// +kubebuilder:validation:XValidation:rule="duration(self.step) >= duration('1s')",message="step must be at least 1s"
// +kubebuilder:validation:XValidation:rule="duration(self.range) > duration(self.step)",message="range must be longer than step"
// +kubebuilder:validation:XValidation:rule="duration(self.step) < duration('1s') || (duration(self.range).getSeconds() / duration(self.step).getSeconds() + 1) * size(self.queries) <= 10000000",message="range / step times the number of queries must be at most 10,000,000 points: shorten range or lengthen step"
// +kubebuilder:validation:XValidation:rule="!(has(self.bearerTokenSecretRef) && has(self.basicAuthSecretRef))",message="give bearerTokenSecretRef or basicAuthSecretRef, not both"
type PrometheusSource struct {
	// url of the Prometheus server, e.g. http://prometheus.monitoring:9090.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +required
	URL string `json:"url"`

	// queries become the feature columns, named by their name.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +required
	Queries []PrometheusQuery `json:"queries"`

	// range is how far back from now the training data reaches.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	Range metav1.Duration `json:"range,omitempty"`

	// step is the resolution of the range queries.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	Step metav1.Duration `json:"step,omitempty"`

	// bearerTokenSecretRef authenticates to the server with a bearer token.
	// +optional
	BearerTokenSecretRef *SecretKeyReference `json:"bearerTokenSecretRef,omitempty"`

	// basicAuthSecretRef authenticates to the server with the user name and password
	// under the keys username and password of a Secret (the kubernetes.io/basic-auth
	// layout).
	// +optional
	BasicAuthSecretRef *LocalObjectReference `json:"basicAuthSecretRef,omitempty"`

	// tls says how the server's certificate is checked over https.
	// +optional
	TLS *PrometheusTLS `json:"tls,omitempty"`

	// headers are sent with every request, e.g. X-Scope-OrgID for a multi-tenant store
	// (Mimir, Cortex, Thanos). A value that is a secret (an API key) comes from a
	// Secret (valueFrom); bearer tokens and passwords belong in bearerTokenSecretRef or
	// basicAuthSecretRef.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Headers []PrometheusHeader `json:"headers,omitempty"`

	// entityLabels split each query's series into entities (e.g. [namespace, pod]):
	// rows become (time, entity), one column per query, one model for all entities, and
	// scores name their entity. Without them every query must return one series. A
	// query whose single series has none of these labels applies to every entity.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	// +kubebuilder:validation:items:MaxLength=128
	EntityLabels []string `json:"entityLabels,omitempty"`

	// maxGap is how many steps of missing or NaN samples a series bridges by carrying
	// its last value forward; rows in longer gaps are left out.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	MaxGap *int32 `json:"maxGap,omitempty"`
}

// PrometheusTLS says how the server's certificate is checked.
// +kubebuilder:validation:XValidation:rule="!(has(self.caSecretRef) && has(self.caConfigMapRef))",message="give the CA bundle in caSecretRef or caConfigMapRef, not both"
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipVerify) && self.insecureSkipVerify && (has(self.caSecretRef) || has(self.caConfigMapRef)))",message="insecureSkipVerify skips the check a CA bundle is for: give one or the other"
type PrometheusTLS struct {
	// caSecretRef is a key of a Secret holding the PEM CA bundle the server's
	// certificate must chain to.
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`

	// caConfigMapRef is a key of a ConfigMap holding that bundle.
	// +optional
	CAConfigMapRef *ConfigMapKeyReference `json:"caConfigMapRef,omitempty"`

	// serverName is the name the certificate must carry, when the URL's host is not.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`

	// insecureSkipVerify accepts any certificate: for trials only.
	// +optional
	InsecureSkipVerify *bool `json:"insecureSkipVerify,omitempty"`
}

// PrometheusHeader is an HTTP header sent with every request.
// +kubebuilder:validation:XValidation:rule="!(self.name.lowerAscii() in ['authorization', 'cookie', 'proxy-authorization'])",message="credentials go in bearerTokenSecretRef or basicAuthSecretRef, not in a header"
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFrom)",message="give the header's value, or valueFrom (a key of a Secret), not both"
type PrometheusHeader struct {
	// name of the header.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	// +required
	Name string `json:"name"`

	// value of the header, in the spec; a value that is a secret goes in valueFrom,
	// so that it is never copied into the objects kadet creates.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Value string `json:"value,omitempty"`

	// valueFrom is a key of a Secret in the DataSource's namespace holding the value:
	// training and scoring pods mount it, and the manager reads it to check the server.
	// +optional
	ValueFrom *SecretKeyReference `json:"valueFrom,omitempty"`
}

// PrometheusQuery is a PromQL expression that must return exactly one series.
type PrometheusQuery struct {
	// name is the feature's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	// +required
	Name string `json:"name"`

	// query is PromQL.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Query string `json:"query"`
}

// DataSourceStatus is the observed state of a DataSource.
type DataSourceStatus struct {
	// conditions hold Ready, which says whether every referenced object exists and the spec is usable.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the last generation whose references were checked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// sourceType is csv, images or prometheus.
	// +optional
	SourceType string `json:"sourceType,omitempty"`
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
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired DataSource.
	// +required
	Spec DataSourceSpec `json:"spec"`
	// status is what the controller observed.
	// +optional
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
	// metadata is the standard list metadata.
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the DataSources.
	Items []DataSource `json:"items"`
}
