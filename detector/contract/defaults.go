package contract

import (
	"fmt"
	"time"

	prommodel "github.com/prometheus/common/model"
)

// Defaults for fields the API leaves optional because their value depends on another
// field (a CRD default cannot), and for requests built without the API server (the
// binary's plain flags, the benchmarks).
const (
	DefaultPercentile = 99.0
	// DefaultStreamPercentile aims at one false alarm in 10,000 rows of a stream, where
	// every alarm pages someone; calibration extrapolates the tail to reach it.
	DefaultStreamPercentile = 99.99
	DefaultStdDevs          = 3.0
	DefaultContamination    = 0.01
	DefaultWindow           = 32
	DefaultScaling          = "Standardize"
	DefaultActivation       = "ReLU"
	// These repeat the CRD defaults.
	DefaultEpochs          = 20
	DefaultBatchSize       = 64
	DefaultLearningRate    = 0.001
	DefaultValidationSplit = 0.1
	DefaultSeed            = 1
)

// Source is the kind of data a Detector trains on, which some presets depend on.
type Source int

const (
	// SourceRows are rows of a file: a table, or a series scored after the fact.
	SourceRows Source = iota
	// SourceImages are images.
	SourceImages
	// SourceStream is a series that keeps arriving (Prometheus) and is scored as it
	// comes: its threshold aims at one false alarm in 10,000 rows.
	SourceStream
)

// Source is the kind of data d holds.
func (d ResolvedData) Source() Source {
	switch {
	case d.Images != nil:
		return SourceImages
	case d.Prometheus != nil:
		return SourceStream
	}
	return SourceRows
}

// ResolvedModel returns m with its type's presets for data of kind src filled in where
// m leaves them out.
func ResolvedModel(m Model, src Source) Model {
	out := m
	out.HiddenLayers = append([]int32(nil), m.HiddenLayers...)
	out.Channels = append([]int32(nil), m.Channels...)
	if out.Activation == "" {
		out.Activation = DefaultActivation
	}
	orDefault := func(p *int32, v int32) *int32 {
		if p != nil {
			return p
		}
		return &v
	}
	switch out.Type {
	case Autoencoder:
		if len(out.HiddenLayers) == 0 {
			out.HiddenLayers = []int32{64, 32}
		}
		out.LatentSize = orDefault(out.LatentSize, 8)
	case MLPClassifier:
		if len(out.HiddenLayers) == 0 {
			out.HiddenLayers = []int32{64, 32}
		}
	case ConvAutoencoder:
		if len(out.Channels) == 0 {
			out.Channels = []int32{16, 32}
		}
		out.KernelSize = orDefault(out.KernelSize, 3)
		if out.Resampling != ConvStrided {
			out.LatentSize = orDefault(out.LatentSize, 32)
		}
	case LSTMAutoencoder:
		if len(out.HiddenLayers) == 0 {
			out.HiddenLayers = []int32{32}
		}
		out.LatentSize = orDefault(out.LatentSize, 16)
		out.Window = orDefault(out.Window, DefaultWindow)
		out.Stride = orDefault(out.Stride, 1)
	}
	// A sequence model scores a row from the window that ends at it unless the spec
	// says otherwise: a stream can do nothing else, and on SKAB's files it scored as
	// well (LSTMAutoencoder) or better (ConvAutoencoder) than AllWindows.
	if sequenceModel(out.Type, src) && out.ScoringRule == "" {
		out.ScoringRule = ScoringCausal
	}
	return out
}

// ResolvedThreshold returns t with its method's parameter for data of kind src filled in.
func ResolvedThreshold(t Threshold, src Source) Threshold {
	out := t
	orDefault := func(p *float64, v float64) *float64 {
		if p != nil {
			return p
		}
		return &v
	}
	switch out.Method {
	case "", ThresholdPercentile:
		out.Method = ThresholdPercentile
		if src == SourceStream {
			out.Percentile = orDefault(out.Percentile, DefaultStreamPercentile)
		}
		out.Percentile = orDefault(out.Percentile, DefaultPercentile)
	case ThresholdMeanStd:
		out.StdDevs = orDefault(out.StdDevs, DefaultStdDevs)
	case ThresholdContamination:
		out.Contamination = orDefault(out.Contamination, DefaultContamination)
	}
	return out
}

