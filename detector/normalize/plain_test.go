package normalize

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadet-dev/kadet/detector/contract"
)

// plainStage is Ahmad et al.'s stage written out over a whole series: for each row, the
// exponentially weighted mean and variance of the scores before it (starting from the
// prior with PriorRows of weight) and the Gaussian tail of the mean of its newest short
// scores, as log(Q) / log(target); with Plain's two changes: a row scored above 1 moves
// them at weight times its weight, and counts as at most limit.
func plainStage(us []float64, long, short int, target, weight, limit float64, prior Prior) []float64 {
	out := make([]float64, len(us))
	mean, variance, n := prior.Mean, prior.Std*prior.Std, min(PriorRows, long)
	for i, u := range us {
		var sum float64
		lo := max(0, i-short+1)
		for _, v := range us[lo : i+1] {
			sum += v
		}
		z := (sum/float64(i+1-lo) - mean) / max(math.Sqrt(variance), MinPlainStd)
		out[i] = math.Log(0.5*math.Erfc(z/math.Sqrt2)) / math.Log(target)
		n = min(n+1, long)
		w := 1 / float64(n)
		if out[i] > 1 {
			w *= weight
		}
		d := min(u, limit) - mean
		mean += w * d
		variance = (1 - w) * (variance + w*d*d)
	}
	return out
}

// New models get Plain, which scores every row as the formula does: no clip, no power
// and no second test of the newest row.
func TestPlainStage(t *testing.T) {
	c, err := New(&contract.Normalization{Method: Likelihood}, 1e-4)
	if err != nil {
		t.Fatal(err)
	}
	if c.Transform != Plain || c.LongWindow != DefaultLongWindow || c.ShortWindow != DefaultShortWindow ||
		c.AnomalyWeight != DefaultAnomalyWeight || c.UpdateCap != DefaultUpdateCap {
		t.Fatalf("New gave %+v; want %s, windows %d and %d, weight %v, cap %v", c, Plain, DefaultLongWindow, DefaultShortWindow,
			DefaultAnomalyWeight, DefaultUpdateCap)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	var calib []float64
	for range 5000 {
		calib = append(calib, mse(rng, 4, 0.2))
	}
	c.SetPriors([][]float64{calib})
	if c.Prior.Rows != len(calib) || c.RowPrior != nil {
		t.Fatalf("priors: %+v and row prior %v; want one over %d rows and none for the newest row", c.Prior, c.RowPrior, len(calib))
	}
	c.LongWindow = 300 // so that the outage below and its aftermath span it
	// Quiet rows, an outage, a burst of noise and quiet rows again: under a clip or a
	// row test some of these rows would score otherwise.
	var us []float64
	for i := range 3000 {
		u := mse(rng, 4, 0.2)
		switch {
		case i >= 1000 && i < 1010:
			u = 50
		case i >= 2000 && i < 2200:
			u = mse(rng, 4, 3)
		}
		us = append(us, u)
	}
	want := plainStage(us, c.LongWindow, c.ShortWindow, c.Target, c.AnomalyWeight, c.UpdateCap, c.Prior)
	got := c.Series(us)
	for i := range us {
		// The state keeps its newest scores as float32.
		if math.Abs(got[i]-want[i]) > 1e-6*max(1, math.Abs(want[i])) {
			t.Fatalf("row %d (score %.4g) scored %.6g, the formula %.6g", i, us[i], got[i], want[i])
		}
	}
	// The outage stays an anomaly to its end, and the quiet rows after it are scored
	// against a variance it hardly widened.
	for i := 1000; i < 1010; i++ {
		if got[i] <= 1 {
			t.Errorf("outage row %d scored %.2f, want above 1", i, got[i])
		}
	}
	if n := countAbove(got[1020:2000]); n > 0 {
		t.Errorf("%d quiet rows after the outage scored above 1", n)
	}
}

func countAbove(scores []float64) int {
	n := 0
	for _, s := range scores {
		if s > 1 {
			n++
		}
	}
	return n
}

// A step change under the update cap is flagged at its onset and learnt as the new
// normal, more slowly than the long window while it scores above 1.
func TestPlainStepChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	c := &Config{Method: Likelihood, Transform: Plain, LongWindow: 500, ShortWindow: DefaultShortWindow, Target: 1e-4,
		AnomalyWeight: DefaultAnomalyWeight, UpdateCap: DefaultUpdateCap}
	var calib []float64
	for range 20_000 {
		calib = append(calib, mse(rng, 4, 1))
	}
	threshold := calibrate(c, [][]float64{calib})
	// Quiet rows flag about as often as the target says.
	var s State
	quiet := 0
	const rows = 20_000
	for range rows {
		if score := c.Next(&s, mse(rng, 4, 1)/threshold); score > 1 {
			quiet++
		}
	}
	if float64(quiet) > 2*rows*c.Target {
		t.Fatalf("%d of %d rows before the step scored above 1, want at most twice the target %v", quiet, rows, c.Target)
	}
	t.Logf("%d of %d rows before the step scored above 1", quiet, rows)
	first, last := -1, -1
	for i := range 10_000 {
		if score := c.Next(&s, mse(rng, 4, 4)/threshold); score > 1 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 || first > 2 {
		t.Fatalf("the step was first flagged %d rows after it, want within 2", first)
	}
	if last >= c.LongWindow {
		t.Errorf("the step was still flagged %d rows after it: not learnt within the long window of %d rows", last, c.LongWindow)
	}
	t.Logf("step flagged from row %d to row %d after it", first, last)
}

// A series whose scores never move flags a move to half its threshold, not a wobble
// far under it; infinite and NaN scores give finite scores.
func TestPlainFlat(t *testing.T) {
	c := &Config{Method: Likelihood, Transform: Plain, LongWindow: DefaultLongWindow, ShortWindow: DefaultShortWindow, Target: 1e-4,
		AnomalyWeight: DefaultAnomalyWeight, UpdateCap: DefaultUpdateCap}
	c.SetPriors([][]float64{make([]float64, 500)})
	var s State
	for i := range 5000 {
		if score := c.Next(&s, 0); score > 1 {
			t.Fatalf("flat row %d scored %.2f", i, score)
		}
	}
	quiet := s
	for i := range 3 {
		if score := c.Next(&quiet, 0.3); score > 1 {
			t.Errorf("row %d at 0.3 of the threshold after a flat line scored %.2f: a quiet series does not flag a move that far under its threshold", i, score)
		}
	}
	if score := c.Next(&s, 0.005); score > 1 {
		t.Errorf("a move to 0.5%% of the threshold scored %.2f: a wobble far under the threshold is not an anomaly", score)
	}
	if score := c.Next(&s, 1.5); score <= 1 {
		t.Errorf("a move to 1.5 times the threshold after a flat line scored %.2f, want above 1", score)
	}
	for _, u := range []float64{math.Inf(1), math.NaN(), 1e300} {
		if score := c.Next(&s, u); math.IsInf(score, 0) || math.IsNaN(score) {
			t.Errorf("a score of %v gave %v, want a finite score", u, score)
		}
	}
}
