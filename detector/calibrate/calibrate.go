// Package calibrate picks the anomaly threshold from held-out training scores.
package calibrate

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

// Methods, as in the Detector API.
const (
	Percentile    = "Percentile"
	MeanStd       = "MeanStd"
	Fixed         = "Fixed"
	Contamination = "Contamination"
	BestF1        = "BestF1"
)

// Spec is a threshold method and its parameter.
type Spec struct {
	Method        string
	Percentile    float64
	StdDevs       float64
	Value         float64
	Contamination float64
}

// minThreshold keeps score = raw / threshold finite when every held-out score is 0.
const minThreshold = 1e-12

// Threshold computes the raw-score threshold from held-out scores, and labels for BestF1.
func Threshold(spec Spec, scores, labels []float32) (float64, error) {
	if spec.Method == Fixed {
		if !(spec.Value > 0) {
			return 0, fmt.Errorf("fixed threshold %v is not positive", spec.Value)
		}
		return spec.Value, nil
	}
	if len(scores) == 0 {
		return 0, errors.New("no held-out scores to calibrate the threshold on")
	}
	sorted := make([]float64, len(scores))
	for i, s := range scores {
		sorted[i] = float64(s)
	}
	slices.Sort(sorted)
	var t float64
	switch spec.Method {
	case Percentile:
		if !(spec.Percentile > 0 && spec.Percentile < 100) {
			return 0, fmt.Errorf("percentile %v is not in (0, 100)", spec.Percentile)
		}
		t = preprocess.Quantile(sorted, spec.Percentile/100)
		if tail, ok := tailQuantile(sorted, spec.Percentile/100); ok {
			t = math.Max(t, tail)
		}
	case Contamination:
		if !(spec.Contamination > 0 && spec.Contamination < 1) {
			return 0, fmt.Errorf("contamination %v is not in (0, 1)", spec.Contamination)
		}
		t = preprocess.Quantile(sorted, 1-spec.Contamination)
	case MeanStd:
		var sum, sq float64
		for _, v := range sorted {
			sum += v
			sq += v * v
		}
		mean := sum / float64(len(sorted))
		t = mean + spec.StdDevs*math.Sqrt(math.Max(sq/float64(len(sorted))-mean*mean, 0))
	case BestF1:
		if len(labels) != len(scores) {
			return 0, errors.New("threshold method BestF1 needs a label for every held-out row")
		}
		var err error
		if t, err = bestF1(scores, labels); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("unknown threshold method %q", spec.Method)
	}
	return math.Max(t, minThreshold), nil
}

// minAbove is how many scores must lie above a percentile for the sample's own quantile
// to stand for it; fewer, and the quantile is extrapolated from the tail.
const minAbove = 10

// tailQuantile estimates the q-quantile of the distribution sorted was drawn from when
// too few of its values lie above it to read it off: peaks over threshold, as in
// streaming anomaly detection (Siffer et al., KDD 2017). The excesses over the sample's
// 90th percentile follow a generalised Pareto distribution, fitted by probability-
// weighted moments (Hosking and Wallis, 1987), whose quantile extrapolates the tail. A
// high percentile of a few thousand calibration scores (99.99 of 2,000) is otherwise
// their maximum, or an interpolation below it: one false alarm in a few thousand rows
// where one in ten thousand was asked for.
func tailQuantile(sorted []float64, q float64) (float64, bool) {
	n := len(sorted)
	if float64(n)*(1-q) >= minAbove || n < 100 {
		return 0, false
	}
	const tailShare = 0.1
	u := preprocess.Quantile(sorted, 1-tailShare)
	var y []float64
	for _, v := range sorted {
		if v > u {
			y = append(y, v-u)
		}
	}
	m := len(y)
	if m < minAbove {
		return 0, false
	}
	// a0 is the mean excess; a1 weighs each by its plotting position's survival.
	var a0, a1 float64
	for i, v := range y {
		a0 += v
		a1 += (1 - (float64(i+1)-0.35)/float64(m)) * v
	}
	a0, a1 = a0/float64(m), a1/float64(m)
	if a0 <= 0 || a0-2*a1 <= 0 {
		return 0, false
	}
	sigma := 2 * a0 * a1 / (a0 - 2*a1)
	// Hosking's k is the negated shape; a shape far outside what scores show means a
	// poor fit, bounded rather than trusted.
	xi := math.Max(-0.5, math.Min(0.5, 2-a0/(a0-2*a1)))
	// The share of the tail beyond the wanted quantile: (1-q) of all is r of the tail.
	r := (1 - q) * float64(n) / float64(m)
	if math.Abs(xi) < 1e-6 {
		return u - sigma*math.Log(r), true
	}
	return u + sigma/xi*(math.Pow(r, -xi)-1), true
}

// bestF1 tries every distinct score as the threshold (anomaly when score > t) and keeps
// the one with the highest F1.
func bestF1(scores, labels []float32) (float64, error) {
	cands := slices.Clone(scores)
	slices.Sort(cands)
	cands = slices.Compact(cands)
	best, bestT := -1.0, 0.0
	for i := range cands {
		// Between two distinct scores, the midpoint separates them robustly.
		t := float64(cands[i])
		if i > 0 {
			t = (float64(cands[i-1]) + float64(cands[i])) / 2
		}
		f1 := evaluate.AtThreshold(scores, labels, t).F1
		if f1 > best {
			best, bestT = f1, t
		}
	}
	if best <= 0 {
		return 0, errors.New("threshold method BestF1: the held-out rows have no anomaly labelled 1")
	}
	return bestT, nil
}