// ResolvedNormalization is n with its default for a model of type t on a source of
// kind src: the likelihood stage for a sequence model on a stream (each series of a
// Prometheus query is scored against its own past, so one threshold holds on all of
// them, and a lasting change alerts once, not for weeks), None (nil) otherwise.
func ResolvedNormalization(n *Normalization, t ModelType, src Source) *Normalization {
	if n == nil {
		if src == SourceStream && (t == LSTMAutoencoder || t == ConvAutoencoder) {
			return &Normalization{Method: NormalizationLikelihood}
		}
		return nil
	}
	if n.Method == NormalizationNone {
		return nil
	}
	out := *n
	return &out
}

// ResolvedScaleBy is how a model on data whose rows name entities (or not) scales
// them, given scaleBy (Model, Entity or empty for the default): Entity, each entity by
// its own statistics, when the rows name entities and scaleBy is not Model (a service
// at 10 ms and one at 800 ms, scaled as one, leave one always anomalous or never); ""
// (one scaler for the model) otherwise.
func ResolvedScaleBy(scaleBy string, entities bool) string {
	if entities && scaleBy != ScaleByModel {
		return ScaleByEntity
	}
	return ""
}

// Seasonalities of a sequence model, as in the Detector API.
const (
	SeasonalityNone = "None"
	SeasonalityDay  = "Day"
	SeasonalityWeek = "Week"
	SeasonalityAuto = "Auto"
)

// sequenceModel says whether a model of type t over data of kind src sees windows of
// rows: an LSTMAutoencoder, or a ConvAutoencoder over rows of a series (not images).
func sequenceModel(t ModelType, src Source) bool {
	return t == LSTMAutoencoder || (t == ConvAutoencoder && src != SourceImages)
}

// ResolvedSeasonality is the seasonality a request carries for a model of type t
// whose spec says s: s, or for a sequence model Auto when s is empty; None becomes
// empty, so a request from before seasonality hashes as it did.
func ResolvedSeasonality(s string, t ModelType, src Source) string {
	switch {
	case !sequenceModel(t, src) || s == SeasonalityNone:
		return ""
	case s == "":
		return SeasonalityAuto
	}
	return s
}

// NamesEntities says whether the rows of d name their entities: a Prometheus source
// with entity labels, or a CSV with an entity column.
func (d ResolvedData) NamesEntities() bool {
	if p := d.Prometheus; p != nil && len(p.EntityLabels) > 0 {
		return true
	}
	return d.CSV != nil && d.CSV.EntityColumn != ""
}

// DefaultAlertFor is how long a Detector's alert waits, its score above 1, before it
// fires (alerting.for), as Prometheus writes a duration.
const DefaultAlertFor = "5m"

// DefaultBacktestMergeGap is the gap an episode's anomalous rows merge across when no
// alert says (the alert's default for).
const DefaultBacktestMergeGap = "5m0s"

// ResolvedBacktest is b with its default for data of kind src: the newest
// DefaultBacktestHoldOut of a stream's range, held out and backtested on; nothing
// (nil) for other data, whose held-out rows the training metrics already cover, and
// for a b that holds out nothing.
func ResolvedBacktest(b *Backtest, src Source) *Backtest {
	if src != SourceStream {
		return nil
	}
	if b == nil {
		return &Backtest{HoldOut: DefaultBacktestHoldOut, MergeGap: DefaultBacktestMergeGap}
	}
	if b.HoldOut == 0 && b.Range == "" {
		return nil
	}
	out := *b
	if out.MergeGap == "" {
		out.MergeGap = DefaultBacktestMergeGap
	}
	return &out
}

// ParseDuration reads a duration as Go writes it (90m, 1h30m, 1.5h) or as Prometheus
// does (7d, 2w): a range of history is given in days more often than in hours.
func ParseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	d, err := prommodel.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (such as 90m, 24h or 7d)", s)
	}
	return time.Duration(d), nil
}
