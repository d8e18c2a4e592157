// Package preprocess fits feature scalers on training rows and applies them; the fitted
// scaler is stored with the model so scoring scales exactly as training did.
package preprocess

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
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
func Fit(kind string, x []float32, d int) (*Scaler, error) { return FitRows(kind, x, d, nil) }

// FitRows fits a scaler on the rows of x listed in rows (all rows when rows is nil), so
// a training split needs no copy of its rows.
func FitRows(kind string, x []float32, d int, rows []int) (*Scaler, error) {
	s, _, err := fit(kind, x, d, rows)
	return s, err
}

// FitEntity fits, for one entity of a model whose model-wide scaler is s, a scaler of
// s's kind on the rows of x listed in rows (all when nil). A feature the entity
// holds constant there keeps s's scale around the entity's own level: scaled by 1 in
// its own units, a byte count that moves by a kilobyte would be a thousand deviations.
func (s *Scaler) FitEntity(x []float32, rows []int) (*Scaler, error) {
	e, constant, err := fit(s.Kind, x, s.Width(), rows)
	if err != nil {
		return nil, err
	}
	for j, c := range constant {
		if c {
			e.Scale[j] = s.Scale[j]
		}
	}
	return e, nil
}

// fit is FitRows, and which features are constant on the rows.
func fit(kind string, x []float32, d int, rows []int) (*Scaler, []bool, error) {
	if d <= 0 || len(x)%d != 0 {
		return nil, nil, fmt.Errorf("preprocess: %d values do not form rows of width %d", len(x), d)
	}
	if len(x) == 0 || (rows != nil && len(rows) == 0) {
		return nil, nil, fmt.Errorf("preprocess: no rows to fit a scaler on")
	}
	s := &Scaler{Kind: kind, Offset: make([]float32, d), Scale: make([]float32, d)}
	constant := make([]bool, d)
	for j := range s.Scale {
		s.Scale[j] = 1
	}
	switch kind {
	case None:
	case Standardize:
		// Row by row, accumulating every feature at once: one pass over memory however
		// wide the rows are.
		sum, sq := make([]float64, d), make([]float64, d)
		n := eachRow(x, d, rows, func(r []float32) {
			for j, v := range r {
				sum[j] += float64(v)
				sq[j] += float64(v) * float64(v)
			}
		})
		for j := range d {
			mean := sum[j] / float64(n)
			std := math.Sqrt(math.Max(sq[j]/float64(n)-mean*mean, 0))
			s.Offset[j] = float32(mean)
			if std > 1e-12 {
				s.Scale[j] = float32(std)
			} else {
				constant[j] = true
			}
		}
	case MinMax:
		// Rows were checked finite when read, so the infinities are replaced by the first.
		lo, hi := make([]float32, d), make([]float32, d)
		for j := range d {
			lo[j], hi[j] = float32(math.Inf(1)), float32(math.Inf(-1))
		}
		eachRow(x, d, rows, func(r []float32) {
			for j, v := range r {
				lo[j], hi[j] = min(lo[j], v), max(hi[j], v)
			}
		})
		for j := range d {
			s.Offset[j] = lo[j]
			if hi[j] > lo[j] {
				s.Scale[j] = hi[j] - lo[j]
			} else {
				constant[j] = true
			}
		}
	default:
		return nil, nil, fmt.Errorf("preprocess: unknown scaling %q (want Standardize, MinMax or None)", kind)
	}
	return s, constant, nil
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
	if s.Identity() {
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

// Identity reports a scaler that changes nothing (Scaling None, as for images
// already in [0, 1]).
func (s *Scaler) Identity() bool {
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
	// Edges are the feature's deciles, without repeats: bin i holds the values above
	// Edges[i-1] and up to Edges[i], the last bin those above every edge. Expected is the
	// share of the training rows in each bin (uneven where values repeat). Drift is
	// measured against them; absent in files from before drift checks.
	Edges    []float64 `json:"edges,omitempty"`
	Expected []float64 `json:"expected,omitempty"`
}

// DriftBins is how many quantile bins a feature's distribution is summarised in for
// drift checks: deciles, as the population stability index is usually computed.
const DriftBins = 10

// Summarize describes each feature of x (rows of width len(names)).
func Summarize(x []float32, names []string) []FeatureSummary { return SummarizeRows(x, names, nil) }

// SummarizeRows describes each feature over the rows of x listed in rows (all rows
// when rows is nil).
func SummarizeRows(x []float32, names []string, rows []int) []FeatureSummary {
	d := len(names)
	n := len(x) / d
	if rows != nil {
		n = len(rows)
	}
	out := make([]FeatureSummary, d)
	if n == 0 {
		for j, name := range names {
			out[j].Name = name
		}
		return out
	}
	// Columns are copied out a block at a time, in one pass over the rows per block: one
	// pass per feature would read every row once for each of 784 pixels. A block holds at
	// most summaryBlockBytes; blocks are shared out among the cores.
	block := max(1, min(d, summaryBlockBytes/(8*n)))
	starts := make(chan int, (d+block-1)/block)
	for j0 := 0; j0 < d; j0 += block {
		starts <- j0
	}
	close(starts)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(starts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cols := make([][]float64, block)
			for b := range cols {
				cols[b] = make([]float64, n)
			}
			for j0 := range starts {
				summarizeBlock(out[j0:j0+min(block, d-j0)], names[j0:], cols, x, d, j0, rows)
			}
		}()
	}
	wg.Wait()
	return out
}

// summarizeBlock fills out, the summaries of features j0, j0+1, ..., copying their
// columns into cols first.
func summarizeBlock(out []FeatureSummary, names []string, cols [][]float64, x []float32, d, j0 int, rows []int) {
	w, n := len(out), len(cols[0])
	for i := range n {
		r := i
		if rows != nil {
			r = rows[i]
		}
		for b, v := range x[r*d+j0 : r*d+j0+w] {
			cols[b][i] = float64(v)
		}
	}
	for b, col := range cols[:w] {
		var sum, sq float64
		for _, v := range col {
			sum += v
			sq += v * v
		}
		slices.Sort(col)
		mean := sum / float64(n)
		out[b] = FeatureSummary{
			Name: names[b], Mean: mean, Std: math.Sqrt(math.Max(sq/float64(n)-mean*mean, 0)),
			Min: col[0], Max: col[n-1],
			Quantiles: map[string]float64{
				"p01": Quantile(col, 0.01), "p25": Quantile(col, 0.25), "p50": Quantile(col, 0.5),
				"p75": Quantile(col, 0.75), "p99": Quantile(col, 0.99),
			},
		}
		out[b].Edges, out[b].Expected = binsOf(col)
	}
}

// binsOf returns the decile edges of sorted values and the share of them in each bin.
func binsOf(sorted []float64) (edges, expected []float64) {
	n := len(sorted)
	for k := 1; k < DriftBins; k++ {
		e := Quantile(sorted, float64(k)/DriftBins)
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	expected = make([]float64, len(edges)+1)
	below := 0
	for i, e := range edges {
		// values up to and including e: the first index past e
		upTo, _ := slices.BinarySearchFunc(sorted, e, func(v, t float64) int {
			if v <= t {
				return -1
			}
			return 1
		})
		expected[i] = float64(upTo-below) / float64(n)
		below = upTo
	}
	expected[len(edges)] = float64(n-below) / float64(n)
	return edges, expected
}

// summaryBlockBytes bounds the columns SummarizeRows copies out at once (a variable so
// a test can make blocks smaller than a row).
var summaryBlockBytes = 16 << 20

// eachRow calls fn with each row of x listed in rows (every row when rows is nil) and
// returns how many it visited.
func eachRow(x []float32, d int, rows []int, fn func([]float32)) int {
	if rows == nil {
		for r := 0; r+d <= len(x); r += d {
			fn(x[r : r+d : r+d])
		}
		return len(x) / d
	}
	for _, i := range rows {
		fn(x[i*d : (i+1)*d : (i+1)*d])
	}
	return len(rows)
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

// Inverse undoes Transform: it maps scaled rows x back to the data's own units into
// dst (which may be x itself) and returns dst.
func (s *Scaler) Inverse(dst, x []float32) []float32 {
	if dst == nil {
		dst = make([]float32, len(x))
	}
	d := len(s.Offset)
	for r := 0; r+d <= len(x); r += d {
		for j := 0; j < d; j++ {
			dst[r+j] = x[r+j]*s.Scale[j] + s.Offset[j]
		}
	}
	return dst
}
