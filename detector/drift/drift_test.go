package drift

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/kadet-dev/kadet/detector/preprocess"
)

// reference holds fixed inputs and what NumPy and SciPy computed from them
// (testdata/reference.py).
type reference struct {
	PSI []struct {
		Expected, Actual []float64
		PSI              float64
	}
	KS []struct {
		A, B []float64
		KS   float64
	}
	Bins []struct {
		Values, Edges, Expected []float64
	}
	Window struct {
		Train, Live [][]float64
		PSI         []float64
	}
}

func loadReference(t *testing.T) reference {
	t.Helper()
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func near(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(1, math.Abs(want))
}

func TestPSIAgainstNumPy(t *testing.T) {
	for i, c := range loadReference(t).PSI {
		if got := PSI(c.Expected, c.Actual); !near(got, c.PSI, 1e-12) {
			t.Errorf("case %d: PSI %v, NumPy %v", i, got, c.PSI)
		}
	}
}

func TestKSAgainstSciPy(t *testing.T) {
	for i, c := range loadReference(t).KS {
		if got := KS(c.A, c.B); !near(got, c.KS, 1e-12) {
			t.Errorf("case %d (%d against %d values): KS %v, scipy.stats.ks_2samp %v", i, len(c.A), len(c.B), got, c.KS)
		}
	}
}

func TestBinsAgainstNumPy(t *testing.T) {
	for i, c := range loadReference(t).Bins {
		x := make([]float32, len(c.Values))
		for k, v := range c.Values {
			x[k] = float32(v)
		}
		s := preprocess.Summarize(x, []string{"f"})[0]
		if len(s.Edges) != len(c.Edges) || len(s.Expected) != len(c.Expected) {
			t.Fatalf("case %d: %d edges and %d shares, NumPy %d and %d", i, len(s.Edges), len(s.Expected), len(c.Edges), len(c.Expected))
		}
		for k := range c.Edges {
			// the values are float32 here, float64 in NumPy
			if !near(s.Edges[k], c.Edges[k], 1e-6) {
				t.Errorf("case %d: edge %d is %v, NumPy %v", i, k, s.Edges[k], c.Edges[k])
			}
		}
		for k := range c.Expected {
			if !near(s.Expected[k], c.Expected[k], 1e-12) {
				t.Errorf("case %d: share of bin %d is %v, NumPy %v", i, k, s.Expected[k], c.Expected[k])
			}
		}
	}
}

// rows flattens rows of float64 into float32 values.
func rows(r [][]float64) []float32 {
	var x []float32
	for _, row := range r {
		for _, v := range row {
			x = append(x, float32(v))
		}
	}
	return x
}

// TestMonitorWindowAgainstNumPy feeds a window of live rows, two of three features
// moved by three standard deviations, and compares each feature's PSI with NumPy's.
func TestMonitorWindowAgainstNumPy(t *testing.T) {
	w := loadReference(t).Window
	names := []string{"still", "moved", "also_moved"}
	ref := Reference{Features: FromSummary(preprocess.Summarize(rows(w.Train), names))}
	m := NewMonitor(ref, len(w.Live))
	// Earlier rows fall out of the window: only the live ones count.
	m.Observe(rows(w.Train[:500]), make([]float64, 500))
	m.Observe(rows(w.Live), make([]float64, len(w.Live)))
	rep := m.Report()
	if rep.Rows != len(w.Live) || rep.Seen != uint64(500+len(w.Live)) {
		t.Fatalf("window holds %d rows of %d seen, want %d of %d", rep.Rows, rep.Seen, len(w.Live), 500+len(w.Live))
	}
	for j, f := range rep.Features {
		if f.Name != names[j] || !near(f.PSI, w.PSI[j], 1e-9) {
			t.Errorf("feature %d: %s PSI %v, NumPy %v", j, f.Name, f.PSI, w.PSI[j])
		}
	}
	top := rep.Top(0.25, 3)
	if len(top) != 2 || top[0].Name == "still" || top[1].Name == "still" {
		t.Errorf("features at PSI >= 0.25: %+v, want the two moved ones", top)
	}
}

func TestLegacySummaryBins(t *testing.T) {
	// a file from before decile bins: five quantiles, two of them equal
	old := []preprocess.FeatureSummary{{Name: "x", Quantiles: map[string]float64{"p01": 0, "p25": 0, "p50": 1, "p75": 2, "p99": 3}}}
	b := FromSummary(old)[0]
	wantEdges, wantShares := []float64{0, 1, 2, 3}, []float64{0.25, 0.25, 0.25, 0.24, 0.01}
	if len(b.Edges) != len(wantEdges) {
		t.Fatalf("edges %v, want %v", b.Edges, wantEdges)
	}
	for i := range wantEdges {
		if b.Edges[i] != wantEdges[i] {
			t.Errorf("edges %v, want %v", b.Edges, wantEdges)
		}
	}
	var sum float64
	for i := range wantShares {
		sum += b.Expected[i]
		if !near(b.Expected[i], wantShares[i], 1e-12) {
			t.Errorf("shares %v, want %v", b.Expected, wantShares)
		}
	}
	if !near(sum, 1, 1e-12) {
		t.Errorf("shares sum to %v", sum)
	}
}

func TestAnomalyRateAndScoreKSFollowTheWindow(t *testing.T) {
	ref := Reference{Features: []Bins{{Name: "x", Edges: []float64{0}, Expected: []float64{0.5, 0.5}}}, Scores: []float64{0.1, 0.2, 0.3, 0.4}}
	m := NewMonitor(ref, 4)
	m.Observe([]float32{1, 1, 1, 1}, []float64{2, 3, 0.1, 0.2})
	if r := m.Report(); r.AnomalyRate != 0.5 || !near(r.ScoreKS, 0.5, 1e-12) {
		t.Errorf("anomaly rate %v and KS %v, want 0.5 and 0.5", r.AnomalyRate, r.ScoreKS)
	}
	// the two anomalies leave the window
	m.Observe([]float32{-1, -1}, []float64{0.3, 0.4})
	if r := m.Report(); r.AnomalyRate != 0 || r.ScoreKS != 0 {
		t.Errorf("anomaly rate %v and KS %v after the anomalies left, want 0 and 0", r.AnomalyRate, r.ScoreKS)
	}
	if r := m.Report(); !near(r.Features[0].PSI, 0, 1e-12) {
		t.Errorf("half the rows in each bin: PSI %v, want 0", r.Features[0].PSI)
	}
}

// TestStationaryMillionRows runs a million rows drawn from the training distribution
// through a monitor and checks no window of it ever reaches the drift limits.
func TestStationaryMillionRows(t *testing.T) {
	if testing.Short() {
		t.Skip("a million rows")
	}
	const d, train = 4, 5000
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(n int) []float32 {
		x := make([]float32, n*d)
		for i := range n {
			x[i*d] = float32(rng.NormFloat64())
			x[i*d+1] = float32(rng.ExpFloat64())
			x[i*d+2] = float32(rng.IntN(5)) // repeated values: uneven bins
			x[i*d+3] = float32(rng.Float64())
		}
		return x
	}
	names := []string{"normal", "exponential", "categorical", "uniform"}
	cal := make([]float32, 2000)
	for i := range cal {
		cal[i] = float32(rng.ExpFloat64())
	}
	ref := Reference{Features: FromSummary(preprocess.Summarize(draw(train), names)), Scores: CalibrationSample(cal, 4, 512)}
	m := NewMonitor(ref, DefaultWindow)
	var worstPSI, worstKS float64
	scores := make([]float64, 100)
	for chunk := 0; chunk < 10000; chunk++ {
		for i := range scores {
			scores[i] = rng.ExpFloat64() / 4
		}
		m.Observe(draw(100), scores)
		if chunk%10 == 9 { // a report every 1,000 rows, as a pod's every few seconds
			r := m.Report()
			for _, f := range r.Features {
				worstPSI = max(worstPSI, f.PSI)
			}
			worstKS = max(worstKS, r.ScoreKS)
		}
	}
	t.Logf("a million stationary rows, windows of %d: largest PSI %.4f, largest score KS %.4f", DefaultWindow, worstPSI, worstKS)
	if worstPSI >= DefaultFeaturePSI || worstKS >= DefaultScoreKS {
		t.Errorf("stationary data reached PSI %.4f (limit %v) or KS %.4f (limit %v)", worstPSI, DefaultFeaturePSI, worstKS, DefaultScoreKS)
	}
}

// An image model's monitor has no feature bins: it still measures its scores.
func TestScoresAloneWithoutFeatures(t *testing.T) {
	m := NewMonitor(Reference{Scores: []float64{0.1, 0.2, 0.3}}, 10)
	m.Observe(make([]float32, 3*784), []float64{5, 6, 7})
	r := m.Report()
	if r.Rows != 3 || len(r.Features) != 0 || !r.ScoresCompared || r.ScoreKS != 1 || r.AnomalyRate != 1 {
		t.Errorf("report %+v; want 3 rows, no features, scores disjoint from the calibration's (KS 1)", r)
	}
}
