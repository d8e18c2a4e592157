// Command speed compares kadet's dense autoencoder with PyTorch's on MNIST: one epoch
// of training (784-256-64-256-784, batch 128, Adam, MSE) by bin/detector and by
// torch_ae.py, alternating runs, then batch-256 scoring of the 10k test images. Then
// training steps of the ConvAutoencoder a Detector on MNIST gets by default (batch
// 128) and of the default LSTMAutoencoder on SKAB-shaped windows (32 rows of 8
// features, batch 64), in this process against torch_models.py, alternating too. It
// prints samples/s per run, the BLAS kernels in use and the ratios of the medians.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/hack/mnist"
)

func main() {
	// The benchmark times kadet as it runs: with the kernels it chooses for itself.
	choice := model.ChooseKernels()
	if choice != "" {
		fmt.Println("kadet kernels:", choice)
	}
	detector := flag.String("detector", "bin/detector", "detector binary to time")
	python := flag.String("python", "/usr/bin/python3", "python with torch (Debian python3-torch)")
	script := flag.String("torch-script", "hack/bench/speed/torch_ae.py", "the PyTorch reference script")
	models := flag.String("torch-models", "hack/bench/speed/torch_models.py", "the PyTorch reference script of the conv and LSTM lines")
	steps := flag.Int("steps", 100, "timed training steps of the conv and LSTM lines")
	runs := flag.Int("runs", 3, "alternating runs of each")
	flag.Parse()
	if err := run(*detector, *python, *script, *models, *runs, *steps); err != nil {
		fmt.Fprintln(os.Stderr, "speed:", err)
		os.Exit(1)
	}
}

func run(detector, python, script, models string, runs, steps int) error {
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

	fmt.Printf("kadet BLAS: %s (kernels %s); OPENBLAS_NUM_THREADS=%q; PyTorch with OMP_WAIT_POLICY=PASSIVE\n",
		model.BLAS, model.BLASKernels(), os.Getenv("OPENBLAS_NUM_THREADS"))
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

	fmt.Printf("\n%-4s %18s %18s %18s %18s\n", "run", "kadet conv/s", "torch conv/s", "kadet lstm/s", "torch lstm/s")
	images, err := mnistImages(trainImages, 12800)
	if err != nil {
		return err
	}
	var kc, pc, kl, pl []float64
	for i := 1; i <= runs; i++ {
		c, err := trainSteps(convSpec, images, 128, steps)
		if err != nil {
			return err
		}
		l, err := trainSteps(lstmSpec, seqWindows(6400, 32, 8), 64, steps)
		if err != nil {
			return err
		}
		torch, err := torchModels(python, models, trainImages, steps)
		if err != nil {
			return err
		}
		kc, pc, kl, pl = append(kc, c), append(pc, torch.Conv), append(kl, l), append(pl, torch.LSTM)
		fmt.Printf("%-4d %18.0f %18.0f %18.0f %18.0f\n", i, c, torch.Conv, l, torch.LSTM)
	}
	fmt.Printf("median %15.0f %18.0f %18.0f %18.0f\n", median(kc), median(pc), median(kl), median(pl))
	fmt.Printf("train ratio (kadet/pytorch): %.2f\n", median(kt)/median(pt))
	fmt.Printf("score ratio (kadet/pytorch): %.2f\n", median(ks)/median(ps))
	fmt.Printf("conv train ratio (kadet/pytorch): %.2f\n", median(kc)/median(pc))
	fmt.Printf("lstm train ratio (kadet/pytorch): %.2f\n", median(kl)/median(pl))
	return nil
}

// The conv and LSTM lines' networks: what a Detector gets by default for MNIST
// images and for windows of an 8-feature series.
var (
	convSpec = model.Spec{Type: model.ConvAutoencoder, Inputs: 784, ImageRows: 28, ImageCols: 28, Channels: []int{16, 32},
		Kernel: 3, Latent: 32, Activation: model.ReLU}
	lstmSpec = model.Spec{Type: model.LSTMAutoencoder, Inputs: 32 * 8, Window: 32, Hidden: []int{32}, Latent: 16,
		Activation: model.ReLU}
)

// trainSteps times steps Adam steps (after three untimed ones) of a new network of
// spec on batches taken in turn from a shuffled x, and returns samples/s.
func trainSteps(spec model.Spec, x []float32, batch, steps int) (float64, error) {
	net, err := model.New(spec, 1)
	if err != nil {
		return 0, err
	}
	tr, err := model.NewTrainer(net, batch, 0.001)
	if err != nil {
		return 0, err
	}
	defer tr.Close()
	d := spec.Inputs
	n := len(x) / d
	perm := rand.New(rand.NewPCG(1, 1)).Perm(n)
	xb := make([]float32, batch*d)
	step := func(s int) error {
		i := (s * batch) % (n - batch + 1)
		for k, r := range perm[i : i+batch] {
			copy(xb[k*d:(k+1)*d], x[r*d:(r+1)*d])
		}
		_, err := tr.Step(xb, nil)
		return err
	}
	for s := range 3 {
		if err := step(s); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for s := range steps {
		if err := step(s); err != nil {
			return 0, err
		}
	}
	return float64(steps*batch) / time.Since(start).Seconds(), nil
}

// mnistImages is the first n training images, pixels in [0, 1].
func mnistImages(path string, n int) ([]float32, error) {
	tbl, err := mnist.Images(path)
	if err != nil {
		return nil, err
	}
	return tbl.X[:n*len(tbl.Columns)], nil
}

// seqWindows is n windows of w rows of f sine waves, as torch_models.py makes them.
func seqWindows(n, w, f int) []float32 {
	series := make([]float32, (n+w)*f)
	for t := range n + w {
		for j := range f {
			series[t*f+j] = float32(math.Sin(2*math.Pi*float64(t)/float64(20+7*j)) + 0.1*math.Cos(float64(t)*float64(j+1)))
		}
	}
	out := make([]float32, 0, n*w*f)
	for i := range n {
		out = append(out, series[i*f:(i+w)*f]...)
	}
	return out
}

type torchModelsResult struct {
	Conv float64 `json:"conv_train_samples_per_s"`
	LSTM float64 `json:"lstm_train_samples_per_s"`
}

func torchModels(python, script, train string, steps int) (*torchModelsResult, error) {
	cmd := exec.Command(python, script, "--train", train, "--conv-steps", strconv.Itoa(steps), "--lstm-steps", strconv.Itoa(steps))
	cmd.Env = append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s (install Debian's python3-torch)", python, script, err, stderr.String())
	}
	res := &torchModelsResult{}
	return res, json.Unmarshal(stdout.Bytes(), res)
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
