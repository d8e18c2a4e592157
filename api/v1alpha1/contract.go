package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// The contract between the controller and the detector binary. The controller renders a
// TrainingRequest into an immutable ConfigMap mounted into the training pod; the pod
// reports progress into a ConfigMap it may update, and its result as a TrainingResult
// in its termination message. Both sides import these types, so they cannot drift.
const (
	// TrainingRequestKind is the kind written into a rendered TrainingRequest.
	TrainingRequestKind = "TrainingRequest"
	// SpecFileName is the key of the spec ConfigMap and the file the training pod reads.
	SpecFileName = "spec.json"

	// Keys of the progress ConfigMap the training pod updates once per epoch.
	ProgressKeySpecHash = "specHash"
	ProgressKeyEpoch    = "epoch"
	ProgressKeyEpochs   = "epochs"
	ProgressKeyLoss     = "loss"
	ProgressKeyValLoss  = "valLoss"

	// TerminationMessageLimit is the kubelet's limit on a termination message.
	TerminationMessageLimit = 4096
)

// TrainingRequest is everything the training pod needs, with every default resolved and
// every Kubernetes reference turned into a local path or URL.
type TrainingRequest struct {
	APIVersion    string             `json:"apiVersion"`
	Kind          string             `json:"kind"`
	Detector      ObjectKey          `json:"detector"`
	Model         ModelSpec          `json:"model"`
	Preprocessing PreprocessingSpec  `json:"preprocessing"`
	Training      TrainingParameters `json:"training"`
	Threshold     ThresholdSpec      `json:"threshold"`
	Data          ResolvedData       `json:"data"`
	// RetrainToken is copied from the retrain annotation, so setting it starts a new run.
	RetrainToken string `json:"retrainToken,omitempty"`
}

// ObjectKey names a namespaced object.
type ObjectKey struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// TrainingParameters are the optimisation settings of TrainingSpec, without the pod's.
type TrainingParameters struct {
	Epochs          int32              `json:"epochs"`
	BatchSize       int32              `json:"batchSize"`
	LearningRate    float64            `json:"learningRate"`
	ValidationSplit float64            `json:"validationSplit"`
	Seed            int64              `json:"seed"`
	EarlyStopping   *EarlyStoppingSpec `json:"earlyStopping,omitempty"`
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

// ResolvedCSV is a CSVSource with its file located.
type ResolvedCSV struct {
	File            FileLocation `json:"file"`
	Columns         []string     `json:"columns,omitempty"`
	TimestampColumn string       `json:"timestampColumn,omitempty"`
	LabelColumn     string       `json:"labelColumn,omitempty"`
	Delimiter       string       `json:"delimiter"`
}

// ResolvedImages is an ImageSource with its files located.
type ResolvedImages struct {
	File      FileLocation  `json:"file"`
	LabelFile *FileLocation `json:"labelFile,omitempty"`
	Classes   []int32       `json:"classes,omitempty"`
}

// ResolvedPrometheus is a PrometheusSource with its token mounted as a file.
type ResolvedPrometheus struct {
	URL             string            `json:"url"`
	Queries         []PrometheusQuery `json:"queries"`
	Range           string            `json:"range"`
	Step            string            `json:"step"`
	BearerTokenFile string            `json:"bearerTokenFile,omitempty"`
}

// TrainingResult is what a successful training pod writes to its termination message.
// A failed pod writes {"error": "..."} there instead.
type TrainingResult struct {
	Version   string             `json:"version,omitempty"`
	Digest    string             `json:"digest,omitempty"`
	Threshold float64            `json:"threshold,omitempty"`
	TrainedAt *metav1.Time       `json:"trainedAt,omitempty"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	Error     string             `json:"error,omitempty"`
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
		return nil, fmt.Errorf("training result lacks version or digest")
	}
	return &r, nil
}

// Hash is a short, stable hash of the request: it names the spec ConfigMap and the
// training Job, so equal requests map to the same Job and any change to a new one.
func (r *TrainingRequest) Hash() (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10], nil
}

// Defaults for fields the API leaves optional because their value depends on another
// field (a CRD default cannot).
const (
	DefaultPercentile    = 99.0
	DefaultStdDevs       = 3.0
	DefaultContamination = 0.01
	DefaultWindow        = 32
	// DefaultValidationSplit and DefaultSeed repeat the CRD defaults for objects that
	// did not pass through the API server.
	DefaultValidationSplit = 0.1
	DefaultSeed            = 1
)

// DefaultModelStorage is the CRD's default model volume size.
var DefaultModelStorage = resource.MustParse("1Gi")

// ResolvedModel returns the model with per-type defaults filled in.
func ResolvedModel(m ModelSpec) ModelSpec {
	out := *m.DeepCopy()
	if out.Activation == "" {
		out.Activation = "ReLU"
	}
	switch out.Type {
	case Autoencoder:
		if len(out.HiddenLayers) == 0 {
			out.HiddenLayers = []int32{64, 32}
		}
		if out.LatentSize == nil {
			out.LatentSize = ptr.To[int32](8)
		}
	case MLPClassifier:
		if len(out.HiddenLayers) == 0 {
			out.HiddenLayers = []int32{64, 32}
		}
	case ConvAutoencoder:
		if len(out.Channels) == 0 {
			out.Channels = []int32{16, 32}
		}
		if out.KernelSize == nil {
			out.KernelSize = ptr.To[int32](3)
		}
		if out.LatentSize == nil {
			out.LatentSize = ptr.To[int32](32)
		}
	case LSTMAutoencoder:
		if len(out.HiddenLayers) == 0 {
			out.HiddenLayers = []int32{32}
		}
		if out.LatentSize == nil {
			out.LatentSize = ptr.To[int32](16)
		}
		if out.Window == nil {
			out.Window = ptr.To[int32](DefaultWindow)
		}
		if out.Stride == nil {
			out.Stride = ptr.To[int32](1)
		}
	}
	return out
}

// ResolvedThreshold returns the threshold with its method's parameter filled in.
func ResolvedThreshold(t ThresholdSpec) ThresholdSpec {
	out := *t.DeepCopy()
	switch out.Method {
	case "", ThresholdPercentile:
		out.Method = ThresholdPercentile
		if out.Percentile == nil {
			out.Percentile = ptr.To(DefaultPercentile)
		}
	case ThresholdMeanStd:
		if out.StdDevs == nil {
			out.StdDevs = ptr.To(DefaultStdDevs)
		}
	case ThresholdContamination:
		if out.Contamination == nil {
			out.Contamination = ptr.To(DefaultContamination)
		}
	}
	return out
}
