package pipeline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// writeSeries writes a 3-sensor series: two phase-shifted periodic signals and their
// sum, plus noise. From row anomalyFrom on, it injects a level shift (rows 40-59 after
// it) and isolated spikes, and labels those rows. Rows come shuffled in the file, so the
// timestamp column must restore their order.
func writeSeries(t *testing.T, path string, rows, anomalyFrom int, seed uint64) []int {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	type row struct {
		ts    int
		v     [3]float64
		label int
	}
	var anomalies []int
	all := make([]row, rows)
	for i := range all {
		a, b := math.Sin(float64(i)*0.2), math.Cos(float64(i)*0.13)
		r := row{ts: 1700000000 + i, v: [3]float64{a, b, a + b}}
		for j := range r.v {
			r.v[j] += rng.NormFloat64() * 0.05
		}
		if k := i - anomalyFrom; k >= 0 {
			switch {
			case k >= 40 && k < 60: // level shift of one sensor
				r.v[1] += 1.5
				r.label = 1
			case k%97 == 13: // spike
				r.v[2] += 4
				r.label = 1
			}
		}
		if r.label == 1 {
			anomalies = append(anomalies, r.ts)
		}
		all[i] = r
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var b strings.Builder
	b.WriteString("ts;s1;s2;s3;anomaly\n")
	for _, r := range all {
		fmt.Fprintf(&b, "%d;%.4f;%.4f;%.4f;%d\n", r.ts, r.v[0], r.v[1], r.v[2], r.label)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return anomalies
}

func TestSequenceModelsFindShiftsAndSpikes(t *testing.T) {
	dir := t.TempDir()
	trainCSV, testCSV := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeSeries(t, trainCSV, 1200, math.MaxInt, 1)
	injected := writeSeries(t, testCSV, 600, 100, 2)
	for _, model := range []contract.Model{
		{Type: contract.LSTMAutoencoder, HiddenLayers: []int32{16}, LatentSize: new(int32(6)),
			Window: new(int32(16)), Stride: new(int32(2)), Activation: "Tanh"},
		{Type: contract.ConvAutoencoder, Channels: []int32{8, 16}, KernelSize: new(int32(5)), LatentSize: new(int32(6)),
			Window: new(int32(16)), Stride: new(int32(2)), Activation: "Tanh"},
	} {
		t.Run(string(model.Type), func(t *testing.T) { findShiftsAndSpikes(t, model, trainCSV, testCSV, injected) })
	}
}

// findShiftsAndSpikes trains model on trainCSV's series and checks that it scores the
// injected rows of testCSV highest, by their timestamps.
func findShiftsAndSpikes(t *testing.T, model contract.Model, trainCSV, testCSV string, injected []int) {
	dir := t.TempDir()
	req := &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector:      contract.ObjectKey{Name: "pump"},
		Model:         model,
		Preprocessing: contract.Preprocessing{Scaling: "Standardize"},
		Training:      contract.TrainingParameters{Epochs: 25, BatchSize: 32, LearningRate: 0.005, ValidationSplit: 0.2, Seed: 1},
		Threshold:     contract.Threshold{Method: contract.ThresholdPercentile, Percentile: new(99.0)},
		Data: contract.ResolvedData{CSV: &contract.ResolvedCSV{
			File: contract.FileLocation{Path: trainCSV}, Columns: []string{"s1", "s2", "s3"},
			TimestampColumn: "ts", Delimiter: ";",
		}},
	}
	out, err := Train(context.Background(), req, filepath.Join(dir, "models"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := artifact.Load(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := data.LoadCSV(context.Background(), contract.FileLocation{Path: testCSV},
		data.CSVOptions{Columns: m.Meta.Features, TimestampColumn: "ts", LabelColumn: "anomaly", Delimiter: ';'}, data.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	tbl.SortByTime()
	res, err := scoring.Score(m, tbl.X)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != tbl.Rows() {
		t.Fatalf("%d scores for %d rows: the last rows must be scored too", len(res), tbl.Rows())
	}
	raw := make([]float32, len(res))
	for i, r := range res {
		raw[i] = float32(r.Raw)
	}
	auroc := evaluate.AUROC(raw, tbl.Labels)
	// The rows scored highest are the injected ones, found by their timestamps.
	order := make([]int, len(raw))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(math.Copysign(1, float64(raw[b]-raw[a]))) })
	hits := 0
	for _, i := range order[:len(injected)] {
		ts, err := strconv.Atoi(tbl.Timestamps[i])
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(injected, ts) {
			hits++
		}
	}
	t.Logf("row AUROC %.4f; %d of the %d top-scored timestamps are injected anomalies", auroc, hits, len(injected))
	if auroc <= 0.95 {
		t.Fatalf("AUROC %.4f; want > 0.95", auroc)
	}
	if hits < len(injected)*3/4 {
		t.Fatalf("only %d of the %d top-scored rows are the injected anomalies", hits, len(injected))
	}
}
