package normalize

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// mse is what a reconstruction error of f features looks like on normal rows: the mean
// of squared Gaussian errors, in threshold units.
func mse(rng *rand.Rand, f int, scale float64) float64 {
	var s float64
	for range f {
		e := rng.NormFloat64()
		s += e * e
	}
	return scale * s / float64(f)
}

// heavyMSE is the same with errors whose spread itself varies (log-normally) from row
// to row: the heavier tail of a real model's errors on real data.
func heavyMSE(rng *rand.Rand, f int, scale float64) float64 {
	var s float64
	for range f {
		e := rng.NormFloat64() * math.Exp(0.5*rng.NormFloat64())
		s += e * e
	}
	return scale * s / float64(f)
}

func config(target float64, runs [][]float64) *Config {
	c := &Config{Method: Likelihood, LongWindow: DefaultLongWindow, ShortWindow: DefaultShortWindow, Target: target}
	c.Prior = c.PriorOf(runs)
	return c
}

func TestLogUpperTail(t *testing.T) {
	for _, tc := range []struct{ z, q float64 }{
		{0, 0.5}, {1, 0.15865525393145707}, {-1, 0.8413447460685429}, {3.090232306167813, 1e-3},
		{3.7190164854556804, 1e-4}, {8, 6.220960574271785e-16}, {20, 2.7536241186062337e-89},
	} {
		if got := LogUpperTail(tc.z); math.Abs(got-math.Log(tc.q)) > 1e-9*math.Abs(math.Log(tc.q))+1e-12 {
			t.Errorf("LogUpperTail(%v) = %v, want log(%v) = %v", tc.z, got, tc.q, math.Log(tc.q))
		}
	}
	// The asymptotic branch meets the exact one: Erfc still holds at 30 (Q ~ 5e-198).
	exact := math.Log(0.5 * math.Erfc(30/math.Sqrt2))
	if got := LogUpperTail(30); math.Abs(got-exact) > 1e-6*math.Abs(exact) {
		t.Errorf("LogUpperTail(30) = %v, exact %v", got, exact)
	}
	if v := LogUpperTail(1e6); math.IsInf(v, 0) || math.IsNaN(v) || v > -1e11 {
		t.Errorf("LogUpperTail(1e6) = %v, want a large finite negative number", v)
	}
}

// A stationary series flags close to the share of rows the target promises, whatever
// its scale: a series scoring at a tenth of its threshold and one scoring at ten times
// it flag alike. Errors with a heavy tail, as real ones have, come close to the
// target; light-tailed Gaussian errors flag fewer rows (the log of their mean has a
// thinner upper tail than a Gaussian), never many more.
func TestStationaryRate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		gen    func(*rand.Rand, int, float64) float64
		lo, hi float64 // bounds of the rate, in targets
	}{
		{"heavy-tailed", heavyMSE, 0.25, 4},
		{"Gaussian", mse, 0, 2},
	} {
		for _, scale := range []float64{0.1, 10} {
			for _, target := range []float64{1e-2, 1e-3} {
				rng := rand.New(rand.NewPCG(1, 2))
				calib := make([]float64, 2000)
				for i := range calib {
					calib[i] = tc.gen(rng, 1, 0.1) // trained on another scale
				}
				c := config(target, [][]float64{calib})
				var s State
				const rows = 200_000
				above := 0
				for i := range rows {
					score := c.Next(&s, tc.gen(rng, 1, scale))
					if i >= 5000 && score > 1 {
						above++
					}
				}
				rate := float64(above) / (rows - 5000)
				if rate < tc.lo*target || rate > tc.hi*target {
					t.Errorf("%s errors at scale %v, target %v: %.4f%% of rows above 1, want %v to %v times %.4f%%",
						tc.name, scale, target, 100*rate, tc.lo, tc.hi, 100*target)
				}
				t.Logf("%s errors at scale %v, target %v: %.4f%% of rows above 1", tc.name, scale, target, 100*rate)
			}
		}
	}
}

