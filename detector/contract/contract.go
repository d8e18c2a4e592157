// Package contract is what the controller and the detector binary agree on: the
// TrainingRequest the controller renders into a ConfigMap, the TrainingResult the
// training pod writes to its termination message, the keys of the progress ConfigMap,
// the environment of the pods and the exit codes. Both sides import this package and
// nothing else of each other, so they cannot drift. It holds plain Go types: the engine
// depends on no Kubernetes package.
package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	// APIVersion is written into every rendered TrainingRequest; the binary refuses a
	// request of another version.
	APIVersion = "anomaly.kadet.dev/v1alpha1"
	// Kind is the kind of a rendered TrainingRequest.
	Kind = "TrainingRequest"
	// SpecFileName is the key of the spec ConfigMap and the file the training pod reads.
	SpecFileName = "spec.json"
	// TerminationMessageLimit is the kubelet's limit on a termination message.
	TerminationMessageLimit = 4096
)

// Keys of the progress ConfigMap the training pod updates once per epoch.
const (
	ProgressKeySpecHash = "specHash"
	ProgressKeyEpoch    = "epoch"
	ProgressKeyEpochs   = "epochs"
	ProgressKeyLoss     = "loss"
	ProgressKeyValLoss  = "valLoss"
)

// Environment the controller gives the training pod.
const (
	// EnvProgressConfigMap names the ConfigMap the pod reports progress into.
	EnvProgressConfigMap = "KADET_PROGRESS_CONFIGMAP"
	// EnvSpecHash is the hash of the request, stamped on every progress report so the
	// controller ignores reports of an older run.
	EnvSpecHash = "KADET_SPEC_HASH"
	// EnvPodNamespace, EnvPodName and EnvPodIP come from the downward API.
	EnvPodNamespace = "POD_NAMESPACE"
	EnvPodName      = "POD_NAME"
	EnvPodIP        = "POD_IP"
)

// Exit codes of the detector binary.
const (
	ExitOK      = 0
	ExitFailure = 1
	// ExitInvalidInput is bad spec, data, model file or flags: retrying cannot help,
	// so a training Job fails at once on it.
	ExitInvalidInput = 2
	// ExitInsufficientData is a Prometheus range that does not hold enough rows yet:
	// the Job fails at once, and the controller tries again when enough should have
	// arrived.
	ExitInsufficientData = 3
	// ExitCanceled is 128 + SIGTERM: the run was stopped and wrote nothing.
	ExitCanceled = 143
)

// DataProvenance is what a model read from Prometheus: the range, the rows and
// entities it gave, and the digest of those rows.
type DataProvenance struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Step     string    `json:"step"`
	Rows     int       `json:"rows"`
	Entities int       `json:"entities"`
	Digest   string    `json:"digest"`
}

// InsufficientData says how far a Prometheus range is from enough rows to train.
type InsufficientData struct {
	Rows     int `json:"rows"`
	Needed   int `json:"needed"`
	Entities int `json:"entities"`
	// Step is the source's step (a Go duration): each step adds a row per entity.
	Step string `json:"step"`
}

// Wait is how long until enough rows should have arrived.
func (d InsufficientData) Wait() time.Duration {
	step, err := time.ParseDuration(d.Step)
	if err != nil || step <= 0 || d.Rows >= d.Needed {
		return 0
	}
	perStep := max(d.Entities, 1)
	return time.Duration((d.Needed-d.Rows+perStep-1)/perStep) * step
}

// Message is the sentence a user reads, e.g. "312 of 1,000 rows; enough in about 11h
// at step 1m".
func (d InsufficientData) Message() string {
	return fmt.Sprintf("%s of %s rows; enough in about %s at step %s", thousands(d.Rows), thousands(d.Needed),
		roundWait(d.Wait()), shortDuration(d.Step))
}

// shortDuration drops a Go duration's zero tail: 1m0s is 1m, 1h0m0s is 1h.
func shortDuration(s string) string {
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func roundWait(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int((d+30*time.Minute)/time.Hour))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int((d+30*time.Second)/time.Minute))
	}
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ModelType names a network architecture; the values are the API's.
type ModelType string

// Model types.
const (
	Autoencoder     ModelType = "Autoencoder"
	MLPClassifier   ModelType = "MLPClassifier"
	ConvAutoencoder ModelType = "ConvAutoencoder"
	LSTMAutoencoder ModelType = "LSTMAutoencoder"
)

// ThresholdMethod is how the threshold is calibrated; the values are the API's.
type ThresholdMethod string

// Threshold methods.
const (
	ThresholdPercentile    ThresholdMethod = "Percentile"
	ThresholdMeanStd       ThresholdMethod = "MeanStd"
	ThresholdFixed         ThresholdMethod = "Fixed"
	ThresholdContamination ThresholdMethod = "Contamination"
	ThresholdBestF1        ThresholdMethod = "BestF1"
)

