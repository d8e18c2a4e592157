package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// writeMetric writes a univariate series (time,value,label): a cycle of period rows
// with noise, and a spike of +8 standard deviations at each row in spikes.
func writeMetric(t *testing.T, path string, rows, period int, spikes []int, seed uint64) []float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 9))
	var b strings.Builder
	b.WriteString("time,value,label\n")
	values := make([]float32, rows)
	for i := range rows {
		v := 10 + 3*math.Sin(2*math.Pi*float64(i)/float64(period)) + rng.NormFloat64()*0.2
		label := 0
		for _, s := range spikes {
			if i == s {
				v, label = v+8*2.1, 1
			}
		}
		values[i] = float32(v)
		fmt.Fprintf(&b, "%d,%.4f,%d\n", 1_700_000_000+300*i, v, label)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return values
}

func metricRequest(path string, m contract.Model, validation float64) *contract.TrainingRequest {
	return &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector:      contract.ObjectKey{Name: "metric"},
		Model:         m,
		Preprocessing: contract.Preprocessing{Scaling: "Standardize"},
		Training:      contract.TrainingParameters{Epochs: 15, BatchSize: 16, LearningRate: 0.005, ValidationSplit: validation, Seed: 3},
		Threshold:     contract.Threshold{Method: contract.ThresholdPercentile, Percentile: new(99.0)},
		Data: contract.ResolvedData{CSV: &contract.ResolvedCSV{
			File: contract.FileLocation{Path: path}, TimestampColumn: "time", LabelColumn: "label", Delimiter: ",",
		}},
	}
}

