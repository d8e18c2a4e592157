package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/train"
)

// writeSensors writes rows of 8 correlated sensor readings driven by 2 latent factors;
// about frac of them are anomalies that break the correlation.
func writeSensors(t *testing.T, path string, rows int, frac float64, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	var b strings.Builder
	b.WriteString("time,s1,s2,s3,s4,s5,s6,s7,s8,label\n")
	for i := 0; i < rows; i++ {
		z1, z2 := rng.NormFloat64(), rng.NormFloat64()
		v := []float64{z1, z2, z1 + z2, z1 - z2, 2 * z1, 0.5 * z2, z1 + 0.3*z2, -z2}
		label := 0
		if rng.Float64() < frac {
			label = 1
			for j := range v {
				v[j] += rng.NormFloat64() * 1.5
			}
		}
		fmt.Fprintf(&b, "%d", i)
		for _, x := range v {
			fmt.Fprintf(&b, ",%.5f", x*10+100+rng.NormFloat64()*0.3)
		}
		fmt.Fprintf(&b, ",%d\n", label)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func request(path string, model contract.ModelType) *contract.TrainingRequest {
	return &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector:      contract.ObjectKey{Namespace: "test", Name: "sensors"},
		Model:         contract.Model{Type: model, HiddenLayers: []int32{16}, LatentSize: new(int32(2)), Activation: "Tanh"},
		Preprocessing: contract.Preprocessing{Scaling: "Standardize"},
		Training:      contract.TrainingParameters{Epochs: 30, BatchSize: 32, LearningRate: 0.005, ValidationSplit: 0.2, Seed: 7},
		Threshold:     contract.Threshold{Method: contract.ThresholdPercentile, Percentile: new(99.0)},
		Data: contract.ResolvedData{CSV: &contract.ResolvedCSV{
			File: contract.FileLocation{Path: path}, TimestampColumn: "time", LabelColumn: "label", Delimiter: ",",
		}},
	}
}

// evaluateFile scores a labelled CSV the way `detector evaluate` does.
func evaluateFile(t *testing.T, dir, path string) evaluate.Metrics {
	t.Helper()
	m, err := artifact.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := data.LoadCSV(context.Background(), contract.FileLocation{Path: path},
		data.CSVOptions{Columns: m.Meta.Features, LabelColumn: "label"}, data.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	res, err := scoring.Score(m, tbl.X)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]float32, len(res))
	for i, r := range res {
		raw[i] = float32(r.Raw)
		if r.Anomaly != (r.Score > 1) || r.Score != r.Raw/m.Meta.Threshold.Value {
			t.Fatalf("row %d breaks the score contract: %+v threshold %v", i, r, m.Meta.Threshold.Value)
		}
	}
	return evaluate.Evaluate(raw, tbl.Labels, m.Meta.Threshold.Value)
}

func TestDetectorsFindInjectedAnomalies(t *testing.T) {
	dir := t.TempDir()
	trainCSV, testCSV := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeSensors(t, trainCSV, 4000, 0.03, 1)
	writeSensors(t, testCSV, 2000, 0.05, 2)
	for _, typ := range []contract.ModelType{contract.Autoencoder, contract.MLPClassifier} {
		t.Run(string(typ), func(t *testing.T) {
			var losses []float64
			out, err := Train(context.Background(), request(trainCSV, typ), filepath.Join(dir, string(typ)),
				Options{Progress: func(p train.Progress) { losses = append(losses, p.Loss) }})
			if err != nil {
				t.Fatal(err)
			}
			if len(losses) != 30 || !(losses[len(losses)-1] < losses[0]/2) {
				t.Fatalf("loss did not fall by half: %v", losses)
			}
			if _, err := os.Stat(filepath.Join(out.Dir, ReportFileName)); err != nil {
				t.Fatal("no training report:", err)
			}
			m := evaluateFile(t, out.Dir, testCSV)
			t.Logf("%s: AUROC %.4f AUPRC %.4f F1 %.3f at threshold %.4g", typ, m.AUROC, m.AUPRC, m.F1, m.Threshold)
			if m.AUROC <= 0.95 {
				t.Fatalf("AUROC %.4f; want > 0.95", m.AUROC)
			}
			if out.Result.Metrics["auroc"] <= 0.95 {
				t.Fatalf("held-out AUROC in the result %v", out.Result.Metrics)
			}
		})
	}
}

func TestSameSeedSameModel(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "train.csv")
	writeSensors(t, csv, 1000, 0.02, 3)
	weights := func(seed int64, out string) []float32 {
		req := request(csv, contract.Autoencoder)
		req.Training.Epochs, req.Training.Seed = 5, seed
		res, err := Train(context.Background(), req, filepath.Join(dir, out), Options{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := artifact.Load(res.Dir)
		if err != nil {
			t.Fatal(err)
		}
		var all []float32
		for _, p := range m.Network.Params {
			all = append(all, p.Data...)
		}
		return append(all, float32(m.Meta.Threshold.Value))
	}
	a, b, c := weights(11, "a"), weights(11, "b"), weights(12, "c")
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different weights or threshold")
	}
	if slices.Equal(a, c) {
		t.Fatal("a different seed gave the same weights")
	}
}

func TestCanceledTrainingWritesNothing(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "train.csv")
	writeSensors(t, csv, 2000, 0, 4)
	ctx, cancel := context.WithCancel(context.Background())
	req := request(csv, contract.Autoencoder)
	req.Training.Epochs = 1000
	out := filepath.Join(dir, "models")
	_, err := Train(ctx, req, out, Options{Progress: func(p train.Progress) {
		if p.Epoch == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, train.ErrCanceled) || !strings.Contains(err.Error(), "at epoch 3") {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 0 {
		t.Fatalf("a canceled run left %v behind", entries)
	}
}

func TestUnusableRequestsAreInputErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	writeSensors(t, good, 100, 0, 5)
	unlabelled := filepath.Join(dir, "nolabel.csv")
	if err := os.WriteFile(unlabelled, []byte("a,b\n1,2\n3,4\n5,6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		mutate func(*contract.TrainingRequest)
		want   string
	}{
		"missing file": {func(r *contract.TrainingRequest) { r.Data.CSV.File.Path = filepath.Join(dir, "nope.csv") }, "file does not exist"},
		"mlp without labels": {func(r *contract.TrainingRequest) {
			r.Model.Type = contract.MLPClassifier
			r.Data.CSV = &contract.ResolvedCSV{File: contract.FileLocation{Path: unlabelled}, Delimiter: ","}
		}, "MLPClassifier needs a label column"},
		"too few rows for a window": {func(r *contract.TrainingRequest) {
			r.Model = contract.Model{Type: contract.LSTMAutoencoder, Window: new(int32(200))}
		}, "training and the validation split need a window of 200 rows each"},
		"conv window not halved twice": {func(r *contract.TrainingRequest) {
			r.Model = contract.Model{Type: contract.ConvAutoencoder, Window: new(int32(18))}
		}, "needs a window divisible by 4; the window is 18 rows"},
		"unknown scaling": {func(r *contract.TrainingRequest) { r.Preprocessing.Scaling = "Log" }, "unknown scaling"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			req := request(good, contract.Autoencoder)
			tt.mutate(req)
			_, err := Train(context.Background(), req, filepath.Join(dir, "out"), Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !IsInputError(err) {
				t.Fatalf("err = %v (input error %v); want %q", err, IsInputError(err), tt.want)
			}
		})
	}
}
