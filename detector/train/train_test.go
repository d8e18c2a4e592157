package train

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kadet-dev/kadet/detector/model"
)

func data(rows, d int) []float32 {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, rows*d)
	for i := 0; i < rows; i++ {
		a := float32(rng.NormFloat64())
		for j := 0; j < d; j++ {
			x[i*d+j] = a*float32(j+1) + 0.1*float32(rng.NormFloat64())
		}
	}
	return x
}

func weights(n *model.Network) []float32 {
	var all []float32
	for _, p := range n.Params {
		all = append(all, p.Data...)
	}
	return all
}

func TestEarlyStoppingKeepsTheBestEpoch(t *testing.T) {
	x := data(300, 4)
	net, _ := model.New(model.Spec{Type: model.Autoencoder, Inputs: 4, Hidden: []int{6}, Latent: 1, Activation: model.Tanh}, 1)
	var atEpoch1 []float32
	// No later epoch can beat the first by 1e9: training stops after patience epochs
	// and the first epoch's weights come back.
	cfg := Config{Epochs: 50, BatchSize: 16, LearningRate: 0.01, Seed: 1, Patience: 3, MinDelta: 1e9}
	res, err := Fit(context.Background(), net, x, nil, SplitRows(300, 0.2, 1), cfg, func(p Progress) {
		if p.Epoch == 1 {
			atEpoch1 = weights(net)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stopped || res.Epochs != 4 || res.BestEpoch != 1 {
		t.Fatalf("result %+v", res)
	}
	if !slices.Equal(weights(net), atEpoch1) {
		t.Fatal("the best epoch's weights were not restored")
	}
}

func TestValidationLossIsReportedAndFalls(t *testing.T) {
	x := data(400, 4)
	net, _ := model.New(model.Spec{Type: model.Autoencoder, Inputs: 4, Hidden: []int{6}, Latent: 1, Activation: model.Tanh}, 1)
	var got []Progress
	res, err := Fit(context.Background(), net, x, nil, SplitRows(400, 0.25, 2), Config{Epochs: 20, BatchSize: 16, LearningRate: 0.01, Seed: 2},
		func(p Progress) { got = append(got, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 || got[19].Epoch != 20 || got[19].ETA != 0 || got[0].SamplesPerSecond <= 0 {
		t.Fatalf("progress %+v", got)
	}
	if !(got[19].ValLoss < got[0].ValLoss/2) || res.ValLoss != got[19].ValLoss {
		t.Fatalf("validation loss %v -> %v, result %v", got[0].ValLoss, got[19].ValLoss, res.ValLoss)
	}
}

func TestSplitRows(t *testing.T) {
	s := SplitRows(100, 0.1, 3)
	if len(s.Train) != 90 || len(s.Validation) != 10 {
		t.Fatalf("%d/%d", len(s.Train), len(s.Validation))
	}
	all := append(slices.Clone(s.Train), s.Validation...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatal("split is not a partition")
		}
	}
	if s2 := SplitRows(100, 0.1, 3); !slices.Equal(s.Validation, s2.Validation) {
		t.Fatal("split is not repeatable")
	}
	if s := SplitRows(5, 0.01, 1); len(s.Validation) != 1 {
		t.Fatal("a small positive split held out nothing")
	}
}
