// Command skab runs the Skoltech Anomaly Benchmark's outlier-detection protocol: for
// every file of valve1, valve2 and other, a detector trains on the first 400 rows
// (fault-free by construction), calibrates its threshold on them alone, and labels
// every row of the file; F1, false-alarm rate and missed-alarm rate are computed over
// the row labels of all files, as the published leaderboard does. Two detectors take
// turns on the same windows and training settings: the LSTMAutoencoder, whose F1 is the
// final line, and the ConvAutoencoder over windows, with the published Conv-AE's blocks
// (32 and 16 channels, kernel 7, ReLU). Each runs under both scoring rules: AllWindows
// (a row's mean error over every window holding it) and Causal (its error in the
// window ending at it, as a watching detector must). The published notebooks use a
// rule of their own (a row is flagged when every window holding it is), not run here.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/scoring"
)

var sensors = []string{"Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
	"Thermocouple", "Voltage", "Volume Flow RateRMS"}

// trainRows is the protocol's training prefix of each file.
const trainRows = 400

func main() {
	dir := flag.String("data", "../shared/data/skab", "the SKAB data folder (valve1, valve2, other)")
	epochs := flag.Int("epochs", 30, "training epochs per file")
	window := flag.Int("window", 16, "window in rows (seconds)")
	models := flag.String("models", "LSTMAutoencoder,ConvAutoencoder", "comma-separated detectors to run; the first gives the final line")
	rules := flag.String("rules", "AllWindows,Causal", "comma-separated scoring rules each detector runs with; the first gives the final line")
	published := flag.Bool("published", true, "also run the published Conv-AE rebuilt with its own decision rule")
	only := flag.Bool("published-only", false, "run the published Conv-AE alone")
	flag.Parse()
	if *published || *only {
		if _, err := runPublished(*dir, 1); err != nil {
			fmt.Fprintln(os.Stderr, "skab:", err)
			os.Exit(1)
		}
		if *only {
			return
		}
	}
	if err := run(*dir, strings.Split(*models, ","), strings.Split(*rules, ","), int32(*epochs), int32(*window)); err != nil {
		fmt.Fprintln(os.Stderr, "skab:", err)
		os.Exit(1)
	}
}

func run(dir string, models, rules []string, epochs, window int32) error {
	if st, err := os.Stat(filepath.Join(dir, "valve1")); err != nil || !st.IsDir() {
		return fmt.Errorf("no SKAB data in %s (want its valve1, valve2 and other folders): give --data", dir)
	}
	work, err := os.MkdirTemp("", "kadet-skab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var first float64
	for i, name := range models {
		for j, rule := range rules {
			m, err := modelSpec(name, window)
			if err != nil {
				return err
			}
			m.ScoringRule = rule
			f1, err := runModel(dir, filepath.Join(work, name+"-"+rule), m, epochs)
			if err != nil {
				return err
			}
			if i == 0 && j == 0 {
				first = f1
			}
		}
	}
	fmt.Println("published (F1): Conv-AE 0.78, MSET 0.78, T2+Q 0.76, LSTM-AE 0.74, LSTM-VAE 0.56, Vanilla AE 0.39, Isolation Forest 0.29")
	fmt.Printf("skab F1: %.3f\n", first)
	return nil
}

// modelSpec is the detector a name stands for in this benchmark.
func modelSpec(name string, window int32) (contract.Model, error) {
	switch contract.ModelType(name) {
	case contract.LSTMAutoencoder:
		return contract.Model{Type: contract.LSTMAutoencoder, HiddenLayers: []int32{32}, LatentSize: new(int32(8)),
			Window: &window, Stride: new(int32(1)), Activation: "Tanh"}, nil
	case contract.ConvAutoencoder:
		return contract.Model{Type: contract.ConvAutoencoder, Channels: []int32{32, 16}, KernelSize: new(int32(7)),
			LatentSize: new(int32(16)), Window: &window, Stride: new(int32(1)), Activation: "ReLU"}, nil
	}
	return contract.Model{}, fmt.Errorf("--models: %q is not LSTMAutoencoder or ConvAutoencoder", name)
}

// runModel runs the protocol for one detector, prints its table and returns its F1.
func runModel(dir, work string, model contract.Model, epochs int32) (float64, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return 0, err
	}
	start := time.Now()
	fmt.Printf("%s, window %d, scoring rule %s\n", model.Type, *model.Window, model.ScoringRule)
	var all evaluate.AtThresholdMetrics
	fmt.Printf("%-8s %6s %8s %6s %6s %6s\n", "folder", "files", "rows", "F1", "FAR", "MAR")
	for _, folder := range []string{"valve1", "valve2", "other"} {
		files, _ := filepath.Glob(filepath.Join(dir, folder, "*.csv"))
		slices.Sort(files)
		var m evaluate.AtThresholdMetrics
		rows := 0
		for _, f := range files {
			c, n, err := runFile(f, filepath.Join(work, folder+"-"+filepath.Base(f)), model, epochs)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", f, err)
			}
			m.TP, m.FP, m.TN, m.FN = m.TP+c.TP, m.FP+c.FP, m.TN+c.TN, m.FN+c.FN
			rows += n
		}
		all.TP, all.FP, all.TN, all.FN = all.TP+m.TP, all.FP+m.FP, all.TN+m.TN, all.FN+m.FN
		f1, far, mar := rates(m.Counts)
		fmt.Printf("%-8s %6d %8d %6.3f %6.3f %6.3f\n", folder, len(files), rows, f1, far, mar)
	}
	f1, far, mar := rates(all.Counts)
	fmt.Printf("%-8s %6s %8s %6.3f %6.3f %6.3f\n", "all", "", "", f1, far, mar)
	fmt.Printf("run time %s\n\n", time.Since(start).Round(time.Second))
	return f1, nil
}

