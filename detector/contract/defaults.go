package contract

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
	sequence := out.Type == LSTMAutoencoder || (out.Type == ConvAutoencoder && src != SourceImages)
	if sequence && out.ScoringRule == "" {
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

// NamesEntities says whether the rows of d name their entities: a Prometheus source
// with entity labels, or a CSV with an entity column.
func (d ResolvedData) NamesEntities() bool {
	if p := d.Prometheus; p != nil && len(p.EntityLabels) > 0 {
		return true
	}
	return d.CSV != nil && d.CSV.EntityColumn != ""
}
