package contract

// Defaults for fields the API leaves optional because their value depends on another
// field (a CRD default cannot), and for requests built without the API server (the
// binary's plain flags, the benchmarks).
const (
	DefaultPercentile    = 99.0
	DefaultStdDevs       = 3.0
	DefaultContamination = 0.01
	DefaultWindow        = 32
	DefaultScaling       = "Standardize"
	DefaultActivation    = "ReLU"
	// These repeat the CRD defaults.
	DefaultEpochs          = 20
	DefaultBatchSize       = 64
	DefaultLearningRate    = 0.001
	DefaultValidationSplit = 0.1
	DefaultSeed            = 1
)

// ResolvedModel returns m with its type's presets filled in where m leaves them out;
// series says the data is rows of a series rather than images, which a
// ConvAutoencoder's presets depend on.
func ResolvedModel(m Model, series bool) Model {
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
	return out
}

// ResolvedThreshold returns t with its method's parameter filled in.
func ResolvedThreshold(t Threshold) Threshold {
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
		out.Percentile = orDefault(out.Percentile, DefaultPercentile)
	case ThresholdMeanStd:
		out.StdDevs = orDefault(out.StdDevs, DefaultStdDevs)
	case ThresholdContamination:
		out.Contamination = orDefault(out.Contamination, DefaultContamination)
	}
	return out
}
