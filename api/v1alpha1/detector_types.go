package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
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

// Threshold methods.
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
// +kubebuilder:validation:XValidation:rule="!has(self.scoring) || !has(self.scoring.normalization) || self.scoring.normalization.method == 'None' || self.model.type in ['LSTMAutoencoder', 'ConvAutoencoder']",message="scoring.normalization Likelihood applies only to model types LSTMAutoencoder and ConvAutoencoder (over rows of a series)"
type DetectorSpec struct {
	// dataSourceRef names a DataSource in the Detector's namespace.
	// +required
	DataSourceRef LocalObjectReference `json:"dataSourceRef"`

	// model is the network to train.
	// +required
	Model ModelSpec `json:"model"`

	// preprocessing is how features are scaled.
	// +optional
	// +kubebuilder:default={}
	Preprocessing PreprocessingSpec `json:"preprocessing,omitempty"`

	// training holds the optimisation settings and the training pod's limits.
	// +optional
	// +kubebuilder:default={}
	Training TrainingSpec `json:"training,omitempty"`

	// threshold is how the anomaly threshold is calibrated on held-out training data.
	// +optional
	// +kubebuilder:default={method: Percentile}
	Threshold ThresholdSpec `json:"threshold,omitempty"`

	// scoring shapes the Deployment and Service that serve the model.
	// +optional
	// +kubebuilder:default={}
	Scoring ScoringSpec `json:"scoring,omitempty"`

	// storage is the volume that keeps every model version.
	// +optional
	// +kubebuilder:default={size: "1Gi", accessMode: ReadWriteOnce, retentionPolicy: Retain}
	Storage StorageSpec `json:"storage,omitempty"`

	// promotion decides how a newly trained model version comes to serve: at once, or
	// after it has scored live traffic in shadow beside the served one.
	// +optional
	Promotion PromotionSpec `json:"promotion,omitempty"`

	// retraining starts training runs on what the scoring pods observe.
	// +optional
	Retraining RetrainingSpec `json:"retraining,omitempty"`

	// backtest is the newest history each new model version of a Prometheus DataSource
	// is kept from and scored on after training, as a watching pod would score it:
	// what it would have flagged goes into the ModelVersion's status.backtest. Default:
	// the newest 20% of the DataSource's range.
	// +optional
	Backtest *BacktestSpec `json:"backtest,omitempty"`

	// alerting is the PrometheusRule kadet generates for a Detector on a Prometheus
	// DataSource, with alert KadetAnomaly, and the PodMonitor that scrapes the scoring
	// pods (both when the prometheus-operator CRDs exist).
	// +optional
	Alerting AlertingSpec `json:"alerting,omitempty"`

	// suspend stops the controller from starting training or changing scoring; what
	// already runs is left alone.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// BacktestSpec says which newest history a new model version is backtested on: a share
// of the DataSource's range held out of training, or a range read past it.
// +kubebuilder:validation:XValidation:rule="!(has(self.holdOutPercent) && has(self.range))",message="backtest: give holdOutPercent or range, not both"
type BacktestSpec struct {
	// holdOutPercent is the share of the DataSource's range, its newest, that training
	// leaves out and the backtest scores: 1 to 50, or 0 for no backtest (default 20).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=50
	HoldOutPercent *int32 `json:"holdOutPercent,omitempty"`

	// range is how much of the newest history the backtest scores, read past the
	// DataSource's range: training reads the DataSource's range ending that much
	// earlier, so it keeps all of it.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(s|m|h))+$`
	Range *metav1.Duration `json:"range,omitempty"`
}

// BacktestSummary is what a model version flagged on the history it was backtested on.
type BacktestSummary struct {
	// skipped says why no backtest ran (training would have had too few rows left).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Skipped string `json:"skipped,omitempty"`
	// start is the time of the first row scored.
	// +optional
	Start *metav1.Time `json:"start,omitempty"`
	// end is the time of the last row scored.
	// +optional
	End *metav1.Time `json:"end,omitempty"`
	// rows scored, over all entities.
	// +optional
	Rows int64 `json:"rows,omitempty"`
	// entities scored.
	// +optional
	Entities int32 `json:"entities,omitempty"`
	// anomalousRows counts the rows scored above 1.
	// +optional
	AnomalousRows int64 `json:"anomalousRows,omitempty"`
	// episodes counts the runs of an entity's anomalous rows, merged across gaps up to
	// mergeGap.
	// +optional
	Episodes int32 `json:"episodes,omitempty"`
	// episodesPerDay is episodes over the span from start to end, in days.
	// +optional
	EpisodesPerDay float64 `json:"episodesPerDay,omitempty"`
	// mergeGap is the alert's for when the version trained: anomalous rows this close
	// make one episode.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	MergeGap string `json:"mergeGap,omitempty"`
	// largest are the episodes with the highest peaks, highest first.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	Largest []BacktestEpisode `json:"largest,omitempty"`
}

// BacktestRunStatus is a backtest run on request, by annotation.
type BacktestRunStatus struct {
	// request is the annotation's value: the range backtested, ending when the Job ran.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Request string `json:"request"`
	// version is the model version backtested: the one served when it was asked.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version,omitempty"`
	// job is the backtest Job's name.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Job string `json:"job,omitempty"`
	// completedAt is when its figures reached the ModelVersion's status.backtest.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// message says why the run did not start or has no figures.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// BacktestEpisode is one episode a backtest found.
type BacktestEpisode struct {
	// entity is the episode's entity (its entity labels); empty for a single series.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Entity string `json:"entity,omitempty"`
	// start is the time of its first anomalous row.
	// +required
	Start metav1.Time `json:"start"`
	// end is the time of its last anomalous row.
	// +required
	End metav1.Time `json:"end"`
	// rows counts its anomalous rows.
	// +required
	Rows int64 `json:"rows"`
	// peak is its highest score (1 is the threshold).
	// +required
	Peak float64 `json:"peak"`
}

// PromotionPolicy is how a new model version comes to serve.
// +kubebuilder:validation:Enum=Immediate;Automatic;Manual
type PromotionPolicy string

// Promotion policies.
const (
	// PromoteImmediate serves every new version as soon as it is trained.
	PromoteImmediate PromotionPolicy = "Immediate"
	// PromoteAutomatic runs a new version in shadow, then serves it if the gate passes
	// and marks it Rejected if not.
	PromoteAutomatic PromotionPolicy = "Automatic"
	// PromoteManual runs a new version in shadow, then marks it Candidate (or Rejected);
	// people promote it by pinning it in scoring.modelVersion.
	PromoteManual PromotionPolicy = "Manual"
)

// PromotionSpec is how new model versions come to serve.
// +kubebuilder:validation:XValidation:rule="!has(self.policy) || self.policy != 'Immediate' || (!has(self.shadowPeriod) && !has(self.shadowRows) && !has(self.maxAnomalyRateRatio) && !has(self.metricTolerance))",message="promotion.shadowPeriod, shadowRows, maxAnomalyRateRatio and metricTolerance apply only to policies Automatic and Manual"
type PromotionSpec struct {
	// policy is Immediate (the default: a new version serves once trained), Automatic
	// (it runs in shadow, then serves if the gate passes) or Manual (it runs in shadow,
	// then waits as a Candidate until pinned). The first model of a Detector serves at
	// once: there is nothing to compare it with.
	// +optional
	// +kubebuilder:default=Immediate
	Policy PromotionPolicy `json:"policy,omitempty"`

	// shadowPeriod is how long a new version scores in shadow before the gate decides
	// (default 10m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	ShadowPeriod *metav1.Duration `json:"shadowPeriod,omitempty"`

	// shadowRows has the gate decide once the new version has scored this many rows in
	// shadow, instead of after shadowPeriod.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ShadowRows *int64 `json:"shadowRows,omitempty"`

	// maxAnomalyRateRatio bounds the new version's anomaly rate on live rows in shadow:
	// at most this many times the rate its calibration expects (default 2), beyond what
	// chance explains on that many rows.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= 1.0 && self <= 1000.0",message="promotion.maxAnomalyRateRatio must be from 1 to 1000, e.g. 2"
	MaxAnomalyRateRatio *float64 `json:"maxAnomalyRateRatio,omitempty"`

	// metricTolerance is how much lower than the served model's the new version's F1
	// and AUROC on labelled feedback (POST /v1/feedback) may be (default 0.02). Checked
	// when the feedback holds at least 5 marks of each label.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= 0.0 && self <= 1.0",message="promotion.metricTolerance must be from 0 to 1, e.g. 0.02"
	MetricTolerance *float64 `json:"metricTolerance,omitempty"`
}

// RetrainingSpec holds the policies that retrain on what the scoring pods observe
// (spec.training.schedule and maxModelAge retrain on time).
type RetrainingSpec struct {
	// onDrift has the scoring pods measure how far the rows they score have moved from
	// the served model's training data, sets the Drifted condition, and retrains when
	// the drift lasts.
	// +optional
	OnDrift *DriftPolicy `json:"onDrift,omitempty"`
}

// DriftAction is what a lasting drift does.
// +kubebuilder:validation:Enum=Retrain;Report
type DriftAction string

// Drift actions.
const (
	DriftRetrain DriftAction = "Retrain"
	DriftReport  DriftAction = "Report"
)

// DriftPolicy is when rows count as drifted and what follows.
type DriftPolicy struct {
	// action is Retrain (start one training run when the drift has lasted for the
	// for duration, at most one per minInterval) or Report (only the Drifted condition,
	// events and metrics).
	// +optional
	// +kubebuilder:default=Retrain
	Action DriftAction `json:"action,omitempty"`

	// featurePSI is the population stability index, over the window, at which a
	// feature counts as drifted (default 0.25; below 0.1 is usually read as stable).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 10.0",message="retraining.onDrift.featurePSI must be above 0 and at most 10, e.g. 0.25"
	FeaturePSI *float64 `json:"featurePSI,omitempty"`

	// scoreKS is the Kolmogorov-Smirnov statistic of the window's scores against the
	// calibration scores at which the scores count as drifted (default 0.3).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 1.0",message="retraining.onDrift.scoreKS must be above 0 and at most 1, e.g. 0.3"
	ScoreKS *float64 `json:"scoreKS,omitempty"`

	// window is how many of the latest rows each scoring pod measures (default 1000).
	// Drift is judged once a pod has scored that many with the served version.
	// +optional
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=100000
	Window *int32 `json:"window,omitempty"`

	// for is how long the drift must last before a retraining starts (default 10m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	For *metav1.Duration `json:"for,omitempty"`

	// minInterval is the least time between two retrainings started by drift (default
	// 1h), so a lasting shift the new model does not fix gives one run per interval,
	// not a loop.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	MinInterval *metav1.Duration `json:"minInterval,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be the name of a Kubernetes object: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +required
	Name string `json:"name"`
}

// ModelSpec describes the network. Fields that apply to one model type only are refused
// on the others.
// +kubebuilder:validation:XValidation:rule="!has(self.window) || self.type in ['LSTMAutoencoder', 'ConvAutoencoder']",message="window applies only to types LSTMAutoencoder and ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="!has(self.stride) || self.type in ['LSTMAutoencoder', 'ConvAutoencoder']",message="stride applies only to types LSTMAutoencoder and ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="self.type != 'ConvAutoencoder' || !has(self.window) || self.window % [1, 2, 4, 8, 16, 32, 64, 128, 256][has(self.channels) ? size(self.channels) : 2] == 0",message="a ConvAutoencoder's window must be divisible by 2 to the number of channels (4 for the default two): each conv block halves it"
// +kubebuilder:validation:XValidation:rule="!has(self.stride) || self.stride <= (has(self.window) ? self.window : 32)",message="stride must not exceed window (32 when not given), or rows between windows would never be scored"
// +kubebuilder:validation:XValidation:rule="!has(self.kernelSize) || !has(self.window) || self.kernelSize <= self.window",message="kernelSize must not exceed window: a kernel wider than the window sees only padding at its edges"
// +kubebuilder:validation:XValidation:rule="!has(self.hiddenLayers) || self.type != 'ConvAutoencoder'",message="hiddenLayers does not apply to type ConvAutoencoder: its sizes are channels and latentSize"
// +kubebuilder:validation:XValidation:rule="!has(self.hiddenLayers) || self.type != 'LSTMAutoencoder' || size(self.hiddenLayers) == 1",message="an LSTMAutoencoder has one recurrent layer: give hiddenLayers exactly one size"
// +kubebuilder:validation:XValidation:rule="!has(self.hiddenLayers) || self.type != 'LSTMAutoencoder' || self.hiddenLayers[0] <= 4096",message="an LSTMAutoencoder's hidden size must be at most 4096: its 4 x size x size recurrent weights would not fit in memory"
// +kubebuilder:validation:XValidation:rule="!has(self.hiddenLayers) || !has(self.latentSize) || self.hiddenLayers[size(self.hiddenLayers) - 1] * self.latentSize <= 67108864",message="the last hidden layer times latentSize must be at most 67,108,864 weights (e.g. 8192 x 8192): larger layers would not fit in memory"
// +kubebuilder:validation:XValidation:rule="!has(self.scoringRule) || self.type in ['LSTMAutoencoder', 'ConvAutoencoder']",message="scoringRule applies only to types LSTMAutoencoder and ConvAutoencoder (over rows of a series)"
// +kubebuilder:validation:XValidation:rule="!has(self.stuckValues) || self.type in ['LSTMAutoencoder', 'ConvAutoencoder']",message="stuckValues applies only to types LSTMAutoencoder and ConvAutoencoder (over rows of a series)"
// +kubebuilder:validation:XValidation:rule="!has(self.channels) || self.type == 'ConvAutoencoder'",message="channels applies only to type ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="!has(self.kernelSize) || self.type == 'ConvAutoencoder'",message="kernelSize applies only to type ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="!has(self.latentSize) || self.type != 'MLPClassifier'",message="latentSize does not apply to type MLPClassifier"
// +kubebuilder:validation:XValidation:rule="!has(self.resampling) || self.type == 'ConvAutoencoder'",message="resampling applies only to type ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="!has(self.dropout) || self.type == 'ConvAutoencoder'",message="dropout applies only to type ConvAutoencoder"
// +kubebuilder:validation:XValidation:rule="!has(self.seasonality) || self.seasonality in ['None', 'Auto'] || self.type in ['LSTMAutoencoder', 'ConvAutoencoder']",message="seasonality Day or Week applies only to types LSTMAutoencoder and ConvAutoencoder (over rows of a series)"
// +kubebuilder:validation:XValidation:rule="!has(self.latentSize) || !has(self.resampling) || self.resampling != 'Strided'",message="latentSize does not apply to resampling Strided: a strided ConvAutoencoder has no dense layer"
type ModelSpec struct {
	// type is the architecture.
	// +required
	Type ModelType `json:"type"`

	// hiddenLayers are the widths of the encoder's hidden layers (mirrored by the decoder);
	// for LSTMAutoencoder, the LSTM hidden sizes.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65536
	// +kubebuilder:validation:XValidation:rule="[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14].all(i, i + 1 >= size(self) || self[i] * self[i + 1] <= 67108864)",message="two neighbouring hiddenLayers may hold at most 67,108,864 weights between them (e.g. 8192 x 8192): larger layers would not fit in memory"
	// +listType=atomic
	HiddenLayers []int32 `json:"hiddenLayers,omitempty"`

	// latentSize is the width of the bottleneck.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	LatentSize *int32 `json:"latentSize,omitempty"`

	// activation is the hidden layers' activation function.
	// +optional
	// +kubebuilder:default=ReLU
	Activation Activation `json:"activation,omitempty"`

	// window is the number of consecutive rows an LSTMAutoencoder, or a ConvAutoencoder
	// over rows of a series, reconstructs (default 32).
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=4096
	Window *int32 `json:"window,omitempty"`

	// stride is the step between windows.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	Stride *int32 `json:"stride,omitempty"`

	// channels are the ConvAutoencoder encoder's channel counts, one per conv block.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=1024
	// +listType=atomic
	Channels []int32 `json:"channels,omitempty"`

	// kernelSize is the ConvAutoencoder's kernel size: k x k over images, k rows over
	// windows of a series.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=15
	// +kubebuilder:validation:XValidation:rule="self % 2 == 1",message="kernelSize must be odd so the output keeps the input size"
	KernelSize *int32 `json:"kernelSize,omitempty"`

	// scoringRule is how a sequence model scores a row from the windows that hold it:
	// Causal (the default) takes its error in the window that ends at it, so a score
	// never waits for, or changes with, rows that come after; AllWindows averages the
	// row's error over every window holding it, later rows included.
	// +optional
	// +kubebuilder:validation:Enum=AllWindows;Causal
	ScoringRule string `json:"scoringRule,omitempty"`

	// stuckValues is what a sequence model makes of a value repeated for longer than
	// its feature ever repeated one in the training data (twice its longest run
	// there, at least 8 rows, and checked only when that fits in the window): Flag
	// (the default) scores the row as an anomaly and names the feature, Ignore leaves
	// it to the reconstruction error, which hardly moves on a flat line.
	// +optional
	// +kubebuilder:validation:Enum=Flag;Ignore
	StuckValues string `json:"stuckValues,omitempty"`

	// resampling is how a ConvAutoencoder shrinks and grows its input: Pooling (max
	// pooling after each conv block, a dense layer of latentSize between encoder and
	// decoder, upsampling before each decoder block) or Strided (stride-2 convolutions
	// down and stride-2 transposed convolutions up, convolutional throughout, as the
	// published SKAB Conv-AE is).
	// +optional
	// +kubebuilder:validation:Enum=Pooling;Strided
	Resampling ConvResampling `json:"resampling,omitempty"`

	// dropout is the share of a ConvAutoencoder's activations set to zero at random at
	// each training step, after every conv block but the last of the encoder and of the
	// decoder; scoring keeps them all.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self <= 0.9",message="model.dropout must be a share from 0 to 0.9"
	Dropout *float64 `json:"dropout,omitempty"`

	// seasonality is how a sequence model's scores follow the clock: Day divides each
	// row's raw score by its UTC hour of the day's typical score on the training rows,
	// Week by its hour of the week's, so the noisy daily peak does not set the one
	// threshold that quiet hours are judged by; None scores every hour alike. Auto
	// (the default of a new Detector) is Day when the training rows, less the
	// validation split, hold 6 rows in every hour of the day, else None;
	// status.model.seasonalPeriod says which. Week needs weeks of history to pay
	// (docs/metrics.md), so only a spec asks for it. Day and Week need timestamps in
	// every row and refuse training rows that miss an hour. A Detector that has a
	// model keeps what its model has.
	// +optional
	// +kubebuilder:validation:Enum=None;Day;Week;Auto
	Seasonality Seasonality `json:"seasonality,omitempty"`
}

// Seasonality is how a sequence model's scores follow the time of day or week.
type Seasonality string

// Seasonalities.
const (
	SeasonalityNone Seasonality = "None"
	SeasonalityDay  Seasonality = "Day"
	SeasonalityWeek Seasonality = "Week"
	SeasonalityAuto Seasonality = "Auto"
)

// ConvResampling is how a ConvAutoencoder shrinks and grows its input.
type ConvResampling string

// Resampling of a ConvAutoencoder.
const (
	ConvPooling ConvResampling = "Pooling"
	ConvStrided ConvResampling = "Strided"
)

// PreprocessingSpec says how features are scaled; the scaler is fitted on training rows
// only and stored with the model.
type PreprocessingSpec struct {
	// scaling rescales every feature: Standardize (zero mean, unit variance), MinMax
	// (to [0, 1]) or None.
	// +optional
	// +kubebuilder:default=Standardize
	Scaling Scaling `json:"scaling,omitempty"`

	// scaleBy is whose statistics scale a row: Entity, each entity's own (a service at
	// 10 ms and one at 800 ms alike; an entity not seen in training is scaled by its
	// own history, counted in status.watch.entitiesScaledFromHistory), or Model, one
	// scaler for every entity. Entity needs a DataSource whose rows name entities
	// (prometheus.entityLabels or csv.entityColumn). Unset: Entity when the rows name
	// entities, Model otherwise; a Detector that has a model keeps what its model has.
	// +optional
	ScaleBy ScaleBy `json:"scaleBy,omitempty"`
}

// ScaleBy is whose statistics scale a row: its entity's or the model's.
// +kubebuilder:validation:Enum=Model;Entity
type ScaleBy string

// Scaling scopes.
const (
	ScaleByModel  ScaleBy = "Model"
	ScaleByEntity ScaleBy = "Entity"
)

// TrainingSpec holds optimisation settings and the training pod's limits.
// +kubebuilder:validation:XValidation:rule="!has(self.earlyStopping) || !has(self.validationSplit) || self.validationSplit > 0.0",message="earlyStopping watches the validation loss: it needs validationSplit above 0"
type TrainingSpec struct {
	// leaveOutFlagged leaves out of the training rows, when a Detector retrains (a
	// schedule, drift, a spec change), what the model in service flags and what feedback
	// marks anomalous, each with a window either side: a version that learnt an
	// incident as normal would not alert on the next one like it. An entity of which
	// more than a quarter is flagged keeps every row (its regime changed). The rows
	// left out are in the ModelVersion's metrics (leftOutRows, leftOutEpisodes).
	// Unset means true.
	// +optional
	LeaveOutFlagged *bool `json:"leaveOutFlagged,omitempty"`

	// epochs is how many passes over the training rows to make (fewer with early stopping).
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Epochs int32 `json:"epochs,omitempty"`

	// batchSize is how many rows (or windows) each optimisation step sees.
	// +optional
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	BatchSize int32 `json:"batchSize,omitempty"`

	// learningRate is Adam's step size.
	// +optional
	// +kubebuilder:default=0.001
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	LearningRate float64 `json:"learningRate,omitempty"`

	// validationSplit is the fraction of training rows held out for early stopping and
	// threshold calibration.
	// +optional
	// +kubebuilder:default=0.1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self <= 0.5",message="training.validationSplit must be a fraction of the rows from 0 to 0.5, e.g. 0.1"
	ValidationSplit *float64 `json:"validationSplit,omitempty"`

	// seed makes training repeatable: the same seed, data and machine give the same weights.
	// +optional
	// +kubebuilder:default=1
	Seed *int64 `json:"seed,omitempty"`

	// earlyStopping stops training when the validation loss stops improving.
	// +optional
	EarlyStopping *EarlyStoppingSpec `json:"earlyStopping,omitempty"`

	// resources of the training container.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.requests) || !has(self.limits) || ['cpu', 'memory', 'ephemeral-storage'].all(k, !(k in self.requests) || !(k in self.limits) || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",message="resources.requests of cpu, memory and ephemeral-storage must not exceed resources.limits"
	// +kubebuilder:validation:XValidation:rule="['memory'].all(k, !has(self.requests) || !(k in self.requests) || quantity(string(self.requests[k])).compareTo(quantity('1Mi')) >= 0)",message="memory is a number of bytes: a request under 1Mi (such as 512) is missing its unit; write 512Mi"
	// +kubebuilder:validation:XValidation:rule="['memory'].all(k, !has(self.limits) || !(k in self.limits) || quantity(string(self.limits[k])).compareTo(quantity('1Mi')) >= 0)",message="memory is a number of bytes: a limit under 1Mi (such as 512) is missing its unit; write 512Mi"
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// activeDeadlineSeconds bounds the training Job's run time.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// backoffLimit is how many times a failed training pod is retried before the
	// Detector is marked Failed.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// schedule retrains on a cron schedule (five fields, or @daily, @hourly, @every 6h;
	// parsed by robfig/cron). Ticks missed while kadet was down give one catch-up run.
	// Each run of a Prometheus-backed Detector reads the newest range.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.startsWith('@') || self.split(' ').filter(f, f != '').size() == 5",message="training.schedule must be five cron fields (minute hour day-of-month month day-of-week) or a descriptor such as @daily or @every 6h"
	Schedule string `json:"schedule,omitempty"`

	// timeZone of the schedule, an IANA name such as Europe/Berlin (default UTC).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`

	// maxModelAge retrains when the newest model is older than this.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	MaxModelAge *metav1.Duration `json:"maxModelAge,omitempty"`
}

// EarlyStoppingSpec stops training when the validation loss stops improving.
type EarlyStoppingSpec struct {
	// patience is how many epochs without improvement are tolerated.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +required
	Patience int32 `json:"patience"`

	// minDelta is the smallest decrease of the validation loss that counts as improvement.
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
	// method is how the threshold is chosen; each method takes its own parameter.
	// +optional
	// +kubebuilder:default=Percentile
	Method ThresholdMethod `json:"method,omitempty"`

	// percentile of the held-out training scores (default 99; 99.99 on a Prometheus
	// DataSource, where every alarm pages someone). When fewer than 10 scores lie above
	// it, it is extrapolated from a generalised Pareto fit of their tail.
	// +optional
	// +kubebuilder:validation:ExclusiveMaximum=true
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:validation:XValidation:rule="self >= 1",message="threshold.percentile is a percentage from 1 to 100, not a fraction: write 99 for the 99th percentile"
	Percentile *float64 `json:"percentile,omitempty"`

	// stdDevs is k in mean + k * stddev of the held-out training scores (default 3).
	// +optional
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	StdDevs *float64 `json:"stdDevs,omitempty"`

	// value is the fixed raw-score threshold.
	// +optional
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	Value *float64 `json:"value,omitempty"`

	// contamination is the expected fraction of anomalies in the training data (default 0.01).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 0.5",message="threshold.contamination must be a fraction above 0 and at most 0.5, e.g. 0.01"
	Contamination *float64 `json:"contamination,omitempty"`
}

// ScoringSpec shapes the scoring Deployment and its Service.
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || duration(self.interval) >= duration('1s')",message="scoring.interval must be at least 1s"
type ScoringSpec struct {
	// replicas of the scoring Deployment; 0 trains without serving.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Replicas *int32 `json:"replicas,omitempty"`

	// port the scoring server listens on and the Service exposes.
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// resources of the scoring container.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.requests) || !has(self.limits) || ['cpu', 'memory', 'ephemeral-storage'].all(k, !(k in self.requests) || !(k in self.limits) || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",message="resources.requests of cpu, memory and ephemeral-storage must not exceed resources.limits"
	// +kubebuilder:validation:XValidation:rule="['memory'].all(k, !has(self.requests) || !(k in self.requests) || quantity(string(self.requests[k])).compareTo(quantity('1Mi')) >= 0)",message="memory is a number of bytes: a request under 1Mi (such as 512) is missing its unit; write 512Mi"
	// +kubebuilder:validation:XValidation:rule="['memory'].all(k, !has(self.limits) || !(k in self.limits) || quantity(string(self.limits[k])).compareTo(quantity('1Mi')) >= 0)",message="memory is a number of bytes: a limit under 1Mi (such as 512) is missing its unit; write 512Mi"
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// interval between two scorings of the newest rows of a Detector on a Prometheus
	// DataSource (at least 1s; default the DataSource's step).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	Interval *metav1.Duration `json:"interval,omitempty"`

	// modelVersion pins the served model version (a ModelVersion's spec.version): set
	// it to an older one to roll back. Empty serves the newest successful version.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ModelVersion string `json:"modelVersion,omitempty"`

	// delay shifts the end of each watch query back, for stores where samples arrive
	// late (remote-write pipelines); default 0.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	Delay *metav1.Duration `json:"delay,omitempty"`

	// normalization turns a sequence model's scores into anomaly likelihoods per
	// entity, so that 1 means the same on every series: Likelihood, or None (the
	// network's score, raw / threshold). Default Likelihood for an LSTMAutoencoder or
	// ConvAutoencoder on a Prometheus DataSource, None otherwise; a Detector whose spec
	// leaves it out and that has a model keeps what its model has
	// (status.model.normalization). A change retrains.
	// +optional
	Normalization *ScoringNormalization `json:"normalization,omitempty"`

	// networkPolicy is the NetworkPolicy <detector>-scoring that admits callers to the
	// scoring pods' port. Left out, it admits the pods of the Detector's namespace and
	// of the namespaces the manager names (--scoring-peer-namespaces; the chart's
	// scoringPeerNamespaces, by default monitoring, where Prometheus scrapes /metrics
	// from). from lists the peers instead; enabled: false creates none, so that every
	// pod of the cluster may call them.
	// +optional
	NetworkPolicy *ScoringNetworkPolicy `json:"networkPolicy,omitempty"`
}

// ScoringNormalization is the likelihood stage after a sequence model's network.
// +kubebuilder:validation:XValidation:rule="self.method == 'Likelihood' || (!has(self.longWindow) && !has(self.shortWindow))",message="normalization.longWindow and shortWindow apply only to method Likelihood"
// +kubebuilder:validation:XValidation:rule="!has(self.longWindow) || !has(self.shortWindow) || self.shortWindow <= self.longWindow",message="normalization.shortWindow must not exceed longWindow"
type ScoringNormalization struct {
	// method is Likelihood (each entity's score is how unlikely the mean of its newest
	// shortWindow scores is under the mean and variance of its scores over about
	// longWindow rows) or None.
	// +required
	// +kubebuilder:validation:Enum=None;Likelihood
	Method string `json:"method"`

	// longWindow is how many rows the mean and variance of past scores span (default
	// 8640: a month at a 5m step).
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=1000000
	LongWindow *int32 `json:"longWindow,omitempty"`

	// shortWindow is how many of the newest scores are averaged (default 3).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	ShortWindow *int32 `json:"shortWindow,omitempty"`
}

// ScoringNetworkPolicy limits who may call a Detector's scoring pods.
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || self.enabled || !has(self.from)",message="networkPolicy.from lists who a NetworkPolicy admits; with enabled: false there is none: give one or the other"
type ScoringNetworkPolicy struct {
	// enabled is true by default; false creates no NetworkPolicy.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// from are the peers allowed in (pods, namespaces or IP blocks, as in a
	// NetworkPolicy's ingress rule); every other caller is refused. Left out: the
	// Detector's namespace and the manager's scoring peer namespaces.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	From []networkingv1.NetworkPolicyPeer `json:"from,omitempty"`
}

// AlertingSpec configures the generated alert.
type AlertingSpec struct {
	// enabled generates the PrometheusRule and PodMonitor; default true for a
	// Prometheus DataSource (other sources are not watched, so have nothing to alert on).
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// for is how long a score must stay above 1 before the alert fires (default 5m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	For *metav1.Duration `json:"for,omitempty"`

	// maxEpisodesPerDay holds the alert back while the served version's backtest
	// (its ModelVersion's status.backtest) flagged more episodes a day than this: the
	// PrometheusRule is not created (or is removed) and Alerting says
	// BacktestTooNoisy; scores are exported all the same. Unset: no gate.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxEpisodesPerDay *float64 `json:"maxEpisodesPerDay,omitempty"`

	// severity is the alert's severity label (default warning).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_-]*$`
	Severity string `json:"severity,omitempty"`

	// labels are added to the alert's labels (keys are Prometheus label names). A value
	// may name the alert's own labels and value ({{ $labels.pod }}, {{ $value }}, also
	// through humanize and the like), as Prometheus expands them; no other template
	// action.
	// +optional
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-zA-Z_][a-zA-Z0-9_]*$') && !k.startsWith('__'))",message="alerting.labels keys must be Prometheus label names (letters, digits, underscores; not starting with __)"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].matches('^([^{]|[{][^{]|[{][{] *((humanize|humanize1024|humanizePercentage|humanizeDuration|toUpper|toLower|title) +)?[$](labels[.][a-zA-Z_][a-zA-Z0-9_]*|value)( *[|] *(humanize|humanize1024|humanizePercentage|humanizeDuration|toUpper|toLower|title))* *[}][}])*[{]?$'))",message="alerting.labels values may use {{ $labels.NAME }} and {{ $value }}, piped to humanize, humanize1024, humanizePercentage, humanizeDuration, toUpper, toLower or title, and no other template action: a query would run in Prometheus with its rights"
	Labels map[string]AlertText `json:"labels,omitempty"`

	// annotations are added to the alert's annotations. A value may name the alert's
	// own labels and value ({{ $labels.pod }}, {{ $value | humanize }}), as Prometheus
	// expands them; no other template action.
	// +optional
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-zA-Z_][a-zA-Z0-9_]*$'))",message="alerting.annotations keys must be Prometheus label names (letters, digits, underscores)"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].matches('^([^{]|[{][^{]|[{][{] *((humanize|humanize1024|humanizePercentage|humanizeDuration|toUpper|toLower|title) +)?[$](labels[.][a-zA-Z_][a-zA-Z0-9_]*|value)( *[|] *(humanize|humanize1024|humanizePercentage|humanizeDuration|toUpper|toLower|title))* *[}][}])*[{]?$'))",message="alerting.annotations values may use {{ $labels.NAME }} and {{ $value }}, piped to humanize, humanize1024, humanizePercentage, humanizeDuration, toUpper, toLower or title, and no other template action: a query would run in Prometheus with its rights"
	Annotations map[string]AlertText `json:"annotations,omitempty"`
}

// AlertText is the value of an alert label or annotation.
// +kubebuilder:validation:MaxLength=2048
type AlertText string

// DefaultModelStorage is the CRD's default model volume size, for objects that did not
// pass through the API server.
var DefaultModelStorage = resource.MustParse("1Gi")

// StorageSpec is the PersistentVolumeClaim that holds the Detector's models.
// +kubebuilder:validation:XValidation:rule="self.accessMode == oldSelf.accessMode",message="accessMode is immutable"
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="storageClassName is immutable"
// +kubebuilder:validation:XValidation:rule="!has(self.size) || !has(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",message="size can grow but not shrink"
type StorageSpec struct {
	// size of the model volume; it can grow but not shrink.
	// +optional
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('1Mi')) >= 0",message="storage.size must be at least 1Mi, e.g. 1Gi"
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName of the PVC; empty uses the cluster's default class.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == '' || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="storageClassName must be empty (the default class) or the name of a StorageClass: lowercase letters, digits, '-' and '.'"
	StorageClassName *string `json:"storageClassName,omitempty"`

	// accessMode ReadWriteOnce keeps training and scoring pods on the volume's node;
	// ReadWriteMany lets them spread over nodes.
	// +optional
	// +kubebuilder:default=ReadWriteOnce
	// +kubebuilder:validation:Enum=ReadWriteOnce;ReadWriteMany
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`

	// retentionPolicy Retain keeps the models after the Detector is deleted.
	// +optional
	// +kubebuilder:default=Retain
	RetentionPolicy RetentionPolicy `json:"retentionPolicy,omitempty"`

	// keepVersions is how many model versions stay on the volume (default 5); older
	// files are removed with their ModelVersions, never the served or the pinned one.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	KeepVersions *int32 `json:"keepVersions,omitempty"`
}

// Phase summarises where a Detector is in its life.
type Phase string

// Phases of a Detector.
const (
	PhasePending   Phase = "Pending"
	PhaseTraining  Phase = "Training"
	PhaseServing   Phase = "Serving"
	PhaseFailed    Phase = "Failed"
	PhaseSuspended Phase = "Suspended"
)

// DetectorStatus is the observed state of a Detector.
type DetectorStatus struct {
	// conditions are Ready, Reconciling, Stalled, DataSourceReady, Trained and Serving.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the last generation reconciled to completion or stall.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase condenses the conditions into one word for kubectl get: Pending, Training,
	// Serving, Failed or Suspended.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// model is the newest trained model.
	// +optional
	Model *ModelStatus `json:"model,omitempty"`

	// training is the current or last training run.
	// +optional
	Training *TrainingStatus `json:"training,omitempty"`

	// endpoint is the scoring Service's in-cluster URL.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// servedVersion is the model version the scoring Deployment serves: the pinned one,
	// or the newest.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ServedVersion string `json:"servedVersion,omitempty"`

	// shadow is the newest version's way to serving under an Automatic or Manual
	// promotion policy: in shadow, promoted, a candidate, or rejected.
	// +optional
	Shadow *ShadowStatus `json:"shadow,omitempty"`

	// retraining is the state of scheduled and model-age retraining.
	// +optional
	Retraining *RetrainingStatus `json:"retraining,omitempty"`

	// backtestRun is the backtest the anomaly.kadet.dev/backtest annotation asked for:
	// its Job, and once it ends, where the figures went or why there are none.
	// +optional
	BacktestRun *BacktestRunStatus `json:"backtestRun,omitempty"`

	// watch is what the scoring pods see while watching a Prometheus DataSource,
	// reported at most every 30 s.
	// +optional
	Watch *WatchStatus `json:"watch,omitempty"`
}

// ShadowDecision is where a version in shadow stands.
// +kubebuilder:validation:Enum=Pending;Promoted;Candidate;Rejected
type ShadowDecision string

// Shadow decisions.
const (
	ShadowPending   ShadowDecision = "Pending"
	ShadowPromoted  ShadowDecision = "Promoted"
	ShadowCandidate ShadowDecision = "Candidate"
	ShadowRejected  ShadowDecision = "Rejected"
)

// ShadowStatus is the promotion of the newest model version.
type ShadowStatus struct {
	// version in shadow, or decided on.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version"`
	// since is when kadet put it in shadow.
	// +required
	Since metav1.Time `json:"since"`
	// decision is Pending while it scores in shadow, then Promoted, Candidate or
	// Rejected.
	// +required
	Decision ShadowDecision `json:"decision"`
	// decidedAt is when the gate decided.
	// +optional
	DecidedAt *metav1.Time `json:"decidedAt,omitempty"`
	// message says what the gate saw: rows, anomaly rates, agreement.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// RetrainingStatus is the state of retraining on a schedule or by model age.
type RetrainingStatus struct {
	// lastScheduleTime is the last schedule tick acted on (or when the schedule was
	// first seen); ticks after it and before now start one run.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// lastRun is the time of the latest retraining kadet started (a tick, or the time
	// the model grew older than maxModelAge); it makes the run's spec hash.
	// +optional
	LastRun *metav1.Time `json:"lastRun,omitempty"`
	// nextRun is when the next one is due.
	// +optional
	NextRun *metav1.Time `json:"nextRun,omitempty"`
	// lastDriftRun is the time of the latest retraining started by drift.
	// +optional
	LastDriftRun *metav1.Time `json:"lastDriftRun,omitempty"`
}

// WatchStatus is the state of the watch loop.
type WatchStatus struct {
	// lastScoreTime is the time of the newest row scored.
	// +optional
	LastScoreTime *metav1.Time `json:"lastScoreTime,omitempty"`
	// entities scored by the latest ticks.
	// +required
	Entities int32 `json:"entities"`
	// anomalousEntities is how many entities score above 1 now (0 shows as 0 in
	// kubectl get, not as none).
	// +required
	AnomalousEntities int32 `json:"anomalousEntities"`
	// entitiesScaledFromHistory counts the entities a model that scales by entity did
	// not see in training: each is scaled by its own history before it is scored.
	// +optional
	EntitiesScaledFromHistory int32 `json:"entitiesScaledFromHistory,omitempty"`
	// leader is the scoring pod that watches.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Leader string `json:"leader,omitempty"`
	// recentAnomalies are the latest ten anomaly episodes, newest first.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	RecentAnomalies []AnomalyEpisode `json:"recentAnomalies,omitempty"`
}

// AnomalyEpisode is a run of anomalous scores of one entity.
type AnomalyEpisode struct {
	// entity is the entity's labels as in a PromQL selector; empty without entityLabels.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Entity string `json:"entity,omitempty"`
	// start is the time of the episode's first anomalous row.
	// +required
	Start metav1.Time `json:"start"`
	// end is the time of the first row back under the threshold; absent while ongoing.
	// +optional
	End *metav1.Time `json:"end,omitempty"`
	// peakScore is the episode's highest score (1 is the threshold).
	// +required
	PeakScore float64 `json:"peakScore"`
	// topFeatures contributed most to the peak score, largest first.
	// +optional
	// +kubebuilder:validation:MaxItems=3
	// +listType=atomic
	TopFeatures []string `json:"topFeatures,omitempty"`
}

// ModelStatus describes a trained model.
type ModelStatus struct {
	// version names the model file on the model volume.
	// +required
	Version string `json:"version"`
	// digest is the model file's sha256.
	// +required
	Digest string `json:"digest"`
	// threshold is the calibrated raw-score threshold.
	// +required
	Threshold float64 `json:"threshold"`
	// specHash is the hash of the training spec that produced this model.
	// +required
	SpecHash string `json:"specHash"`
	// baseHash is specHash without the retrain token and scheduled run: a training of
	// the same base hash is a retraining of the same spec.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	BaseHash string `json:"baseHash,omitempty"`
	// scoringRule is the rule a sequence model scores rows with (AllWindows or
	// Causal); empty for the other model types.
	// +optional
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
	// seasonality is the model's spec.model.seasonality as trained (Day, Week or
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
	// metrics reported by training, e.g. loss, valLoss, samplesPerSecond.
	// +optional
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// data is what a model trained on Prometheus read (the queries and server are the
	// DataSource's).
	// +optional
	Data *ModelData `json:"data,omitempty"`
	// backtest is what the model flagged on the history held out of its training.
	// +optional
	Backtest *BacktestSummary `json:"backtest,omitempty"`
}

// ModelData is the range a model read from Prometheus and what it held.
type ModelData struct {
	// start of the range read.
	// +required
	Start metav1.Time `json:"start"`
	// end of the range read.
	// +required
	End metav1.Time `json:"end"`
	// step of the range queries.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Step string `json:"step"`
	// rows read (after gaps), over all entities.
	// +required
	Rows int64 `json:"rows"`
	// entities the rows belong to (1 without entityLabels).
	// +required
	Entities int32 `json:"entities"`
	// digest is the sha256 of the rows read.
	// +required
	// +kubebuilder:validation:MaxLength=80
	Digest string `json:"digest"`
}

// TrainingStatus is the progress of a training Job.
type TrainingStatus struct {
	// job is the training Job's name.
	// +required
	Job string `json:"job"`
	// specHash is the hash of the training spec the Job runs.
	// +required
	SpecHash string `json:"specHash"`
	// epoch is the last epoch the training pod reported.
	// +optional
	Epoch int32 `json:"epoch,omitempty"`
	// epochs is how many epochs the run will make at most.
	// +optional
	Epochs int32 `json:"epochs,omitempty"`
	// loss is the training loss of the last reported epoch.
	// +optional
	Loss *float64 `json:"loss,omitempty"`
	// valLoss is the validation loss of the last reported epoch.
	// +optional
	ValLoss *float64 `json:"valLoss,omitempty"`
	// startedAt is when the training Job started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// completedAt is when the training Job completed.
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
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.servedVersion`
// +kubebuilder:printcolumn:name="Threshold",type=number,JSONPath=`.status.model.threshold`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Epoch",type=integer,JSONPath=`.status.training.epoch`,priority=1
// +kubebuilder:printcolumn:name="Loss",type=number,JSONPath=`.status.training.loss`,priority=1
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Anomalous",type=integer,JSONPath=`.status.watch.anomalousEntities`,priority=1
// +kubebuilder:printcolumn:name="Last-Score",type=date,JSONPath=`.status.watch.lastScoreTime`,priority=1
type Detector struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired Detector.
	// +required
	Spec DetectorSpec `json:"spec"`
	// status is what the controller observed.
	// +optional
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
	// metadata is the standard list metadata.
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the Detectors.
	Items []Detector `json:"items"`
}
