package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelType names a network architecture.
// +kubebuilder:validation:Enum=Autoencoder;MLPClassifier;ConvAutoencoder;LSTMAutoencoder
type ModelType string

const (
	// Autoencoder is a dense autoencoder scored by reconstruction error.
	Autoencoder ModelType = "Autoencoder"
	// MLPClassifier is a supervised classifier scored by anomaly probability; needs a label column.
	MLPClassifier ModelType = "MLPClassifier"
	// ConvAutoencoder is a convolutional autoencoder for images, or over sliding windows
	// of a multivariate series (convolving along time) when the data is rows.
	ConvAutoencoder ModelType = "ConvAutoencoder"
	// LSTMAutoencoder reconstructs sliding windows of a multivariate series.
	LSTMAutoencoder ModelType = "LSTMAutoencoder"
)

// Activation is a hidden layers' activation function.
// +kubebuilder:validation:Enum=ReLU;LeakyReLU;Tanh;Sigmoid
type Activation string

// Scaling is how features are rescaled before training and scoring.
// +kubebuilder:validation:Enum=Standardize;MinMax;None
type Scaling string

// ThresholdMethod is how the anomaly threshold is calibrated on training data.
// +kubebuilder:validation:Enum=Percentile;MeanStd;Fixed;Contamination;BestF1
type ThresholdMethod string

const (
	ThresholdPercentile    ThresholdMethod = "Percentile"
	ThresholdMeanStd       ThresholdMethod = "MeanStd"
	ThresholdFixed         ThresholdMethod = "Fixed"
	ThresholdContamination ThresholdMethod = "Contamination"
	ThresholdBestF1        ThresholdMethod = "BestF1"
)

// RetentionPolicy says what happens to the model volume when its Detector is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type RetentionPolicy string

const (
	// RetainModels keeps the PVC (and every model on it) after the Detector is deleted;
	// a Detector created again with the same name adopts it.
	RetainModels RetentionPolicy = "Retain"
	// DeleteModels lets the PVC be garbage-collected with the Detector.
	DeleteModels RetentionPolicy = "Delete"
)

