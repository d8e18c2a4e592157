package calibrate

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/preprocess"
)

// normalScores draws n squared-normal scores, the shape of reconstruction errors.
func normalScores(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 9))
	s := make([]float32, n)
	for i := range s {
		v := rng.NormFloat64()
		s[i] = float32(v * v)
	}
	return s
}

func flagged(scores []float32, t float64) float64 {
	n := 0
	for _, s := range scores {
		if float64(s) > t {
			n++
		}
	}
	return float64(n) / float64(len(scores))
}

// Each method is calibrated on one sample and checked on a fresh sample of the same
// distribution: the fraction flagged must hit the method's target.
func TestThresholdHitsItsTarget(t *testing.T) {
	calib, fresh := normalScores(50000, 1), normalScores(50000, 2)
	// For chi-square(1) scores, mean 1 and std sqrt(2): mean + 3 std = 5.243, and
	// P(X > 5.243) = P(|Z| > 2.2898) = 0.02203.
	tests := []struct {
		spec      Spec
		want, tol float64
	}{
		{Spec{Method: Percentile, Percentile: 99}, 0.01, 0.003},
		{Spec{Method: Percentile, Percentile: 95}, 0.05, 0.005},
		{Spec{Method: Contamination, Contamination: 0.02}, 0.02, 0.003},
		{Spec{Method: MeanStd, StdDevs: 3}, 0.02203, 0.003},
		{Spec{Method: Fixed, Value: 3.841459}, 0.05, 0.005}, // chi-square(1) 95th percentile
	}
	for _, tt := range tests {
		t.Run(tt.spec.Method, func(t *testing.T) {
			th, err := Threshold(tt.spec, calib, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := flagged(fresh, th); math.Abs(got-tt.want) > tt.tol {
				t.Fatalf("threshold %.4f flags %.4f of fresh normal rows; want %.4f +/- %.4f", th, got, tt.want, tt.tol)
			}
		})
	}
}

func TestBestF1FindsTheGap(t *testing.T) {
	scores := append(normalScores(2000, 3), 0)
	labels := make([]float32, len(scores))
	for i := 0; i < 50; i++ { // anomalies well above every normal score
		scores = append(scores, 40+float32(i))
		labels = append(labels, 1)
	}
	th, err := Threshold(Spec{Method: BestF1}, scores, labels)
	if err != nil {
		t.Fatal(err)
	}
	var maxNormal float32
	for i, s := range scores {
		if labels[i] == 0 {
			maxNormal = max(maxNormal, s)
		}
	}
	if !(th >= float64(maxNormal) && th < 40) {
		t.Fatalf("threshold %v does not separate normal (max %v) from anomalies (min 40)", th, maxNormal)
	}
}

func TestThresholdRefusals(t *testing.T) {
	for _, tt := range []struct {
		spec   Spec
		labels []float32
		want   string
	}{
		{Spec{Method: BestF1}, nil, "needs a label"},
		{Spec{Method: BestF1}, []float32{0, 0, 0}, "no anomaly labelled 1"},
		{Spec{Method: Percentile, Percentile: 100}, nil, "not in (0, 100)"},
		{Spec{Method: Fixed, Value: -1}, nil, "not positive"},
		{Spec{Method: "Median"}, nil, "unknown threshold method"},
	} {
		_, err := Threshold(tt.spec, []float32{1, 2, 3}, tt.labels)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v; want %q", tt.spec, err, tt.want)
		}
	}
	if th, err := Threshold(Spec{Method: Percentile, Percentile: 50}, []float32{0, 0, 0}, nil); err != nil || th <= 0 {
		t.Errorf("all-zero scores gave threshold %v, %v; want a small positive one", th, err)
	}
}

// A percentile beyond what the sample shows (99.99 of 2,000 scores, where fewer than one
// score lies above it) is extrapolated from the tail: over many calibration samples the
// thresholds flag close to one fresh row in 10,000, where the sample's own quantile
// (about its maximum) flags about one in 2,000.
func TestHighPercentileOfASmallSampleIsExtrapolated(t *testing.T) {
	// For chi-square(1) scores, P(X > x) = P(|Z| > sqrt(x)).
	exceed := func(x float64) float64 { return math.Erfc(math.Sqrt(x) / math.Sqrt2) }
	spec := Spec{Method: Percentile, Percentile: 99.99}
	var tail, plain float64
	const samples = 40
	for seed := range uint64(samples) {
		calib := normalScores(2000, 100+seed)
		th, err := Threshold(spec, calib, nil)
		if err != nil {
			t.Fatal(err)
		}
		tail += exceed(th) / samples
		sorted := make([]float64, len(calib))
		for i, v := range calib {
			sorted[i] = float64(v)
		}
		slices.Sort(sorted)
		plain += exceed(preprocess.Quantile(sorted, 0.9999)) / samples
	}
	if tail < 0.4e-4 || tail > 2e-4 {
		t.Errorf("extrapolated thresholds flag %.2e of fresh rows on average; want about 1e-4", tail)
	}
	if plain < 3e-4 {
		t.Errorf("the sample's own quantile flags %.2e; this test expects it to miss the target", plain)
	}
	// Where enough scores lie above the percentile, the sample's quantile stands.
	calib := normalScores(50000, 3)
	th, _ := Threshold(Spec{Method: Percentile, Percentile: 99.9}, calib, nil)
	if got := exceed(th); math.Abs(got-1e-3) > 0.3e-3 {
		t.Errorf("percentile 99.9 of 50,000 scores flags %.2e; want 1e-3", got)
	}
}
