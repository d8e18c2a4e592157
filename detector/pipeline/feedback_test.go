package pipeline

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/kadet-dev/kadet/detector/contract"
)

// writeFeedback stores marks as a scoring pod would: n ordinary sensor records and n
// that break the sensors' correlation, labelled.
func writeFeedback(t *testing.T, dir string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(77, 1))
	var lines []byte
	for i := range 2 * n {
		z1, z2 := rng.NormFloat64(), rng.NormFloat64()
		v := []float64{z1, z2, z1 + z2, z1 - z2, 2 * z1, 0.5 * z2, z1 + 0.3*z2, -z2}
		anomaly := i >= n
		m := contract.FeedbackMark{Anomaly: anomaly, Features: map[string]float64{}}
		for j, x := range v {
			if anomaly {
				x += rng.NormFloat64() * 1.5
			}
			m.Features["s"+string(rune('1'+j))] = x*10 + 100
		}
		b, _ := json.Marshal(m)
		lines = append(append(lines, b...), '\n')
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pod-a"+contract.FeedbackFileSuffix), lines, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Labelled feedback on the model volume is scored by the next training: its metrics
// say how the model does on it, and a BestF1 threshold is chosen with it; a
// percentile threshold is not moved by it.
func TestTrainingUsesLabelledFeedback(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "train.csv")
	writeSensors(t, csv, 3000, 0.05, 3)
	train := func(method contract.ThresholdMethod, withFeedback bool) contract.TrainingResult {
		t.Helper()
		out := filepath.Join(t.TempDir(), "models")
		if withFeedback {
			writeFeedback(t, filepath.Join(out, contract.FeedbackDirName), 30)
		}
		req := request(csv, contract.Autoencoder)
		req.Threshold = contract.Threshold{Method: method}
		if method == contract.ThresholdPercentile {
			req.Threshold.Percentile = new(99.0)
		}
		o, err := Train(context.Background(), req, out, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return o.Result
	}
	with, without := train(contract.ThresholdBestF1, true), train(contract.ThresholdBestF1, false)
	if with.Metrics["feedbackMarks"] != 60 || with.Metrics["feedbackAUROC"] < 0.9 {
		t.Errorf("metrics %v; want 60 feedback marks and their AUROC above 0.9", with.Metrics)
	}
	if _, ok := without.Metrics["feedbackMarks"]; ok {
		t.Errorf("feedback metrics without feedback: %v", without.Metrics)
	}
	if with.Threshold == without.Threshold {
		t.Errorf("BestF1 chose %v with and without 60 labelled marks; want the marks in its calibration", with.Threshold)
	}
	p1, p2 := train(contract.ThresholdPercentile, true), train(contract.ThresholdPercentile, false)
	if p1.Threshold != p2.Threshold || p1.Metrics["feedbackMarks"] != 60 {
		t.Errorf("percentile threshold %v with feedback, %v without (feedback marks %v); want the same threshold, evaluated on the marks",
			p1.Threshold, p2.Threshold, p1.Metrics["feedbackMarks"])
	}
}