// TrainingRequest is everything the training pod needs, with every default resolved and
// every Kubernetes reference turned into a local path or URL.
type TrainingRequest struct {
	APIVersion    string             `json:"apiVersion"`
	Kind          string             `json:"kind"`
	Detector      ObjectKey          `json:"detector"`
	Model         Model              `json:"model"`
	Preprocessing Preprocessing      `json:"preprocessing"`
	Training      TrainingParameters `json:"training"`
	Threshold     Threshold          `json:"threshold"`
	Data          ResolvedData       `json:"data"`
	// Normalization is the likelihood stage of a sequence model's scores; nil is None.
	Normalization *Normalization `json:"normalization,omitempty"`
	// Backtest is the history a new version is backtested on; nil for none.
	Backtest *Backtest `json:"backtest,omitempty"`
	// RetrainToken is copied from the retrain annotation, so setting it starts a new run.
	RetrainToken string `json:"retrainToken,omitempty"`
	// Run is the time of the scheduled (or model-age) retraining this request is for,
	// so each one is a run of its own.
	Run string `json:"run,omitempty"`
}

// Backtest says which newest stretch of a Prometheus range a new model version does
// not train on and is scored on after training, as a watching pod would score it:
// the newest HoldOut share of the range, or, with Range, the newest Range read past
// the DataSource's range (training then ends that much earlier).
type Backtest struct {
	// HoldOut is a share of the range, in (0, 0.5]; used when Range is empty.
	HoldOut float64 `json:"holdOut,omitempty"`
	// Range is a Go duration.
	Range string `json:"range,omitempty"`
	// MergeGap is the longest gap (a Go duration, the alert's for) across which an
	// entity's anomalous rows make one episode. It does not enter the request's hash:
	// an alert's for that changes is no reason to retrain.
	MergeGap string `json:"mergeGap,omitempty"`
}

// DefaultBacktestHoldOut is the share of a Prometheus range a new Detector's model
// versions are backtested on.
const DefaultBacktestHoldOut = 0.2

// BacktestTop is how many of a backtest's largest episodes a training result lists.
const BacktestTop = 10

// BacktestResult is what a version flagged on the history it was backtested on.
type BacktestResult struct {
	// Skipped says why no backtest ran ("" when one did).
	Skipped  string     `json:"skipped,omitempty"`
	Start    *time.Time `json:"start,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	Rows     int        `json:"rows,omitempty"`
	Entities int        `json:"entities,omitempty"`
	// AnomalousRows counts the rows scored above 1.
	AnomalousRows int `json:"anomalousRows,omitempty"`
	Episodes      int `json:"episodes,omitempty"`
	// EpisodesPerDay is Episodes over the backtest's span in days.
	EpisodesPerDay float64 `json:"episodesPerDay,omitempty"`
	MergeGap       string  `json:"mergeGap,omitempty"`
	// Largest are the episodes with the highest peaks, highest first.
	Largest []BacktestEpisode `json:"largest,omitempty"`
}

// BacktestEpisode is one episode of a backtest: an entity's anomalous rows.
type BacktestEpisode struct {
	Entity string    `json:"entity,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Rows   int       `json:"rows"`
	Peak   float64   `json:"peak"`
}

// ObjectKey names a namespaced object.
type ObjectKey struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Model describes the network, as the Detector's spec.model does.
type Model struct {
	Type         ModelType `json:"type"`
	HiddenLayers []int32   `json:"hiddenLayers,omitempty"`
	LatentSize   *int32    `json:"latentSize,omitempty"`
	Activation   string    `json:"activation,omitempty"`
	Window       *int32    `json:"window,omitempty"`
	Stride       *int32    `json:"stride,omitempty"`
	Channels     []int32   `json:"channels,omitempty"`
	KernelSize   *int32    `json:"kernelSize,omitempty"`
	ScoringRule  string    `json:"scoringRule,omitempty"`
	StuckValues  string    `json:"stuckValues,omitempty"`
	Resampling   string    `json:"resampling,omitempty"`
	Dropout      *float64  `json:"dropout,omitempty"`
	// Seasonality is how a sequence model's scores follow the time of day or week:
	// None (or empty), Day, Week or Auto.
	Seasonality string `json:"seasonality,omitempty"`
}

// Resampling of a ConvAutoencoder, as in the Detector API.
const (
	ConvPooling = "Pooling"
	ConvStrided = "Strided"
)