func rates(c evaluate.Counts) (f1, far, mar float64) {
	p := float64(c.TP) / max(1, float64(c.TP+c.FP))
	r := float64(c.TP) / max(1, float64(c.TP+c.FN))
	if p+r > 0 {
		f1 = 2 * p * r / (p + r)
	}
	return f1, float64(c.FP) / max(1, float64(c.FP+c.TN)), float64(c.FN) / max(1, float64(c.FN+c.TP))
}

// runFile trains on the file's first rows and labels all of them.
func runFile(path, work string, model contract.Model, epochs int32) (evaluate.Counts, int, error) {
	head, err := firstLines(path, trainRows+1)
	if err != nil {
		return evaluate.Counts{}, 0, err
	}
	trainCSV := work + ".train.csv"
	if err := os.WriteFile(trainCSV, []byte(head), 0o644); err != nil {
		return evaluate.Counts{}, 0, err
	}
	req := &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector:      contract.ObjectKey{Name: "skab"},
		Model:         model,
		Preprocessing: contract.Preprocessing{Scaling: "Standardize"},
		Training:      contract.TrainingParameters{Epochs: epochs, BatchSize: 32, LearningRate: 0.003, ValidationSplit: 0.2, Seed: 1},
		// The threshold comes from the training rows only: the largest held-out score.
		Threshold: contract.Threshold{Method: contract.ThresholdPercentile, Percentile: new(99.9)},
		Data: contract.ResolvedData{CSV: &contract.ResolvedCSV{
			File: contract.FileLocation{Path: trainCSV}, Columns: sensors, TimestampColumn: "datetime", Delimiter: ";",
		}},
	}
	out, err := pipeline.Train(context.Background(), req, work+".models", nil)
	if err != nil {
		return evaluate.Counts{}, 0, err
	}
	m, err := artifact.Load(out.Dir)
	if err != nil {
		return evaluate.Counts{}, 0, err
	}
	tbl, err := data.LoadCSV(context.Background(), contract.FileLocation{Path: path}, data.CSVOptions{
		Columns: sensors, TimestampColumn: "datetime", LabelColumn: "anomaly", Delimiter: ';'}, data.DefaultLimits)
	if err != nil {
		return evaluate.Counts{}, 0, err
	}
	res, err := scoring.Score(m, tbl.X)
	if err != nil {
		return evaluate.Counts{}, 0, err
	}
	raw := make([]float32, len(res))
	for i, r := range res {
		raw[i] = float32(r.Raw)
	}
	return evaluate.AtThreshold(raw, tbl.Labels, m.Meta.Threshold.Value).Counts, tbl.Rows(), nil
}

func firstLines(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for i := 0; i < n && sc.Scan(); i++ {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String(), sc.Err()
}
