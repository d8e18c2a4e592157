// Command skab runs the Skoltech Anomaly Benchmark's outlier-detection protocol as the
// published notebooks run it: for every file of valve1, valve2 and other, a detector
// trains on the first 400 rows (fault-free by construction), calibrates its threshold
// on them alone, and labels the rows after them; F1, false-alarm rate and missed-alarm
// rate are computed over the row labels of all files. It runs the published Conv-AE
// rebuilt from kadet's engine with its own decision rule (published.go), then the
// default lines: a Detector with only its model type set, whose first line gives the
// final F1.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/hack/bench/internal/cli"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/scoring"
)

var sensors = []string{"Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
	"Thermocouple", "Voltage", "Volume Flow RateRMS"}

// normalization is the trained lines' likelihood stage (nil: None).
var normalization *contract.Normalization

// trainRows is the protocol's training prefix of each file.
const trainRows = 400

func main() {
	dir := flag.String("data", "../shared/data/skab", "the SKAB data folder (valve1, valve2, other)")
	epochs := flag.Int("epochs", 30, "training epochs per file of the tuned lines")
	window := flag.Int("window", 16, "window in rows (seconds) of the tuned lines")
	models := flag.String("models", "", "comma-separated tuned lines to run too (LSTMAutoencoder, ConvAutoencoder): the settings this bench used before there were default lines")
	rules := flag.String("rules", "AllWindows,Causal", "comma-separated scoring rules each tuned line runs with")
	published := flag.Bool("published", true, "run the published Conv-AE rebuilt with its own decision rule")
	defaults := flag.String("defaults", "ConvAutoencoder", "comma-separated model types whose default line runs: a Detector with only its type set; the first gives the final line")
	defaultRules := flag.String("default-rules", "default,Causal", "scoring rules of the default lines (default: leave the rule out)")
	overrides := flag.String("model-json", "", "JSON merged into the default lines' spec.model before the presets (to try settings)")
	training := flag.String("training-json", "", "JSON merged into the default lines' training parameters (to try settings)")
	percentile := flag.Float64("percentile", 0, "threshold percentile of the default lines (0: the default)")
	norm := flag.String("normalization", "None", "likelihood stage of the trained lines (not the published Conv-AE): None (the default of a Detector on a file) or Likelihood")
	shortWindow := flag.Int("normalization-short-window", 0, "short window of the likelihood stage (0: the default)")
	flag.Parse()
	if *norm != contract.NormalizationNone {
		normalization = &contract.Normalization{Method: *norm}
		if *shortWindow > 0 {
			normalization.ShortWindow = new(int32(*shortWindow))
		}
	}
	if st, err := os.Stat(filepath.Join(*dir, "valve1")); err != nil || !st.IsDir() {
		fail(fmt.Errorf("no SKAB data in %s (want its valve1, valve2 and other folders): give --data", *dir))
	}
	work, err := os.MkdirTemp("", "kadet-skab-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(work)
	if *published {
		if _, err := runPublished(*dir, 1); err != nil {
			fail(err)
		}
	}
	for _, name := range cli.List(*models) {
		for _, rule := range cli.List(*rules) {
			m, err := modelSpec(name, int32(*window))
			if err != nil {
				fail(err)
			}
			m.ScoringRule = rule
			tr := contract.TrainingParameters{Epochs: int32(*epochs), BatchSize: 32, LearningRate: 0.003, ValidationSplit: 0.2, Seed: 1}
			// The threshold comes from the training rows only.
			th := contract.Threshold{Method: contract.ThresholdPercentile, Percentile: new(99.9)}
			fmt.Printf("tuned %s, window %d, scoring rule %s\n", m.Type, *m.Window, m.ScoringRule)
			if _, err := runModel(*dir, filepath.Join(work, name+"-"+rule), m, tr, th); err != nil {
				fail(err)
			}
		}
	}
	first := -1.0
	for _, name := range cli.List(*defaults) {
		for _, rule := range cli.List(*defaultRules) {
			m := contract.Model{Type: contract.ModelType(name)}
			if err := merge(*overrides, &m); err != nil {
				fail(fmt.Errorf("--model-json: %w", err))
			}
			if rule != "default" {
				m.ScoringRule = rule
			}
			tr := contract.TrainingParameters{Epochs: contract.DefaultEpochs, BatchSize: contract.DefaultBatchSize,
				LearningRate: contract.DefaultLearningRate, ValidationSplit: contract.DefaultValidationSplit, Seed: contract.DefaultSeed}
			if err := merge(*training, &tr); err != nil {
				fail(fmt.Errorf("--training-json: %w", err))
			}
			m = contract.ResolvedModel(m, contract.SourceRows)
			spec, _ := json.Marshal(m)
			fmt.Printf("default %s, scoring rule %s: model %s\n", name, rule, spec)
			f1, err := runModel(*dir, filepath.Join(work, "default-"+name+"-"+rule), m, tr, defaultThreshold(*percentile))
			if err != nil {
				fail(err)
			}
			if first < 0 {
				first = f1
			}
		}
	}
	fmt.Println("published (F1): Conv-AE 0.78, MSET 0.78, T2+Q 0.76, LSTM-AE 0.74, LSTM-VAE 0.56, Vanilla AE 0.39, Isolation Forest 0.29")
	if first >= 0 {
		fmt.Printf("skab F1: %.3f\n", first)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "skab:", err)
	os.Exit(1)
}

func merge(js string, v any) error {
	if js == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
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
func runModel(dir, work string, model contract.Model, tr contract.TrainingParameters, th contract.Threshold) (float64, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return 0, err
	}
	start := time.Now()
	var all evaluate.AtThresholdMetrics
	fmt.Printf("%-8s %6s %8s %6s %6s %6s\n", "folder", "files", "rows", "F1", "FAR", "MAR")
	for _, folder := range []string{"valve1", "valve2", "other"} {
		files, _ := filepath.Glob(filepath.Join(dir, folder, "*.csv"))
		slices.Sort(files)
		var m evaluate.AtThresholdMetrics
		rows := 0
		for _, f := range files {
			c, n, err := runFile(f, filepath.Join(work, folder+"-"+filepath.Base(f)), model, tr, th)
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

// runFile trains on the file's first rows and labels all of them; it counts the rows
// after the training prefix, as the published notebooks do.
func runFile(path, work string, model contract.Model, tr contract.TrainingParameters, th contract.Threshold) (evaluate.Counts, int, error) {
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
		Normalization: normalization,
		Detector:      contract.ObjectKey{Name: "skab"},
		Model:         model,
		Preprocessing: contract.Preprocessing{Scaling: "Standardize"},
		Training:      tr,
		Threshold:     th,
		Data: contract.ResolvedData{CSV: &contract.ResolvedCSV{
			File: contract.FileLocation{Path: trainCSV}, Columns: sensors, TimestampColumn: "datetime", Delimiter: ";",
		}},
	}
	out, err := pipeline.Train(context.Background(), req, work+".models", pipeline.Options{})
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
	threshold := m.Meta.Threshold.Value
	for i, r := range res {
		raw[i] = float32(r.Raw)
		if m.Meta.Normalization.Enabled() {
			raw[i], threshold = float32(r.Score), 1
		}
	}
	return evaluate.AtThreshold(raw[trainRows:], tbl.Labels[trainRows:], threshold).Counts, tbl.Rows() - trainRows, nil
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

func defaultThreshold(percentile float64) contract.Threshold {
	t := contract.Threshold{}
	if percentile > 0 {
		t.Percentile = &percentile
	}
	return contract.ResolvedThreshold(t, contract.SourceRows)
}
