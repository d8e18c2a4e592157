// Package drift measures how far the rows and scores a model sees in service have moved
// from what it was trained and calibrated on: the population stability index (PSI) of
// each feature over the decile bins of its training rows, and the two-sample
// Kolmogorov-Smirnov statistic of recent scores against the calibration scores.
package drift

import (
	"math"
	"slices"
	"sort"
	"sync"

	"gonum.org/v1/gonum/stat"

	"github.com/kadet-dev/kadet/detector/preprocess"
)

// DefaultWindow is how many recent rows the measures cover when nothing else is asked.
const DefaultWindow = 1000

// psiFloor stands in for an empty bin's share in the PSI, whose logarithm would be
// infinite; a share of one in 10,000 is the usual choice.
const psiFloor = 1e-4

// Reference is what a model's file keeps for drift checks: each feature's bins and the
// share of training rows in each, and a sample of calibration scores.
type Reference struct {
	Features []Bins
	// Scores are calibration scores in score units (1 is the threshold), sorted.
	Scores []float64
}

// Bins are one feature's bin edges (bin i holds values above Edges[i-1] and up to
// Edges[i]) and the share of training rows in each of the len(Edges)+1 bins.
type Bins struct {
	Name     string
	Edges    []float64
	Expected []float64
}

// legacyQuantiles are the quantiles files from before decile bins keep, with the share
// of rows between them.
var legacyQuantiles = []struct {
	key   string
	share float64
}{{"p01", 0.01}, {"p25", 0.24}, {"p50", 0.25}, {"p75", 0.25}, {"p99", 0.24}}

// FromSummary makes the feature bins of a model file's data summary. Files from before
// decile bins have five quantiles, which make six bins.
func FromSummary(summary []preprocess.FeatureSummary) []Bins {
	out := make([]Bins, len(summary))
	for j, f := range summary {
		out[j].Name = f.Name
		if len(f.Edges) > 0 && len(f.Expected) == len(f.Edges)+1 {
			out[j].Edges, out[j].Expected = f.Edges, f.Expected
			continue
		}
		var rest float64 = 1
		for _, q := range legacyQuantiles {
			v, ok := f.Quantiles[q.key]
			if !ok {
				continue
			}
			if n := len(out[j].Edges); n > 0 && v <= out[j].Edges[n-1] {
				out[j].Expected[n-1] += q.share // a repeated edge merges its bin into the one before
				rest -= q.share
				continue
			}
			out[j].Edges = append(out[j].Edges, v)
			out[j].Expected = append(out[j].Expected, q.share)
			rest -= q.share
		}
		out[j].Expected = append(out[j].Expected, max(rest, 0))
	}
	return out
}

// CalibrationSample returns at most n evenly spaced order statistics of scores (raw
// scores, divided by threshold into score units), sorted: enough for the KS statistic,
// small enough for a model file.
func CalibrationSample(raw []float32, threshold float64, n int) []float64 {
	if len(raw) == 0 || threshold <= 0 {
		return nil
	}
	all := make([]float64, len(raw))
	for i, v := range raw {
		all[i] = float64(v) / threshold
	}
	slices.Sort(all)
	if len(all) <= n {
		return all
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = all[int(math.Round(float64(i)*float64(len(all)-1)/float64(n-1)))]
	}
	return out
}