// DetectorSpec declares an anomaly detector: its data, model, training, threshold and scoring.
type DetectorSpec struct {
	// DataSourceRef names a DataSource in the Detector's namespace.
	DataSourceRef LocalObjectReference `json:"dataSourceRef"`

	// Model is the network to train.
	Model ModelSpec `json:"model"`

	// +optional
	// +kubebuilder:default={}
	Preprocessing PreprocessingSpec `json:"preprocessing,omitempty"`

	// +optional
	// +kubebuilder:default={}
	Training TrainingSpec `json:"training,omitempty"`

	// +optional
	// +kubebuilder:default={method: Percentile}
	Threshold ThresholdSpec `json:"threshold,omitempty"`

	// +optional
	// +kubebuilder:default={}
	Scoring ScoringSpec `json:"scoring,omitempty"`

	// +optional
	// +kubebuilder:default={size: "1Gi", accessMode: ReadWriteOnce, retentionPolicy: Retain}
	Storage StorageSpec `json:"storage,omitempty"`

	// Suspend stops the controller from starting training or changing scoring; what
	// already runs is left alone.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ModelSpec describes the network. Fields that apply to one model type only are refused
// on the others.
// +kubebuilder:validation:XValidation:rule="!has(self.window) || self.type in ['LSTMAutoencoder', 'ConvAutoencoder']",message="window applies only to types LSTMAutoencoder and ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="!has(self.stride) || self.type in ['LSTMAutoencoder', 'ConvAutoencoder']",message="stride applies only to types LSTMAutoencoder and ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="self.type != 'ConvAutoencoder' || !has(self.window) || self.window % [1, 2, 4, 8, 16, 32, 64, 128, 256][has(self.channels) ? size(self.channels) : 2] == 0",message="a ConvAutoencoder's window must be divisible by 2 to the number of channels (4 for the default two): each conv block halves it"
// +kubebuilder:validation:XValidation:rule="!has(self.stride) || !has(self.window) || self.stride <= self.window",message="stride must not exceed window, or rows between windows would never be scored"
// +kubebuilder:validation:XValidation:rule="!has(self.channels) || self.type == 'ConvAutoencoder'",message="channels applies only to type ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="!has(self.kernelSize) || self.type == 'ConvAutoencoder'",message="kernelSize applies only to type ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="!has(self.latentSize) || self.type != 'MLPClassifier'",message="latentSize does not apply to type MLPClassifier"
type ModelSpec struct {
	// Type is the architecture.
	Type ModelType `json:"type"`

	// HiddenLayers are the widths of the encoder's hidden layers (mirrored by the decoder);
	// for LSTMAutoencoder, the LSTM hidden sizes.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65536
	HiddenLayers []int32 `json:"hiddenLayers,omitempty"`

	// LatentSize is the width of the bottleneck.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	LatentSize *int32 `json:"latentSize,omitempty"`

	// +optional
	// +kubebuilder:default=ReLU
	Activation Activation `json:"activation,omitempty"`

	// Window is the number of consecutive rows an LSTMAutoencoder, or a ConvAutoencoder
	// over rows of a series, reconstructs (default 32).
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=4096
	Window *int32 `json:"window,omitempty"`

	// Stride is the step between windows.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	Stride *int32 `json:"stride,omitempty"`

	// Channels are the ConvAutoencoder encoder's channel counts, one per conv block.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=1024
	Channels []int32 `json:"channels,omitempty"`

	// KernelSize is the ConvAutoencoder's kernel size: k x k over images, k rows over
	// windows of a series.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=15
	// +kubebuilder:validation:XValidation:rule="self % 2 == 1",message="kernelSize must be odd so the output keeps the input size"
	KernelSize *int32 `json:"kernelSize,omitempty"`
}

// PreprocessingSpec says how features are scaled; the scaler is fitted on training rows
// only and stored with the model.
type PreprocessingSpec struct {
	// +optional
	// +kubebuilder:default=Standardize
	Scaling Scaling `json:"scaling,omitempty"`
}

// TrainingSpec holds optimisation settings and the training pod's limits.
type TrainingSpec struct {
	// Epochs is how many passes over the training rows to make (fewer with early stopping).
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Epochs int32 `json:"epochs,omitempty"`

	// BatchSize is how many rows (or windows) each optimisation step sees.
	// +optional
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	BatchSize int32 `json:"batchSize,omitempty"`

	// LearningRate is Adam's step size.
	// +optional
	// +kubebuilder:default=0.001
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	LearningRate float64 `json:"learningRate,omitempty"`

	// ValidationSplit is the fraction of training rows held out for early stopping and
	// threshold calibration.
	// +optional
	// +kubebuilder:default=0.1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=0.5
	ValidationSplit *float64 `json:"validationSplit,omitempty"`

	// Seed makes training repeatable: the same seed, data and machine give the same weights.
	// +optional
	// +kubebuilder:default=1
	Seed *int64 `json:"seed,omitempty"`

	// +optional
	EarlyStopping *EarlyStoppingSpec `json:"earlyStopping,omitempty"`

	// Resources of the training container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// ActiveDeadlineSeconds bounds the training Job's run time.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// BackoffLimit is how many times a failed training pod is retried before the
	// Detector is marked Failed.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
}

// EarlyStoppingSpec stops training when the validation loss stops improving.
type EarlyStoppingSpec struct {
	// Patience is how many epochs without improvement are tolerated.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Patience int32 `json:"patience"`

	// MinDelta is the smallest decrease of the validation loss that counts as improvement.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinDelta float64 `json:"minDelta,omitempty"`
}

// ThresholdSpec calibrates the score above which a record is an anomaly. Each method
// takes its own parameter and refuses the others'.
// +kubebuilder:validation:XValidation:rule="!has(self.percentile) || self.method == 'Percentile'",message="percentile applies only to method Percentile"
// +kubebuilder:validation:XValidation:rule="!has(self.stdDevs) || self.method == 'MeanStd'",message="stdDevs applies only to method MeanStd"
// +kubebuilder:validation:XValidation:rule="!has(self.contamination) || self.method == 'Contamination'",message="contamination applies only to method Contamination"
// +kubebuilder:validation:XValidation:rule="has(self.value) == (self.method == 'Fixed')",message="value is required by method Fixed and applies to it only"
type ThresholdSpec struct {
	// +optional
	// +kubebuilder:default=Percentile
	Method ThresholdMethod `json:"method,omitempty"`

	// Percentile of the held-out training scores (default 99).
	// +optional
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:ExclusiveMaximum=true
	// +kubebuilder:validation:Maximum=100
	Percentile *float64 `json:"percentile,omitempty"`

	// StdDevs is k in mean + k * stddev of the held-out training scores (default 3).
	// +optional
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	StdDevs *float64 `json:"stdDevs,omitempty"`

	// Value is the fixed raw-score threshold.
	// +optional
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	Value *float64 `json:"value,omitempty"`

	// Contamination is the expected fraction of anomalies in the training data (default 0.01).
	// +optional
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=0.5
	Contamination *float64 `json:"contamination,omitempty"`
}

// ScoringSpec shapes the scoring Deployment and its Service.
type ScoringSpec struct {
	// Replicas of the scoring Deployment; 0 trains without serving.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Replicas *int32 `json:"replicas,omitempty"`

	// Port the scoring server listens on and the Service exposes.
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// Resources of the scoring container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// DefaultModelStorage is the CRD's default model volume size, for objects that did not
// pass through the API server.
var DefaultModelStorage = resource.MustParse("1Gi")

// StorageSpec is the PersistentVolumeClaim that holds the Detector's models.
// +kubebuilder:validation:XValidation:rule="self.accessMode == oldSelf.accessMode",message="accessMode is immutable"
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="storageClassName is immutable"
// +kubebuilder:validation:XValidation:rule="!has(self.size) || !has(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",message="size can grow but not shrink"
type StorageSpec struct {
	// Size of the model volume; it can grow but not shrink.
	// +optional
	// +kubebuilder:default="1Gi"
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the PVC; empty uses the cluster's default class.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`

	// AccessMode: ReadWriteOnce keeps training and scoring pods on the volume's node;
	// ReadWriteMany lets them spread over nodes.
	// +optional
	// +kubebuilder:default=ReadWriteOnce
	// +kubebuilder:validation:Enum=ReadWriteOnce;ReadWriteMany
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`

	// RetentionPolicy: Retain keeps the models after the Detector is deleted.
	// +optional
	// +kubebuilder:default=Retain
	RetentionPolicy RetentionPolicy `json:"retentionPolicy,omitempty"`
}

// Phase summarises where a Detector is in its life.
type Phase string

const (
	PhasePending   Phase = "Pending"
	PhaseTraining  Phase = "Training"
	PhaseServing   Phase = "Serving"
	PhaseFailed    Phase = "Failed"
	PhaseSuspended Phase = "Suspended"
)

// DetectorStatus is the observed state of a Detector.
type DetectorStatus struct {
	// ObservedGeneration is the last generation reconciled to completion or stall.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, DataSourceReady, Trained, Serving.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Model is the newest trained model.
	// +optional
	Model *ModelStatus `json:"model,omitempty"`

	// Training is the current or last training run.
	// +optional
	Training *TrainingStatus `json:"training,omitempty"`

	// Endpoint is the scoring Service's in-cluster URL.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
}

// ModelStatus describes a trained model.
type ModelStatus struct {
	// Version names the model file on the model volume.
	Version string `json:"version"`
	// Digest is the model file's sha256.
	Digest string `json:"digest"`
	// Threshold is the calibrated raw-score threshold.
	Threshold float64 `json:"threshold"`
	// SpecHash is the hash of the training spec that produced this model.
	SpecHash string `json:"specHash"`
	// TrainedAt is when training finished.
	// +optional
	TrainedAt *metav1.Time `json:"trainedAt,omitempty"`
	// Metrics reported by training, e.g. loss, valLoss, samplesPerSecond.
	// +optional
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// TrainingStatus is the progress of a training Job.
type TrainingStatus struct {
	// Job is the training Job's name.
	Job string `json:"job"`
	// SpecHash is the hash of the training spec the Job runs.
	SpecHash string `json:"specHash"`
	// Epoch is the last epoch the training pod reported.
	// +optional
	Epoch int32 `json:"epoch,omitempty"`
	// Epochs is how many epochs the run will make at most.
	// +optional
	Epochs int32 `json:"epochs,omitempty"`
	// Loss is the training loss of the last reported epoch.
	// +optional
	Loss *float64 `json:"loss,omitempty"`
	// ValLoss is the validation loss of the last reported epoch.
	// +optional
	ValLoss *float64 `json:"valLoss,omitempty"`
	// StartedAt is when the training Job started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// CompletedAt is when the training Job completed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// Detector trains a deep-learning anomaly detector on a DataSource and serves it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=det,categories=kadet
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 40",message="metadata.name must be at most 40 characters: the Job, Deployment and Service names are built from it"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label starting with a letter: it names the Detector's Service"
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model.type`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.model.version`
// +kubebuilder:printcolumn:name="Threshold",type=number,JSONPath=`.status.model.threshold`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Epoch",type=integer,JSONPath=`.status.training.epoch`,priority=1
// +kubebuilder:printcolumn:name="Loss",type=number,JSONPath=`.status.training.loss`,priority=1
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
type Detector struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   DetectorSpec   `json:"spec"`
	Status DetectorStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (in *Detector) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Detector) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// +kubebuilder:object:root=true

// DetectorList is a list of Detectors.
type DetectorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Detector `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Detector{}, &DetectorList{})
}
