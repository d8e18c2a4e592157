// Package preprocess fits feature scalers on training rows and applies them; the fitted
// scaler is stored with the model so scoring scales exactly as training did.
package preprocess

import (
	"fmt"
	"math"
	"slices"
)

// Scaling kinds, as in the Detector API.
const (
	Standardize = "Standardize"
	MinMax      = "MinMax"
	None        = "None"
)

// Scaler maps x to (x - Offset) / Scale per feature.
type Scaler struct {
	Kind   string    `json:"kind"`
	Offset []float32 `json:"offset"`
	Scale  []float32 `json:"scale"`
}

// Fit fits a scaler of kind on x (rows of width d). A constant feature gets scale 1, so
// it maps to 0 instead of dividing by zero.
func Fit(kind string, x []float32, d int) (*Scaler, error) {
	if d <= 0 || len(x)%d != 0 {
		return nil, fmt.Errorf("preprocess: %d values do not form rows of width %d", len(x), d)
	}
	s := &Scaler{Kind: kind, Offset: make([]float32, d), Scale: make([]float32, d)}
	for j := range s.Scale {
		s.Scale[j] = 1
	}
	n := len(x) / d
	switch kind {
	case None:
	case Standardize:
		for j := 0; j < d; j++ {
			var sum, sq float64
			for i := 0; i < n; i++ {
				v := float64(x[i*d+j])
				sum += v
				sq += v * v
			}
			mean := sum / float64(n)
			std := math.Sqrt(math.Max(sq/float64(n)-mean*mean, 0))
			s.Offset[j] = float32(mean)
			if std > 1e-12 {
				s.Scale[j] = float32(std)
			}
		}
	case MinMax:
		for j := 0; j < d; j++ {
			lo, hi := x[j], x[j]
			for i := 1; i < n; i++ {
				lo, hi = min(lo, x[i*d+j]), max(hi, x[i*d+j])
			}
			s.Offset[j] = lo
			if hi > lo {
				s.Scale[j] = hi - lo
			}
		}
	default:
		return nil, fmt.Errorf("preprocess: unknown scaling %q (want Standardize, MinMax or None)", kind)
	}
	return s, nil
}

// Width is the number of features the scaler was fitted on.
func (s *Scaler) Width() int { return len(s.Offset) }

// Validate checks a scaler read from a model file.
func (s *Scaler) Validate(d int) error {
	if len(s.Offset) != d || len(s.Scale) != d {
		return fmt.Errorf("scaler has %d offsets and %d scales for %d features", len(s.Offset), len(s.Scale), d)
	}
	for j, v := range s.Scale {
		if !(v > 0) || math.IsInf(float64(v), 0) || math.IsNaN(float64(s.Offset[j])) {
			return fmt.Errorf("scaler feature %d has offset %v and scale %v", j, s.Offset[j], v)
		}
	}
	return nil
}

// Transform scales x, whole rows of the scaler's width, into dst (which may be x
// itself) and returns dst.
func (s *Scaler) Transform(dst, x []float32) []float32 {
	if dst == nil {
		dst = make([]float32, len(x))
	}
	if s.identity() {
		copy(dst, x) // (v - 0) / 1 is v: no arithmetic needed
		return dst
	}
	d := len(s.Offset)
	off, scale := s.Offset[:d:d], s.Scale[:d:d]
	for r := 0; r+d <= len(x); r += d {
		in, out := x[r:r+d:r+d], dst[r:r+d:r+d]
		for j := range in {
			out[j] = (in[j] - off[j]) / scale[j]
		}
	}
	return dst
}

// identity reports a scaler that changes nothing (Scaling None, as for images
// already in [0, 1]).
func (s *Scaler) identity() bool {
	for j := range s.Offset {
		if s.Offset[j] != 0 || s.Scale[j] != 1 {
			return false
		}
	}
	return true
}

// FeatureSummary describes one feature's training distribution, kept in the model
// file so drift can be checked against it later.
type FeatureSummary struct {
	Name      string             `json:"name"`
	Mean      float64            `json:"mean"`
	Std       float64            `json:"std"`
	Min       float64            `json:"min"`
	Max       float64            `json:"max"`
	Quantiles map[string]float64 `json:"quantiles"`
}

// Summarize describes each feature of x (rows of width len(names)).
func Summarize(x []float32, names []string) []FeatureSummary {
	d := len(names)
	n := len(x) / d
	out := make([]FeatureSummary, d)
	col := make([]float64, n)
	for j := range names {
		var sum, sq float64
		for i := 0; i < n; i++ {
			v := float64(x[i*d+j])
			col[i] = v
			sum += v
			sq += v * v
		}
		slices.Sort(col)
		mean := sum / float64(n)
		out[j] = FeatureSummary{
			Name: names[j], Mean: mean, Std: math.Sqrt(math.Max(sq/float64(n)-mean*mean, 0)),
			Min: col[0], Max: col[n-1],
			Quantiles: map[string]float64{
				"p01": Quantile(col, 0.01), "p25": Quantile(col, 0.25), "p50": Quantile(col, 0.5),
				"p75": Quantile(col, 0.75), "p99": Quantile(col, 0.99),
			},
		}
	}
	return out
}

// Quantile is the q-quantile of sorted values, interpolated linearly between ranks.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (pos-float64(lo))*(sorted[hi]-sorted[lo])
}