// PSI is the population stability index of actual shares against expected ones:
// the sum over bins of (a - e) ln(a / e), with empty bins counted as psiFloor.
func PSI(expected, actual []float64) float64 {
	var psi float64
	for i := range expected {
		e, a := max(expected[i], psiFloor), max(actual[i], psiFloor)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}

// KS is the two-sample Kolmogorov-Smirnov statistic of sorted samples a and b: the
// largest distance between their empirical distribution functions.
func KS(a, b []float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	return stat.KolmogorovSmirnov(a, nil, b, nil)
}

// bin is the bin of v: the first edge v does not exceed.
func bin(edges []float64, v float64) int {
	return sort.SearchFloat64s(edges, v)
}

// Monitor keeps the bins of the last Window rows of each feature and their scores, and
// measures their drift from the reference. It is safe for concurrent use; Observe costs
// one binary search per feature and row.
type Monitor struct {
	mu        sync.Mutex
	ref       Reference
	window    int
	d         int
	bins      []uint8   // window x d, a ring of rows
	scores    []float64 // window, the same ring
	counts    [][]int32 // per feature, rows of the window in each bin
	next, n   int
	seen      uint64
	anomaly   []bool // window, the same ring
	anomalies int
}

// NewMonitor makes a monitor over the last window rows (DefaultWindow when window <= 0).
func NewMonitor(ref Reference, window int) *Monitor {
	if window <= 0 {
		window = DefaultWindow
	}
	d := len(ref.Features)
	m := &Monitor{ref: ref, window: window, d: d, bins: make([]uint8, window*d),
		scores: make([]float64, window), anomaly: make([]bool, window), counts: make([][]int32, d)}
	for j, f := range ref.Features {
		m.counts[j] = make([]int32, len(f.Edges)+1)
	}
	return m
}

// Window is how many rows the measures cover once that many were seen.
func (m *Monitor) Window() int { return m.window }

// Observe adds rows (in the features' own units, len(scores) rows of d values) and their
// scores. A monitor without features (an image model's) keeps the scores alone and
// ignores x.
func (m *Monitor) Observe(x []float32, scores []float64) {
	if m.d > 0 && len(x) != len(scores)*m.d {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for r, s := range scores {
		row := x[r*m.d : (r+1)*m.d]
		at := m.bins[m.next*m.d : (m.next+1)*m.d]
		if m.n == m.window {
			for j, b := range at {
				m.counts[j][b]--
			}
			if m.anomaly[m.next] {
				m.anomalies--
			}
		} else {
			m.n++
		}
		for j, v := range row {
			b := bin(m.ref.Features[j].Edges, float64(v))
			at[j] = uint8(b)
			m.counts[j][b]++
		}
		m.scores[m.next] = s
		m.anomaly[m.next] = s > 1
		if s > 1 {
			m.anomalies++
		}
		m.next = (m.next + 1) % m.window
		m.seen++
	}
}

// FeatureDrift is one feature's PSI over the window.
type FeatureDrift struct {
	Name string  `json:"name"`
	PSI  float64 `json:"psi"`
}

// Report is the drift of the window at one moment.
type Report struct {
	// Rows is how many rows the window holds (Window once full); Seen every row observed.
	Rows   int    `json:"rows"`
	Window int    `json:"window"`
	Seen   uint64 `json:"seen"`
	// Features are in the model's feature order.
	Features []FeatureDrift `json:"features"`
	// ScoreKS is the KS statistic of the window's scores against the calibration
	// scores; ScoresCompared is false (and ScoreKS 0) when the model file has none.
	ScoreKS        float64 `json:"scoreKS"`
	ScoresCompared bool    `json:"scoresCompared"`
	// AnomalyRate is the share of the window's rows scoring above 1.
	AnomalyRate float64 `json:"anomalyRate"`
}

// Report measures the window now.
func (m *Monitor) Report() Report {
	m.mu.Lock()
	n := m.n
	shares := make([][]float64, m.d)
	for j, c := range m.counts {
		shares[j] = make([]float64, len(c))
		for b, k := range c {
			if n > 0 {
				shares[j][b] = float64(k) / float64(n)
			}
		}
	}
	scores := slices.Clone(m.scores[:n])
	rep := Report{Rows: n, Window: m.window, Seen: m.seen}
	if n > 0 {
		rep.AnomalyRate = float64(m.anomalies) / float64(n)
	}
	m.mu.Unlock()

	rep.Features = make([]FeatureDrift, m.d)
	for j, f := range m.ref.Features {
		rep.Features[j] = FeatureDrift{Name: f.Name}
		if n > 0 {
			rep.Features[j].PSI = PSI(f.Expected, shares[j])
		}
	}
	slices.Sort(scores)
	rep.ScoreKS, rep.ScoresCompared = KS(scores, m.ref.Scores), len(m.ref.Scores) > 0
	return rep
}

// Top returns the names of the features whose PSI is at least limit, largest first, at
// most n of them.
func (r Report) Top(limit float64, n int) []FeatureDrift {
	var out []FeatureDrift
	for _, f := range r.Features {
		if f.PSI >= limit {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b FeatureDrift) int {
		switch {
		case a.PSI > b.PSI:
			return -1
		case a.PSI < b.PSI:
			return 1
		}
		return 0
	})
	return out[:min(n, len(out))]
}

// Default limits: a feature has drifted at a PSI of 0.25 (the usual reading: below 0.1
// stable, 0.1 to 0.25 moving, above 0.25 shifted), the scores when their KS statistic
// against the calibration scores reaches 0.3.
const (
	DefaultFeaturePSI = 0.25
	DefaultScoreKS    = 0.3
)
