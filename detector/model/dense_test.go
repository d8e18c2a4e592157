package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The dense trainer's gradients are Gorgonia's symbolic ones, for every activation and
// both losses (squared error of an autoencoder, cross-entropy of a classifier), on odd
// sizes: each tensor's largest difference is within 1e-5 of its largest value.
func TestDenseGradientsMatchGorgonia(t *testing.T) {
	const batch = 13
	for _, typ := range []string{Autoencoder, MLPClassifier} {
		for _, act := range []string{ReLU, LeakyReLU, Tanh, Sigmoid} {
			t.Run(typ+"/"+act, func(t *testing.T) {
				spec := Spec{Type: typ, Inputs: 11, Hidden: []int{17, 9}, Latent: 3, Activation: act}
				if typ == MLPClassifier {
					spec.Latent = 0
				}
				net, err := New(spec, 5)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(7, 7))
				x := make([]float32, batch*spec.Inputs)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				var y []float32
				if typ == MLPClassifier {
					for range batch {
						y = append(y, float32(rng.IntN(2)))
					}
				}
				dense := newDenseTrainer(net, batch, 0)
				defer dense.Close()
				loss, err := dense.gradients(x, y)
				if err != nil {
					t.Fatal(err)
				}
				compareWithGraph(t, net, x, y, loss, dense.grads, 1e-5)
			})
		}
	}
}

// compareWithGraph runs net's Gorgonia training graph forward and backward on the
// batch x (labels y for a classifier) and checks loss and grads (in the order of
// net's parameters) against it: each tensor's largest difference within tol of its
// largest value.
func compareWithGraph(t *testing.T, net *Network, x, y []float32, loss float32, grads [][]float32, tol float64) {
	t.Helper()
	graph, err := newGraphTrainer(net, len(x)/net.Spec.Inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer graph.Close()
	net.Spec.toGraph(graph.xT.Data().([]float32), x)
	if graph.yT != nil {
		copy(graph.yT.Data().([]float32), y)
	}
	if err := graph.vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	defer graph.vm.Reset()
	if want := graph.lossVal.Data().(float32); math.Abs(float64(loss-want)) > tol*math.Max(1, math.Abs(float64(want))) {
		t.Errorf("loss %v, Gorgonia's %v", loss, want)
	}
	for i, n := range graph.weights {
		g, err := n.Grad()
		if err != nil {
			t.Fatal(err)
		}
		want := g.Data().([]float32)
		var diff, scale float64
		for k, w := range want {
			diff = math.Max(diff, math.Abs(float64(grads[i][k]-w)))
			scale = math.Max(scale, math.Abs(float64(w)))
		}
		if scale == 0 || diff > tol*scale {
			t.Errorf("%s: largest difference %.3g against largest gradient %.3g", n.Name(), diff, scale)
		}
	}
}

// A dense training step allocates nothing: the passes and the optimiser run on the
// trainer's buffers. (Gonum's pure-Go GEMM
// spawns goroutines for large products; the network here is small enough that it
// does not, so the check holds in both BLAS builds.)
func TestDenseStepAllocatesNothing(t *testing.T) {
	const batch = 32
	net, err := New(Spec{Type: Autoencoder, Inputs: 40, Hidden: []int{24}, Latent: 6, Activation: ReLU}, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := lowRank(batch, 40, 3)
	tr := newDenseTrainer(net, batch, 0.001)
	defer tr.Close()
	if allocs := testing.AllocsPerRun(50, func() {
		if _, err := tr.Step(x, nil); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per step", allocs)
	}
}

func TestOddKernel(t *testing.T) {
	for k, want := range map[int]bool{-3: false, -1: false, 0: false, 1: true, 2: false, 3: true, 4: false, 7: true} {
		if OddKernel(k) != want {
			t.Errorf("OddKernel(%d) = %v", k, !want)
		}
	}
	if _, err := New(Spec{Type: ConvAutoencoder, Inputs: 16, Window: 16, Channels: []int{4}, Kernel: 4, Latent: 2, Activation: ReLU}, 1); err == nil ||
		!strings.Contains(err.Error(), "odd kernel size") {
		t.Errorf("a conv autoencoder with an even kernel: %v", err)
	}
}