// Every model type trains on a series with exactly one value column and scores it:
// one finite score per row, and for the sequence models the spikes stand out.
func TestEveryModelTypeTrainsOnOneFeature(t *testing.T) {
	dir := t.TempDir()
	trainCSV := filepath.Join(dir, "train.csv")
	writeMetric(t, trainCSV, 480, 48, []int{100, 250, 400}, 1)
	spikes := []int{60, 130}
	test := writeMetric(t, filepath.Join(dir, "test.csv"), 192, 48, spikes, 2)
	for _, m := range []contract.Model{
		{Type: contract.Autoencoder, HiddenLayers: []int32{8}, LatentSize: new(int32(2))},
		{Type: contract.MLPClassifier, HiddenLayers: []int32{8}},
		{Type: contract.LSTMAutoencoder, Window: new(int32(16)), HiddenLayers: []int32{8}, LatentSize: new(int32(4))},
		{Type: contract.ConvAutoencoder, Window: new(int32(16)), Channels: []int32{4, 4}, KernelSize: new(int32(3)), LatentSize: new(int32(4))},
	} {
		t.Run(string(m.Type), func(t *testing.T) {
			out, err := Train(context.Background(), metricRequest(trainCSV, m, 0.2), filepath.Join(dir, string(m.Type)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			model, err := artifact.Load(out.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if f := model.Meta.Features; len(f) != 1 || f[0] != "value" {
				t.Fatalf("features %v", f)
			}
			res, err := scoring.Score(model, test)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != len(test) {
				t.Fatalf("%d results for %d rows", len(res), len(test))
			}
			var spiky, normal float64
			for i, r := range res {
				if math.IsNaN(r.Score) || math.IsInf(r.Score, 0) {
					t.Fatalf("row %d: score %v", i, r.Score)
				}
				if i == spikes[0] || i == spikes[1] {
					spiky += r.Score / 2
				} else {
					normal += r.Score / float64(len(res)-2)
				}
			}
			if m.Type == contract.LSTMAutoencoder || m.Type == contract.ConvAutoencoder {
				if spiky < 3*normal {
					t.Errorf("spikes score %.2f on average, other rows %.2f", spiky, normal)
				}
			}
		})
	}
}

// A series exactly one window long trains a sequence model when nothing is held out,
// and is scored as one window; a window of one row is refused with a reason.
func TestWindowEdgeCases(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "one-window.csv")
	values := writeMetric(t, path, 16, 8, nil, 4)
	for _, m := range []contract.Model{
		{Type: contract.LSTMAutoencoder, Window: new(int32(16)), HiddenLayers: []int32{4}, LatentSize: new(int32(2))},
		{Type: contract.ConvAutoencoder, Window: new(int32(16)), Channels: []int32{2, 2}, KernelSize: new(int32(3)), LatentSize: new(int32(2))},
	} {
		t.Run(string(m.Type)+" one window", func(t *testing.T) {
			out, err := Train(context.Background(), metricRequest(path, m, 0), filepath.Join(dir, string(m.Type)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			model, err := artifact.Load(out.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if res, err := scoring.Score(model, values); err != nil || len(res) != 16 {
				t.Fatalf("scored %d rows: %v", len(res), err)
			}
			if _, err := scoring.Score(model, values[:15]); err == nil || !strings.Contains(err.Error(), "fewer than the model's window of 16 rows") {
				t.Fatalf("15 rows: %v", err)
			}
		})
	}
	for name, tt := range map[string]struct {
		model contract.Model
		want  string
	}{
		"lstm window of one": {contract.Model{Type: contract.LSTMAutoencoder, Window: new(int32(1))}, "window of at least 2 rows"},
		"conv window of one": {contract.Model{Type: contract.ConvAutoencoder, Window: new(int32(1))}, "needs a window divisible by 4"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Train(context.Background(), metricRequest(path, tt.model, 0), filepath.Join(dir, "x"), Options{})
			if err == nil || !IsInputError(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want an input error saying %q", err, tt.want)
			}
		})
	}
}

// The scoring rule a sequence model trains with (Causal unless the spec says) is the
// one its threshold is calibrated on, is written into its model file and reported in
// its result.
func TestScoringRuleIsRecorded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "metric.csv")
	writeMetric(t, path, 200, 48, nil, 5)
	lstm := contract.Model{Type: contract.LSTMAutoencoder, Window: new(int32(8)), HiddenLayers: []int32{4}, LatentSize: new(int32(2))}
	for rule, want := range map[string]string{"": contract.ScoringCausal, contract.ScoringAllWindows: contract.ScoringAllWindows} {
		m := lstm
		m.ScoringRule = rule
		out, err := Train(context.Background(), metricRequest(path, m, 0.2), filepath.Join(dir, "m"+rule), Options{})
		if err != nil {
			t.Fatal(err)
		}
		model, err := artifact.Load(out.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if model.Meta.ScoringRule != want || out.Result.ScoringRule != want {
			t.Errorf("rule %q: model file says %q, result %q; want %q", rule, model.Meta.ScoringRule, out.Result.ScoringRule, want)
		}
	}
	for name, m := range map[string]contract.Model{
		"rule for a row model": {Type: contract.Autoencoder, ScoringRule: contract.ScoringCausal},
		"unknown rule":         {Type: contract.LSTMAutoencoder, Window: new(int32(8)), ScoringRule: "Newest"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Train(context.Background(), metricRequest(path, m, 0.2), filepath.Join(dir, "x"), Options{})
			if err == nil || !IsInputError(err) || !strings.Contains(err.Error(), "rule") {
				t.Fatalf("err = %v; want an input error about the rule", err)
			}
		})
	}
}

func TestHeldOutGap(t *testing.T) {
	fit := make([]float32, 101)
	held := make([]float32, 11)
	for i := range fit {
		fit[i] = float32(i) // 90th percentile 90
	}
	for i := range held {
		held[i] = float32(i * 30) // 90th percentile 270: three times the training rows'
	}
	got := scaled(fit, heldOutGap(fit, held))
	if len(got) != len(fit) || got[10] != 30 || got[100] != 300 {
		t.Errorf("scaled %v ... %v; want the training scores times 3", got[10], got[100])
	}
	// Held-out rows that score lower do not scale the training rows down.
	if gap := heldOutGap(fit, []float32{1, 2}); gap != 1 {
		t.Errorf("gap %v for lower held-out scores, want 1", gap)
	}
	if gap := heldOutGap(fit, nil); gap != 1 {
		t.Errorf("gap %v without held-out rows, want 1", gap)
	}
	// A model that fits its training rows exactly (a flat series) has no finite gap:
	// the training scores are kept as they are, never made NaN.
	zeros := make([]float32, 50)
	if gap := heldOutGap(zeros, held); gap != 1 {
		t.Errorf("gap %v over zero training scores, want 1", gap)
	}
	if gap := heldOutGap(zeros, zeros); gap != 1 {
		t.Errorf("gap %v over zero scores, want 1", gap)
	}
}

// A sequence model's file holds the flat-line limit its training data gives (a
// continuous series: the minimum), a stuck stretch of a new series is flagged from the
// first row past it, naming the feature, and stuckValues: Ignore (or a row model)
// records none.
func TestStuckValuesAreFlaggedPastTheTrainingLimit(t *testing.T) {
	dir := t.TempDir()
	trainCSV := filepath.Join(dir, "train.csv")
	writeMetric(t, trainCSV, 480, 48, nil, 1)
	test := writeMetric(t, filepath.Join(dir, "test.csv"), 192, 48, nil, 2)
	const from, n = 100, 30 // rows from+1 .. from+n-1 repeat row from's value
	for i := from + 1; i < from+n; i++ {
		test[i] = test[from]
	}
	m := contract.Model{Type: contract.ConvAutoencoder, Window: new(int32(16)), Channels: []int32{4, 4}, KernelSize: new(int32(3)),
		LatentSize: new(int32(4)), ScoringRule: contract.ScoringCausal}
	out, err := Train(context.Background(), metricRequest(trainCSV, m, 0.2), filepath.Join(dir, "flag"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	model, err := artifact.Load(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := model.Meta.FlatLimits; len(got) != 1 || got[0] != 8 {
		t.Fatalf("flat-line limits %v, want [8] for a continuous series", got)
	}
	res, err := scoring.Score(model, test)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n+3; i++ {
		stuck := i >= from+8 && i < from+n // the run is 9 rows long at from+8
		if (res[i].Stuck != nil) != stuck || stuck && (!res[i].Anomaly || res[i].Stuck[0] != "value") {
			t.Errorf("row %d (run of %d): %+v", i, i-from+1, res[i])
		}
	}

	m.StuckValues = contract.StuckIgnore
	out, err = Train(context.Background(), metricRequest(trainCSV, m, 0.2), filepath.Join(dir, "ignore"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if model, err = artifact.Load(out.Dir); err != nil || model.Meta.FlatLimits != nil {
		t.Fatalf("stuckValues Ignore: limits %v (%v), want none", model.Meta.FlatLimits, err)
	}
	dense := contract.Model{Type: contract.Autoencoder, StuckValues: contract.StuckFlag}
	var spec *SpecError
	if _, err := Train(context.Background(), metricRequest(trainCSV, dense, 0.2), filepath.Join(dir, "dense"), Options{}); !errors.As(err, &spec) {
		t.Fatalf("stuckValues on an Autoencoder: %v, want a spec error", err)
	}
}
