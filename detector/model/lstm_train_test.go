package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The LSTM trainer's gradients are Gorgonia's symbolic ones through the unrolled graph,
// for every activation of the latent layer, on one feature and on several, with a
// hidden size of one too: each tensor's largest difference is within 1e-5 of its
// largest value (1e-4 for a window of 16 steps, whose sums are longer).
func TestLSTMGradientsMatchGorgonia(t *testing.T) {
	const batch = 5
	for _, tc := range []struct {
		name                   string
		window, features, h, l int
		tol                    float64
	}{
		{"one feature", 6, 1, 4, 2, 1e-5},
		{"three features", 7, 3, 5, 3, 1e-5},
		{"hidden size one", 4, 2, 1, 1, 1e-5},
		{"longer window", 16, 2, 8, 4, 1e-4},
	} {
		for _, act := range []string{ReLU, LeakyReLU, Tanh, Sigmoid} {
			t.Run(tc.name+"/"+act, func(t *testing.T) {
				spec := Spec{Type: LSTMAutoencoder, Inputs: tc.window * tc.features, Window: tc.window,
					Hidden: []int{tc.h}, Latent: tc.l, Activation: act}
				net, err := New(spec, 5)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(7, 7))
				for i := range net.Params { // biases too, so every term counts
					if i%2 == 1 {
						for k := range net.Params[i].Data {
							net.Params[i].Data[k] = float32(rng.NormFloat64() * 0.3)
						}
					}
				}
				x := make([]float32, batch*spec.Inputs)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				fast := newLSTMTrainer(net, batch, 0)
				defer fast.Close()
				loss, err := fast.gradients(x)
				if err != nil {
					t.Fatal(err)
				}
				compareWithGraph(t, net, x, nil, loss, fast.grads, tc.tol)
			})
		}
	}
}

// An LSTM training step allocates nothing.
func TestLSTMStepAllocatesNothing(t *testing.T) {
	net, err := New(Spec{Type: LSTMAutoencoder, Inputs: 8 * 3, Window: 8, Hidden: []int{6}, Latent: 2, Activation: ReLU}, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := lowRank(16, 24, 3)
	tr := newLSTMTrainer(net, 16, 0.001)
	defer tr.Close()
	if allocs := testing.AllocsPerRun(50, func() {
		if _, err := tr.Step(x, nil); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per step", allocs)
	}
}

// exp32, sigmoid32 and tanh32 stay within 3e-7 (relative for exp, absolute for the
// others, whose values are at most 1) of the float64 functions over the range the
// gates see, including the ends where exp32 saturates.
func TestExp32(t *testing.T) {
	for x := -100.0; x <= 100; x += 0.00731 {
		f := float32(x)
		if want := math.Exp(float64(f)); want < math.MaxFloat32 && want > 1e-37 && math.Abs(float64(exp32(f))-want) > 3e-7*want {
			t.Fatalf("exp32(%v) = %v, want %v", f, exp32(f), want)
		}
		if want := 1 / (1 + math.Exp(-float64(f))); math.Abs(float64(sigmoid32(f))-want) > 3e-7 {
			t.Fatalf("sigmoid32(%v) = %v, want %v", f, sigmoid32(f), want)
		}
		if want := math.Tanh(float64(f)); math.Abs(float64(tanh32(f))-want) > 3e-7 {
			t.Fatalf("tanh32(%v) = %v, want %v", f, tanh32(f), want)
		}
	}
	if exp32(89) != float32(math.Inf(1)) || exp32(-88) != 0 || sigmoid32(-100) != 0 || sigmoid32(100) != 1 || tanh32(50) != 1 || tanh32(-50) != -1 {
		t.Fatal("saturation")
	}
}
