package normalize

import (
	"math"
	"math/rand/v2"
	"slices"
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

// powerLongWindow is the long window model files with transform Power were trained with.
const powerLongWindow = 2016

// config is a Config whose threshold is calibrated on runs as training calibrates it:
// their 1 - target quantile is 1. It returns the threshold too, to divide scores by.
func config(target float64, runs [][]float64) (*Config, float64) {
	c := &Config{Method: Likelihood, Transform: Power, LongWindow: powerLongWindow, ShortWindow: DefaultShortWindow, Target: target}
	return c, calibrate(c, runs)
}

// calibrate sets c's priors from runs divided by their 1 - c.Target quantile, the
// threshold it returns.
func calibrate(c *Config, runs [][]float64) float64 {
	var all []float64
	for _, r := range runs {
		all = append(all, r...)
	}
	slices.Sort(all)
	threshold := 1.0
	if len(all) > 0 && all[min(len(all)-1, int(float64(len(all))*(1-c.Target)))] > 0 {
		threshold = all[min(len(all)-1, int(float64(len(all))*(1-c.Target)))]
	}
	units := make([][]float64, len(runs))
	for i, r := range runs {
		for _, u := range r {
			units[i] = append(units[i], u/threshold)
		}
	}
	c.SetPriors(units)
	return threshold
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
// it flag alike. The newest row's test flags the target's share (its power is fitted
// to the calibrated threshold); the short mean's adds rows a single row's would not
// flag, so the two flag up to a few times the target, never orders of magnitude more.
func TestStationaryRate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		gen    func(*rand.Rand, int, float64) float64
		lo, hi float64 // bounds of the rate, in targets
	}{
		{"heavy-tailed", heavyMSE, 0.5, 4},
		{"Gaussian", mse, 0.5, 4},
	} {
		for _, scale := range []float64{0.1, 10} {
			for _, target := range []float64{1e-2, 1e-3} {
				rng := rand.New(rand.NewPCG(1, 2))
				calib := make([]float64, 20_000)
				for i := range calib {
					calib[i] = tc.gen(rng, 1, 0.1) // trained on another scale
				}
				c, threshold := config(target, [][]float64{calib})
				var s State
				const rows = 200_000
				above := 0
				for i := range rows {
					score := c.Next(&s, tc.gen(rng, 1, scale)/threshold)
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
	c := &Config{Method: Likelihood, Transform: Power, LongWindow: 500, ShortWindow: DefaultShortWindow, Target: 1e-4}
	var calib []float64
	for range 20_000 {
		calib = append(calib, mse(rng, 4, 1))
	}
	threshold := calibrate(c, [][]float64{calib})
	var s State
	for i := range 3000 {
		if score := c.Next(&s, mse(rng, 4, 1)/threshold); score > 1 {
			t.Fatalf("row %d before the step scored %.2f", i, score)
		}
	}
	first, last, flagged, late := -1, -1, 0, 0
	for i := range 3000 {
		if score := c.Next(&s, mse(rng, 4, 20)/threshold); score > 1 {
			if first < 0 {
				first = i
			}
			last = i
			flagged++
			if i >= 250 {
				late++
			}
		}
	}
	if first < 0 || first > 2 {
		t.Fatalf("the step was first flagged %d rows after it, want within 2", first)
	}
	if late > 5 {
		t.Errorf("%d rows flagged from 250 rows after the step on: the long window of 500 rows did not absorb it", late)
	}
	t.Logf("step flagged from row %d to row %d after it, %d rows in all, %d from row 250 on", first, last, flagged, late)
}

// A flat series, whose scores never move, flags the first change.
func TestFlatThenMoves(t *testing.T) {
	c, _ := config(1e-4, [][]float64{make([]float64, 500)})
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

// The fitted power puts the stage's threshold on the calibrated one: an entity at
// rest, like its calibration rows, flags a score just above the threshold and not one
// just below it, whatever the shape of its errors' tail.
func TestPowerMatchesThreshold(t *testing.T) {
	for _, tc := range []struct {
		name string
		gen  func(*rand.Rand) float64
	}{
		{"one squared Gaussian error", func(r *rand.Rand) float64 { return mse(r, 1, 1) }},
		{"mean of 16 squared errors", func(r *rand.Rand) float64 { return mse(r, 16, 1) }},
		{"heavy-tailed", func(r *rand.Rand) float64 { return heavyMSE(r, 1, 1) }},
	} {
		rng := rand.New(rand.NewPCG(7, 8))
		calib := make([]float64, 20_000)
		for i := range calib {
			calib[i] = tc.gen(rng)
		}
		// A short window of 1: the newest row's test alone.
		c := &Config{Method: Likelihood, Transform: Power, LongWindow: powerLongWindow, ShortWindow: 1, Target: 1e-3}
		calibrate(c, [][]float64{calib})
		above, below := c.Next(&State{}, 1.03), c.Next(&State{}, 0.97)
		if above <= 1 || below >= 1 {
			t.Errorf("%s (power %.3f): the calibrated threshold's neighbours scored %.3f (1.03) and %.3f (0.97), want above and below 1",
				tc.name, c.Power, above, below)
		}
		t.Logf("%s: power %.3f", tc.name, c.Power)
	}
}

// Model files written before the power recorded no transform: they score with the log
// of the short mean plus Offset, as they did.
func TestLogTransformOfOlderFiles(t *testing.T) {
	c := &Config{Method: Likelihood, LongWindow: 100, ShortWindow: 1, Target: 1e-4, Prior: Prior{Mean: -3, Std: 0.5}}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []float64{0.01, 0.5, 3} {
		want := LogUpperTail((math.Log(u+Offset)+3)/0.5) / math.Log(1e-4)
		if got := c.Next(&State{}, u); math.Abs(got-want) > 1e-6*want { // the ring keeps float32
			t.Errorf("u %v: %v, want %v", u, got, want)
		}
	}
}

// Series is Next from a fresh state, row for row.
func TestSeriesIsNext(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	us := make([]float64, 300)
	for i := range us {
		us[i] = mse(rng, 2, 0.3)
	}
	c, _ := config(1e-3, [][]float64{us[:100]})
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
		{func(c *Config) { c.Transform = "Sqrt" }, `transform "Sqrt"`},
		{func(c *Config) { c.Transform, c.AnomalyWeight, c.UpdateCap = Plain, 0, DefaultUpdateCap }, "anomaly weight 0"},
		{func(c *Config) { c.Transform, c.AnomalyWeight, c.UpdateCap = Plain, DefaultAnomalyWeight, 0.5 }, "update cap 0.5"},
		{func(c *Config) { c.Transform, c.Power, c.RowPrior = Power, 0, &Prior{Std: 0.1} }, "power 0"},
		{func(c *Config) { c.Transform, c.Power = Power, DefaultPower }, "row prior"},
	} {
		c := ok
		tc.mod(&c)
		if err := c.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check() = %v, want %q", err, tc.want)
		}
	}
}
