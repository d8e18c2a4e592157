// Command speed compares kadet's dense autoencoder with PyTorch's on MNIST: one epoch
// of training (784-256-64-256-784, batch 128, Adam, MSE) by bin/detector and by
// torch_ae.py, alternating runs, then batch-256 scoring of the 10k test images. It
// prints samples/s per run and the ratios of the medians.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/hack/mnist"
)

func main() {
	detector := flag.String("detector", "bin/detector", "detector binary to time")
	python := flag.String("python", "/usr/bin/python3", "python with torch (Debian python3-torch)")
	script := flag.String("torch-script", "hack/bench/speed/torch_ae.py", "the PyTorch reference script")
	runs := flag.Int("runs", 3, "alternating runs of each")
	flag.Parse()
	if err := run(*detector, *python, *script, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "speed:", err)
		os.Exit(1)
	}
}

func run(detector, python, script string, runs int) error {
	dir, err := mnist.Dir()
	if err != nil {
		return err
	}
	trainImages, testImages := filepath.Join(dir, mnist.TrainImages), filepath.Join(dir, mnist.TestImages)
	work, err := os.MkdirTemp("", "kadet-speed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	spec := filepath.Join(work, "spec.json")
	b, err := json.Marshal(mnist.AutoencoderRequest(dir, 1, 0))
	if err != nil {
		return err
	}
	if err := os.WriteFile(spec, b, 0o644); err != nil {
		return err
	}

	fmt.Printf("kadet BLAS: %s; OPENBLAS_NUM_THREADS=%q; PyTorch with OMP_WAIT_POLICY=PASSIVE\n", model.BLAS, os.Getenv("OPENBLAS_NUM_THREADS"))
	fmt.Printf("%-4s %18s %18s %18s %18s\n", "run", "kadet train/s", "torch train/s", "kadet score/s", "torch score/s")
	var kt, pt, ks, ps []float64
	for i := 1; i <= runs; i++ {
		models := filepath.Join(work, fmt.Sprintf("models-%d", i))
		res, err := kadetTrain(detector, spec, models)
		if err != nil {
			return err
		}
		kScore, err := kadetScore(models, dir)
		if err != nil {
			return err
		}
		torch, err := torchRun(python, script, trainImages, testImages)
		if err != nil {
			return err
		}
		kt, pt = append(kt, res.Metrics["samplesPerSecond"]), append(pt, torch.Train)
		ks, ps = append(ks, kScore), append(ps, torch.Score)
		fmt.Printf("%-4d %18.0f %18.0f %18.0f %18.0f\n", i, kt[i-1], pt[i-1], ks[i-1], ps[i-1])
	}
	fmt.Printf("median %15.0f %18.0f %18.0f %18.0f\n", median(kt), median(pt), median(ks), median(ps))
	fmt.Printf("train ratio (kadet/pytorch): %.2f\n", median(kt)/median(pt))
	fmt.Printf("score ratio (kadet/pytorch): %.2f\n", median(ks)/median(ps))
	return nil
}

// kadetTrain runs `detector train` and returns its result line; samplesPerSecond
// covers the training loop, as the PyTorch figure does.
func kadetTrain(detector, spec, out string) (*contract.TrainingResult, error) {
	cmd := exec.Command(detector, "train", "--spec", spec, "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s train: %w\n%s", detector, err, stderr.String())
	}
	res := &contract.TrainingResult{}
	return res, json.Unmarshal(stdout.Bytes(), res)
}

// kadetScore scores the test images in batches of 256 through the scoring path the
// CLI and server share, and returns samples/s.
func kadetScore(models, mnistDir string) (float64, error) {
	path, err := artifact.Path(models, "")
	if err != nil {
		return 0, err
	}
	m, err := artifact.Load(path)
	if err != nil {
		return 0, err
	}
	tbl, err := mnist.TestSet(mnistDir)
	if err != nil {
		return 0, err
	}
	d := len(tbl.Columns)
	// One untimed batch first, as the PyTorch script does: the first product starts
	// OpenBLAS's threads and touches fresh memory.
	if _, err := scoring.Score(m, tbl.X[:256*d]); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < tbl.Rows(); i += 256 {
		end := min(i+256, tbl.Rows())
		if _, err := scoring.Score(m, tbl.X[i*d:end*d]); err != nil {
			return 0, err
		}
	}
	return float64(tbl.Rows()) / time.Since(start).Seconds(), nil
}

type torchResult struct {
	Train float64 `json:"train_samples_per_s"`
	Score float64 `json:"score_samples_per_s"`
}

func torchRun(python, script, train, test string) (*torchResult, error) {
	cmd := exec.Command(python, script, "--train", train, "--test", test)
	cmd.Env = append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s (install Debian's python3-torch)", python, script, err, stderr.String())
	}
	res := &torchResult{}
	return res, json.Unmarshal(stdout.Bytes(), res)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
