package pipeline

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/hack/promtest"
)

// A sequence model trains on a Prometheus query split by entity: one model for every
// pod, windows within each pod's rows, and a pod with too few rows left out.
func TestTrainsOnPrometheusEntities(t *testing.T) {
	end := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	const minutes = 600
	var history []promtest.Series
	for p, pod := range []string{"a", "b", "young"} {
		n := minutes
		if pod == "young" {
			n = 12 // a pod that has only just started
		}
		v := make([]float64, n)
		for i := range v {
			v[i] = 50 + 10*math.Sin(2*math.Pi*float64(i)/60+float64(p))
		}
		history = append(history, promtest.Series{Metric: "requests", Labels: map[string]string{"pod": pod},
			Start: end.Add(-time.Duration(n-1) * time.Minute), Step: time.Minute, Values: v})
	}
	srv := promtest.Start(t, promtest.Options{History: history})
	req := &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector: contract.ObjectKey{Name: "pods"},
		Model:    contract.Model{Type: contract.ConvAutoencoder, Window: new(int32(16)), Channels: []int32{4, 8}},
		Training: contract.TrainingParameters{Epochs: 3, BatchSize: 32, LearningRate: 0.005, ValidationSplit: 0.1, Seed: 1},
		Data: contract.ResolvedData{Prometheus: &contract.ResolvedPrometheus{
			URL: srv.URL, Queries: []contract.PrometheusQuery{{Name: "requests", Query: "requests"}},
			Range: "10h", Step: "1m", End: end.Format(time.RFC3339), EntityLabels: []string{"pod"},
		}},
	}
	out, err := Train(context.Background(), req, filepath.Join(t.TempDir(), "m"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := out.Result.Metrics
	// Two pods of 600 rows (the range holds 601 steps, the history 600) are split
	// 540/60 each; the young pod's 12 rows cannot hold a window and the split.
	if m["trainRows"] != 2*540 || m["validationRows"] != 2*60 {
		t.Fatalf("train rows %v, validation rows %v; want 1080 and 120", m["trainRows"], m["validationRows"])
	}
	model, err := artifact.Load(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if model.Meta.ScoringRule != contract.ScoringCausal || !(model.Meta.Threshold.Value > 0) {
		t.Fatalf("rule %q threshold %v", model.Meta.ScoringRule, model.Meta.Threshold.Value)
	}
	// The model file records what it saw.
	if p := model.Meta.Prometheus; p == nil || p.URL != srv.URL || p.Rows != 2*600+12 || p.Entities != 3 ||
		!p.End.Equal(end) || p.Step != "1m0s" || len(p.Digest) != len("sha256:")+64 {
		t.Errorf("provenance %+v", p)
	}
	// So does the result, which becomes status.model.data.
	if d := out.Result.Data; d == nil || d.Rows != 1212 || d.Entities != 3 || d.Digest != model.Meta.Prometheus.Digest || !d.End.Equal(end) {
		t.Errorf("result data %+v", d)
	}
	// A Detector on Prometheus without a percentile aims at one alarm in 10,000 rows.
	if model.Meta.Threshold.Parameter != contract.DefaultStreamPercentile {
		t.Errorf("threshold percentile %v; want %v", model.Meta.Threshold.Parameter, contract.DefaultStreamPercentile)
	}
}