// Scoring rules of a sequence model: how the reconstruction errors of the windows that
// hold a row become that row's score.
const (
	// ScoringAllWindows scores a row by its mean error over every window that holds
	// it, rows after it included: the most evidence, for files scored after the fact.
	ScoringAllWindows = "AllWindows"
	// ScoringCausal scores a row by its error in the window that ends at it, so a
	// row's score never depends on rows after it: the rule for watching a stream.
	ScoringCausal = "Causal"
)

// What a sequence model makes of a value repeated for longer than in its training
// data, as in the Detector API: StuckFlag (the default) or StuckIgnore.
const (
	StuckFlag   = "Flag"
	StuckIgnore = "Ignore"
)

// Normalization methods, as in the Detector API.
const (
	NormalizationNone       = "None"
	NormalizationLikelihood = "Likelihood"
)

// Normalization is the Detector's spec.scoring.normalization: how a sequence model's
// scores become scores that mean the same on every series. Windows are rows; nil
// takes the engine's defaults.
type Normalization struct {
	Method      string `json:"method"`
	LongWindow  *int32 `json:"longWindow,omitempty"`
	ShortWindow *int32 `json:"shortWindow,omitempty"`
}

// Preprocessing says how features are scaled: Standardize, MinMax or None, with one
// scaler for the model or, ScaleBy Entity, one per entity.
type Preprocessing struct {
	Scaling string `json:"scaling,omitempty"`
	// ScaleBy is Entity or empty (Model): empty, so that requests from before it
	// hash as they did.
	ScaleBy string `json:"scaleBy,omitempty"`
}

// Scaling scopes: one scaler for the model, or one per entity.
const (
	ScaleByModel  = "Model"
	ScaleByEntity = "Entity"
)

// TrainingParameters are the optimisation settings of the Detector's spec.training,
// without the pod's.
type TrainingParameters struct {
	Epochs          int32          `json:"epochs"`
	BatchSize       int32          `json:"batchSize"`
	LearningRate    float64        `json:"learningRate"`
	ValidationSplit float64        `json:"validationSplit"`
	Seed            int64          `json:"seed"`
	EarlyStopping   *EarlyStopping `json:"earlyStopping,omitempty"`
	// KeepFlagged trains on every row: without it, a retraining leaves out the rows
	// the model in service flags and those feedback marks anomalous.
	KeepFlagged bool `json:"keepFlagged,omitempty"`
}

// EarlyStopping stops training when the validation loss stops improving.
type EarlyStopping struct {
	Patience int32   `json:"patience"`
	MinDelta float64 `json:"minDelta,omitempty"`
}

// Threshold is the calibration method and its one parameter.
type Threshold struct {
	Method        ThresholdMethod `json:"method,omitempty"`
	Percentile    *float64        `json:"percentile,omitempty"`
	StdDevs       *float64        `json:"stdDevs,omitempty"`
	Value         *float64        `json:"value,omitempty"`
	Contamination *float64        `json:"contamination,omitempty"`
}

// ResolvedData is a DataSource as the training pod sees it: one of CSV, Images or
// Prometheus, with files given as a local Path or a URL.
type ResolvedData struct {
	CSV        *ResolvedCSV        `json:"csv,omitempty"`
	Images     *ResolvedImages     `json:"images,omitempty"`
	Prometheus *ResolvedPrometheus `json:"prometheus,omitempty"`
	// Digest is the sha256 of the data when the controller can see it (ConfigMap
	// sources), so a change of the data changes the spec hash and retrains.
	Digest string `json:"digest,omitempty"`
}

// FileLocation is a local path or a URL: exactly one is set.
type FileLocation struct {
	Path string `json:"path,omitempty"`
	URL  string `json:"url,omitempty"`
}

// String is the path or the URL, for messages.
func (l FileLocation) String() string {
	if l.Path != "" {
		return l.Path
	}
	return l.URL
}

// ResolvedCSV is a CSV source with its file located.
type ResolvedCSV struct {
	File            FileLocation `json:"file"`
	Columns         []string     `json:"columns,omitempty"`
	TimestampColumn string       `json:"timestampColumn,omitempty"`
	LabelColumn     string       `json:"labelColumn,omitempty"`
	// EntityColumn names each row's entity: each entity's rows are a series of their
	// own, as a Prometheus query's series are.
	EntityColumn string `json:"entityColumn,omitempty"`
	Delimiter    string `json:"delimiter"`
}

// ResolvedImages is an image source with its files located.
type ResolvedImages struct {
	File      FileLocation  `json:"file"`
	LabelFile *FileLocation `json:"labelFile,omitempty"`
	Classes   []int32       `json:"classes,omitempty"`
}