// A step change is flagged at its onset and stops being flagged once the long window
// has absorbed it.
func TestStepChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := &Config{Method: Likelihood, LongWindow: 500, ShortWindow: DefaultShortWindow, Target: 1e-4}
	var calib []float64
	for range 1000 {
		calib = append(calib, mse(rng, 4, 0.2))
	}
	c.Prior = c.PriorOf([][]float64{calib})
	var s State
	for i := range 3000 {
		if score := c.Next(&s, mse(rng, 4, 0.2)); score > 1 {
			t.Fatalf("row %d before the step scored %.2f", i, score)
		}
	}
	first, last := -1, -1
	for i := range 3000 {
		if score := c.Next(&s, mse(rng, 4, 4)); score > 1 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 || first > 2 {
		t.Fatalf("the step was first flagged %d rows after it, want within 2", first)
	}
	if last > 1000 {
		t.Errorf("the step was still flagged %d rows after it: the long window of 500 rows did not absorb it", last)
	}
	t.Logf("step flagged from row %d to row %d after it", first, last)
}

// A flat series, whose scores never move, flags the first change.
func TestFlatThenMoves(t *testing.T) {
	c := config(1e-4, [][]float64{make([]float64, 500)})
	var s State
	for i := range 5000 {
		if score := c.Next(&s, 0); score > 1 {
			t.Fatalf("flat row %d scored %.2f", i, score)
		}
	}
	if score := c.Next(&s, 0.005); score > 1 {
		t.Errorf("a move to 0.5%% of the threshold scored %.2f: a wobble far under the threshold is not an anomaly", score)
	}
	if score := c.Next(&s, 0.5); score <= 1 {
		t.Errorf("a move to half the threshold after a flat line scored %.2f, want above 1", score)
	}
	for i := range 10 { // an outage
		if score := c.Next(&s, 1e6); score <= 1 {
			t.Errorf("outage row %d scored %.2f, want above 1", i, score)
		}
	}
	for range 300 {
		c.Next(&s, 0)
	}
	if score := c.Next(&s, 0.5); score <= 1 {
		t.Errorf("a move to half the threshold 300 rows after an outage scored %.2f, want above 1: the outage widened the variance", score)
	}
	if score := c.Next(&s, math.Inf(1)); math.IsInf(score, 0) || math.IsNaN(score) || score <= 1 {
		t.Errorf("an infinite score gave %v, want a finite anomaly", score)
	}
	if score := c.Next(&s, math.NaN()); math.IsNaN(score) {
		t.Errorf("a NaN score gave NaN")
	}
}

// Series is Next from a fresh state, row for row.
func TestSeriesIsNext(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	us := make([]float64, 300)
	for i := range us {
		us[i] = mse(rng, 2, 0.3)
	}
	c := config(1e-3, [][]float64{us[:100]})
	got := c.Series(us)
	var s State
	for i, u := range us {
		if want := c.Next(&s, u); got[i] != want {
			t.Fatalf("row %d: Series %v, Next %v", i, got[i], want)
		}
	}
}

func TestStateSize(t *testing.T) {
	if n := unsafe.Sizeof(State{}); n > 128 {
		t.Errorf("State is %d bytes; an entity's state should stay small", n)
	}
}

func TestCheck(t *testing.T) {
	ok := Config{Method: Likelihood, LongWindow: 100, ShortWindow: 5, Target: 1e-4, Prior: Prior{Mean: -2, Std: 0.3}}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Method = "Zscore" }, `normalization "Zscore" is not None or Likelihood`},
		{func(c *Config) { c.LongWindow = 5 }, "long window 5"},
		{func(c *Config) { c.ShortWindow = 0 }, "short window 0"},
		{func(c *Config) { c.ShortWindow = 17 }, "short window 17"},
		{func(c *Config) { c.Target = 0.5 }, "target 0.5"},
		{func(c *Config) { c.Prior.Std = math.NaN() }, "prior"},
	} {
		c := ok
		tc.mod(&c)
		if err := c.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check() = %v, want %q", err, tc.want)
		}
	}
}
