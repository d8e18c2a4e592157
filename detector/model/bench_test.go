package model

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// mnistShape is the speed benchmark's network: 784-256-64-256-784 at batch 128.
func mnistShape(b testing.TB) (*Network, []float32) {
	net, err := New(Spec{Type: Autoencoder, Inputs: 784, Hidden: []int{256}, Latent: 64, Activation: ReLU}, 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 128*784)
	for i := range x {
		x[i] = rng.Float32()
	}
	return net, x
}

// BenchmarkTrainStep is one Adam step of the speed benchmark's network, by the trainer
// training uses (direct BLAS passes) and by the Gorgonia graph.
func BenchmarkTrainStep(b *testing.B) {
	b.Run("dense", func(b *testing.B) {
		net, x := mnistShape(b)
		tr, err := NewTrainer(net, 128, 0.001)
		if err != nil {
			b.Fatal(err)
		}
		benchSteps(b, tr, x)
	})
	b.Run("graph", func(b *testing.B) {
		net, x := mnistShape(b)
		tr, err := newGraphTrainer(net, 128, 0.001)
		if err != nil {
			b.Fatal(err)
		}
		benchSteps(b, tr, x)
	})
}

func benchSteps(b *testing.B, tr Trainer, x []float32) {
	defer tr.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Step(x, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*tr.BatchSize())/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkScores256 scores a batch of 256 rows with the same network.
func BenchmarkScores256(b *testing.B) {
	net, x := mnistShape(b)
	x = append(x, x...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		net.Scores(x, 256)
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkAdamStep is the graph trainer's optimiser update of the speed benchmark's
// network alone.
func BenchmarkAdamStep(b *testing.B) {
	net, x := mnistShape(b)
	tr, err := newGraphTrainer(net, 128, 0.001)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	// One backward pass leaves real gradients; the step zeroes them, so each iteration
	// puts them back (a copy of 1.7 MB, a few percent of the time) rather than updating
	// from zeros, whose decaying moments would turn subnormal and slow.
	copy(tr.xT.Data().([]float32), x)
	if err := tr.vm.RunAll(); err != nil {
		b.Fatal(err)
	}
	var grads, saved [][]float32
	for _, n := range tr.weights {
		g, err := n.Grad()
		if err != nil {
			b.Fatal(err)
		}
		grads = append(grads, g.Data().([]float32))
		saved = append(saved, slices.Clone(g.Data().([]float32)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range grads {
			copy(grads[k], saved[k])
		}
		if err := tr.solver.step(tr.weights); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDenseParts splits the dense trainer's step: the forward and backward
// passes, and the optimiser's update.
func BenchmarkDenseParts(b *testing.B) {
	net, x := mnistShape(b)
	tr := newDenseTrainer(net, 128, 0.001)
	defer tr.Close()
	b.Run("gradients", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := tr.gradients(x, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("adam", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			tr.opt.step()
		}
	})
}

// BenchmarkLSTMStep is one Adam step of the default LSTMAutoencoder on windows of 32
// rows of 8 features at batch 64, by the LSTM trainer and through the graph.
func BenchmarkLSTMStep(b *testing.B) {
	spec := Spec{Type: LSTMAutoencoder, Inputs: 32 * 8, Window: 32, Hidden: []int{32}, Latent: 16, Activation: ReLU}
	x := lowRank(64, 32*8, 5)
	b.Run("lstm", func(b *testing.B) {
		net, err := New(spec, 1)
		if err != nil {
			b.Fatal(err)
		}
		benchSteps(b, newLSTMTrainer(net, 64, 0.001), x)
	})
	b.Run("graph", func(b *testing.B) {
		net, err := New(spec, 1)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := newGraphTrainer(net, 64, 0.001)
		if err != nil {
			b.Fatal(err)
		}
		benchSteps(b, tr, x)
	})
}

// BenchmarkConvStep is one Adam step of the default ConvAutoencoder on 28 x 28 images
// at batch 128 (through the graph).
func BenchmarkConvStep(b *testing.B) {
	spec := Spec{Type: ConvAutoencoder, Inputs: 784, ImageRows: 28, ImageCols: 28, Channels: []int{16, 32}, Kernel: 3,
		Latent: 32, Activation: ReLU}
	_, x := mnistShape(b)
	net, err := New(spec, 1)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := NewTrainer(net, 128, 0.001)
	if err != nil {
		b.Fatal(err)
	}
	benchSteps(b, tr, x)
}