// ResolvedPrometheus is a Prometheus source with its token mounted as a file.
type ResolvedPrometheus struct {
	URL     string            `json:"url"`
	Queries []PrometheusQuery `json:"queries"`
	Range   string            `json:"range"`
	Step    string            `json:"step"`
	// End is the end of the range (RFC 3339); empty means the time of training.
	End string `json:"end,omitempty"`
	// EntityLabels split a query's series into entities: rows become (time, entity).
	EntityLabels []string `json:"entityLabels,omitempty"`
	// MaxGap is how many steps a value is carried forward over missing samples
	// (DefaultMaxGap when nil); rows with longer gaps are dropped.
	MaxGap *int32 `json:"maxGap,omitempty"`
	// Credentials are files mounted from Secrets, read at each request.
	BearerTokenFile string             `json:"bearerTokenFile,omitempty"`
	BasicAuth       *ResolvedBasicAuth `json:"basicAuth,omitempty"`
	TLS             *ResolvedTLS       `json:"tls,omitempty"`
	Headers         map[string]string  `json:"headers,omitempty"`
	// HeaderFiles are headers whose values are files (mounted from Secrets), by name.
	HeaderFiles map[string]string `json:"headerFiles,omitempty"`
}

// ResolvedBasicAuth names the files holding a user name and a password.
type ResolvedBasicAuth struct {
	UsernameFile string `json:"usernameFile"`
	PasswordFile string `json:"passwordFile"`
}

// ResolvedTLS is how the server's certificate is checked.
type ResolvedTLS struct {
	CAFile             string `json:"caFile,omitempty"`
	ServerName         string `json:"serverName,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// DefaultMaxGap is how many steps of missing samples a Prometheus series bridges by
// carrying its last value forward.
const DefaultMaxGap = 2

// PrometheusQuery is one feature column: a PromQL query returning one series.
type PrometheusQuery struct {
	Name  string `json:"name"`
	Query string `json:"query"`
}

// Hash is a short, stable hash of the request: it names the spec ConfigMap and the
// training Job, so equal requests map to the same Job and any change to a new one.
func (r *TrainingRequest) Hash() (string, error) {
	c := *r
	if b := r.Backtest; b != nil {
		c.Backtest = &Backtest{HoldOut: b.HoldOut, Range: b.Range}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10], nil
}

// BaseHash is Hash without the retrain token and run: equal base hashes mean the same
// spec trained again, on newer data.
func (r *TrainingRequest) BaseHash() (string, error) {
	c := *r
	c.RetrainToken, c.Run = "", ""
	return c.Hash()
}

// CheckVersion refuses a request written for another version of the contract.
func (r *TrainingRequest) CheckVersion() error {
	if r.Kind != Kind || r.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion %q kind %q; want %s %s", r.APIVersion, r.Kind, APIVersion, Kind)
	}
	return nil
}

// TrainingResult is what a successful training pod writes to its termination message.
// A failed pod writes {"error": "..."} there instead.
type TrainingResult struct {
	Version   string     `json:"version,omitempty"`
	Digest    string     `json:"digest,omitempty"`
	Threshold float64    `json:"threshold,omitempty"`
	TrainedAt *time.Time `json:"trainedAt,omitempty"`
	// ScoringRule is the rule a sequence model scores rows with; empty for others.
	ScoringRule string `json:"scoringRule,omitempty"`
	// Normalization is the method of the model's likelihood stage; empty for None.
	Normalization string `json:"normalization,omitempty"`
	// ScaleBy is Entity when the model scales each entity by its own statistics;
	// empty for one scaler.
	ScaleBy string `json:"scaleBy,omitempty"`
	// Seasonality is the request's model seasonality (Day, Week or Auto); empty for
	// None.
	Seasonality string `json:"seasonality,omitempty"`
	// SeasonalPeriod is the period whose hours the model's scores follow (Day or
	// Week); empty when every hour is scored alike.
	SeasonalPeriod string             `json:"seasonalPeriod,omitempty"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	Error          string             `json:"error,omitempty"`
	// Data says what a model trained on Prometheus saw.
	Data *DataProvenance `json:"data,omitempty"`
	// Kadet is the version of the detector binary that trained the model.
	Kadet string `json:"kadetVersion,omitempty"`
	// Backtest is what the version flagged on the history held out from its training.
	Backtest *BacktestResult `json:"backtest,omitempty"`
	// InsufficientData is set with Error when the range held too few rows.
	InsufficientData *InsufficientData `json:"insufficientData,omitempty"`
}

// ParseTrainingResult decodes and checks a termination message.
func ParseTrainingResult(msg string) (*TrainingResult, error) {
	var r TrainingResult
	if err := json.Unmarshal([]byte(msg), &r); err != nil {
		return nil, fmt.Errorf("termination message is not a training result: %w", err)
	}
	if r.Error != "" {
		return &r, nil
	}
	if r.Version == "" || r.Digest == "" {
		return nil, errors.New("training result lacks version or digest")
	}
	return &r, nil
}
