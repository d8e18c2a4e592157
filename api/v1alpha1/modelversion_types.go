package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelVersionPhase is where a model stands in its Detector's life.
// +kubebuilder:validation:Enum=Serving;Available;Retired;Shadow;Candidate;Rejected
type ModelVersionPhase string

// Phases of a ModelVersion.
const (
	// ModelServing: the scoring pods serve this version.
	ModelServing ModelVersionPhase = "Serving"
	// ModelAvailable: on the volume, not served; pin it to serve it.
	ModelAvailable ModelVersionPhase = "Available"
	// ModelRetired: its file was removed by keepVersions; the record stays until its
	// ModelVersion is deleted with it.
	ModelRetired ModelVersionPhase = "Retired"
	// ModelShadow: scored beside the served version on live traffic, not answering.
	ModelShadow ModelVersionPhase = "Shadow"
	// ModelCandidate: passed its shadow period under a Manual policy; pin it to serve it.
	ModelCandidate ModelVersionPhase = "Candidate"
	// ModelRejected: the promotion gate refused it (status.message says why); pin it to
	// serve it anyway.
	ModelRejected ModelVersionPhase = "Rejected"
)

// ModelVersionSpec records one trained model: what it is, what it saw, how it was made.
// It is written once by kadet and never changes.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a ModelVersion records one trained model"
type ModelVersionSpec struct {
	// detector is the Detector the model was trained for.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	Detector string `json:"detector"`

	// version names the model file on the model volume.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version"`

	// digest is the model file's sha256.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	Digest string `json:"digest"`

	// threshold is the calibrated raw-score threshold.
	// +required
	Threshold float64 `json:"threshold"`

	// metrics reported by training: loss, valLoss, and auroc, f1 when labels exist.
	// +optional
	Metrics map[string]float64 `json:"metrics,omitempty"`

	// data is what the model trained on.
	// +required
	Data ModelVersionData `json:"data"`

	// specHash is the hash of the training spec (and retrain token) that produced it.
	// +required
	// +kubebuilder:validation:MaxLength=64
	SpecHash string `json:"specHash"`

	// seed of the training run.
	// +optional
	Seed int64 `json:"seed,omitempty"`

	// detectorVersion is the version of the detector binary that trained it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	DetectorVersion string `json:"detectorVersion,omitempty"`

	// scoringRule is the rule a sequence model scores with; empty for other types.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ScoringRule string `json:"scoringRule,omitempty"`

	// normalization is the model's likelihood stage (Likelihood); empty for None.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Normalization string `json:"normalization,omitempty"`

	// scaleBy is Entity when the model scales each entity by its own statistics;
	// empty for one scaler.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ScaleBy string `json:"scaleBy,omitempty"`

	// seasonality is the Detector's spec.model.seasonality as trained (Day, Week or
	// Auto); empty for None.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Seasonality string `json:"seasonality,omitempty"`

	// seasonalPeriod is the period whose hours the model's scores follow (Day or
	// Week); empty when every hour is scored alike.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	SeasonalPeriod string `json:"seasonalPeriod,omitempty"`

	// trainedAt is when training finished.
	// +optional
	TrainedAt *metav1.Time `json:"trainedAt,omitempty"`
}

// ModelVersionData is the data a model saw.
type ModelVersionData struct {
	// source is the DataSource kind: csv, images or prometheus.
	// +required
	// +kubebuilder:validation:Enum=csv;images;prometheus
	Source string `json:"source"`
	// dataSource names the DataSource.
	// +required
	// +kubebuilder:validation:MaxLength=253
	DataSource string `json:"dataSource"`
	// location of a file source (URL, or PVC and path); empty for a ConfigMap.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Location string `json:"location,omitempty"`
	// digest of the data: the ConfigMap value's sha256 for an inline CSV, the rows'
	// sha256 for Prometheus; empty when kadet does not know it (a URL or PVC file).
	// +optional
	// +kubebuilder:validation:MaxLength=80
	Digest string `json:"digest,omitempty"`
	// queries of a Prometheus source, as name=PromQL.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Queries []string `json:"queries,omitempty"`
	// start of the Prometheus range read.
	// +optional
	Start *metav1.Time `json:"start,omitempty"`
	// end of the Prometheus range read.
	// +optional
	End *metav1.Time `json:"end,omitempty"`
	// rows read from Prometheus, over all entities.
	// +optional
	Rows int64 `json:"rows,omitempty"`
	// entities of those rows.
	// +optional
	Entities int32 `json:"entities,omitempty"`
}

// ModelVersionStatus is where the model stands.
type ModelVersionStatus struct {
	// phase is Serving, Available, Shadow, Candidate, Rejected or Retired.
	// +optional
	Phase ModelVersionPhase `json:"phase,omitempty"`
	// servedSince is when the scoring pods last started serving this version.
	// +optional
	ServedSince *metav1.Time `json:"servedSince,omitempty"`
	// message is the promotion gate's word on it, for versions that ran in shadow.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// backtest is what the version flagged on the history held out of its training,
	// scored as a watching pod would score it.
	// +optional
	Backtest *BacktestSummary `json:"backtest,omitempty"`
}

// ModelVersion is one trained model of a Detector, created by kadet from the training
// result and owned by the Detector. List a Detector's history with
// `kubectl get modelversions -l anomaly.kadet.dev/detector=NAME`.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mv,categories=kadet
// +kubebuilder:printcolumn:name="Detector",type=string,JSONPath=`.spec.detector`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Threshold",type=number,JSONPath=`.spec.threshold`
// +kubebuilder:printcolumn:name="Loss",type=number,JSONPath=`.spec.metrics.loss`
// +kubebuilder:printcolumn:name="Episodes/Day",type=number,JSONPath=`.status.backtest.episodesPerDay`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ModelVersion struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec records the model; immutable.
	// +required
	Spec ModelVersionSpec `json:"spec"`

	// status says whether it is served.
	// +optional
	Status ModelVersionStatus `json:"status,omitempty"`
}

// ModelVersionList is a list of ModelVersions.
// +kubebuilder:object:root=true
type ModelVersionList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the ModelVersions.
	Items []ModelVersion `json:"items"`
}
