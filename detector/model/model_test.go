package model

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
)

// lowRank makes rows that lie near a 2-dimensional subspace of d dimensions, which a
// small autoencoder can learn.
func lowRank(rows, d int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	basis := make([]float32, 2*d)
	for i := range basis {
		basis[i] = float32(rng.NormFloat64())
	}
	x := make([]float32, rows*d)
	for i := 0; i < rows; i++ {
		a, b := float32(rng.NormFloat64()), float32(rng.NormFloat64())
		for j := 0; j < d; j++ {
			x[i*d+j] = a*basis[j] + b*basis[d+j] + 0.05*float32(rng.NormFloat64())
		}
	}
	return x
}

func train(t *testing.T, net *Network, x, y []float32, batch, steps int) {
	t.Helper()
	tr, err := NewTrainer(net, batch, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	d := net.Spec.Inputs
	for s := 0; s < steps; s++ {
		off := (s * batch) % (len(x)/d - batch + 1)
		var yb []float32
		if y != nil {
			yb = y[off : off+batch]
		}
		if _, err := tr.Step(x[off*d:(off+batch)*d], yb); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAutoencoderLearnsAndGraphMatchesInference(t *testing.T) {
	const d, batch = 8, 32
	x := lowRank(512, d, 1)
	net, err := New(Spec{Type: Autoencoder, Inputs: d, Hidden: []int{16}, Latent: 2, Activation: Tanh}, 7)
	if err != nil {
		t.Fatal(err)
	}
	before := net.Loss(x, nil, 512)
	train(t, net, x, nil, batch, 600)
	after := net.Loss(x, nil, 512)
	if !(after < before/4) {
		t.Fatalf("loss did not fall: %.4f -> %.4f", before, after)
	}
	// The graph's loss on a batch equals inference's on the same rows, so the weights
	// the graph updates are the ones inference uses.
	tr, _ := NewTrainer(net, batch, 0)
	defer tr.Close()
	graphLoss, err := tr.Step(x[:batch*d], nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := net.Loss(x[:batch*d], nil, batch); math.Abs(got-float64(graphLoss)) > 1e-5 {
		t.Fatalf("inference loss %.6f vs graph loss %.6f", got, graphLoss)
	}
}

func TestClassifierLearnsLabels(t *testing.T) {
	const d, rows = 4, 512
	rng := rand.New(rand.NewPCG(3, 3))
	x := make([]float32, rows*d)
	y := make([]float32, rows)
	for i := 0; i < rows; i++ {
		for j := 0; j < d; j++ {
			x[i*d+j] = float32(rng.NormFloat64())
		}
		if x[i*d]+x[i*d+1] > 1 {
			y[i] = 1
		}
	}
	net, err := New(Spec{Type: MLPClassifier, Inputs: d, Hidden: []int{8}, Activation: ReLU}, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := net.Loss(x, y, rows)
	train(t, net, x, y, 32, 800)
	after := net.Loss(x, y, rows)
	if !(after < before/2) {
		t.Fatalf("cross-entropy did not fall: %.4f -> %.4f", before, after)
	}
	p := net.Scores(x, rows)
	correct := 0
	for i := range p {
		if (p[i] > 0.5) == (y[i] == 1) {
			correct++
		}
	}
	if acc := float64(correct) / rows; acc < 0.9 {
		t.Fatalf("accuracy %.3f", acc)
	}
}

func TestSameSeedSameWeights(t *testing.T) {
	x := lowRank(256, 6, 2)
	spec := Spec{Type: Autoencoder, Inputs: 6, Hidden: []int{8}, Latent: 2, Activation: ReLU}
	run := func(seed int64) []float32 {
		net, err := New(spec, seed)
		if err != nil {
			t.Fatal(err)
		}
		train(t, net, x, nil, 16, 50)
		var all []float32
		for _, p := range net.Params {
			all = append(all, p.Data...)
		}
		return all
	}
	a, b, c := run(5), run(5), run(6)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different weights")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds gave the same weights")
	}
}

// Inference (BLAS with its own bias and activation pass) computes what the Gorgonia
// training graph computes, for every activation, at batch sizes 1 and 32.
func TestInferenceMatchesGraphForEveryActivation(t *testing.T) {
	const d, batch = 8, 32
	x := lowRank(batch, d, 5)
	for i := range x {
		x[i] = x[i]*3 - 1 // negative inputs too, so every activation sees both signs
	}
	for _, act := range []string{ReLU, LeakyReLU, Tanh, Sigmoid} {
		net, err := New(Spec{Type: Autoencoder, Inputs: d, Hidden: []int{16, 6}, Latent: 3, Activation: act}, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, rows := range []int{1, batch} {
			tr, err := NewTrainer(net, rows, 0) // learning rate 0: the step changes nothing
			if err != nil {
				t.Fatal(err)
			}
			graphLoss, err := tr.Step(x[:rows*d], nil)
			tr.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := net.Loss(x[:rows*d], nil, rows); math.Abs(got-float64(graphLoss)) > 1e-5*math.Max(1, got) {
				t.Errorf("%s, %d rows: inference loss %.7f, graph loss %.7f", act, rows, got, graphLoss)
			}
		}
	}
}

func TestForwardTakesAnyBatchSize(t *testing.T) {
	x := lowRank(37, 5, 4)
	net, err := New(Spec{Type: Autoencoder, Inputs: 5, Hidden: []int{4}, Latent: 2, Activation: LeakyReLU}, 1)
	if err != nil {
		t.Fatal(err)
	}
	all := net.Scores(x, 37)
	for i := 0; i < 37; i++ {
		one := net.Scores(x[i*5:(i+1)*5], 1)
		if math.Abs(float64(one[0]-all[i])) > 1e-6 {
			t.Fatalf("row %d scores %v alone and %v in a batch", i, one[0], all[i])
		}
	}
}

func TestFromParamsRefusesWrongShapes(t *testing.T) {
	spec := Spec{Type: Autoencoder, Inputs: 5, Hidden: []int{4}, Latent: 2, Activation: ReLU}
	net, _ := New(spec, 1)
	if _, err := FromParams(spec, net.Snapshot()); err != nil {
		t.Fatalf("own params refused: %v", err)
	}
	bad := net.Snapshot()
	bad[2].Shape = []int{2, 4}
	if _, err := FromParams(spec, bad); err == nil {
		t.Fatal("wrong shape accepted")
	}
	if _, err := FromParams(spec, net.Snapshot()[:3]); err == nil {
		t.Fatal("missing tensor accepted")
	}
	nan := net.Snapshot()
	nan[0].Data[0] = float32(math.NaN())
	if _, err := FromParams(spec, nan); err == nil {
		t.Fatal("NaN weight accepted")
	}
}

// TestFusedAdamMatchesGorgonia checks the fused optimiser against Gorgonia's own
// AdamSolver: the same network, batches and learning rate give the same weights. W0
// (20,000 values) is updated in two chunks.
func TestFusedAdamMatchesGorgonia(t *testing.T) {
	const d, batch = 200, 16
	x := lowRank(batch*10, d, 9)
	spec := Spec{Type: Autoencoder, Inputs: d, Hidden: []int{100}, Latent: 2, Activation: Tanh}
	ours, _ := New(spec, 3)
	ref, err := FromParams(spec, ours.Snapshot())
	if err != nil {
		t.Fatal(err)
	}

	tr, err := NewTrainer(ours, batch, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	refTr, err := newGraphTrainer(ref, batch, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	defer refTr.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(0.01))
	for s := 0; s < 10; s++ {
		xb := x[s*batch*d : (s+1)*batch*d]
		if _, err := tr.Step(xb, nil); err != nil {
			t.Fatal(err)
		}
		copy(refTr.xT.Data().([]float32), xb)
		if err := refTr.vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		if err := solver.Step(G.NodesToValueGrads(refTr.weights)); err != nil {
			t.Fatal(err)
		}
		refTr.vm.Reset()
	}
	for i, p := range ours.Params {
		for k, v := range p.Data {
			if diff := math.Abs(float64(v - ref.Params[i].Data[k])); diff > 1e-5 {
				t.Fatalf("%s[%d]: fused Adam %v, Gorgonia's %v", p.Name, k, v, ref.Params[i].Data[k])
			}
		}
	}
}

// blobs makes rows x rows images of one bright square each, at a random place.
func blobs(n, side int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 5))
	x := make([]float32, n*side*side)
	for i := 0; i < n; i++ {
		r, c := rng.IntN(side-2), rng.IntN(side-2)
		for dr := 0; dr < 3; dr++ {
			for dc := 0; dc < 3; dc++ {
				x[i*side*side+(r+dr)*side+c+dc] = 1
			}
		}
	}
	return x
}

func TestConvAutoencoderLearnsAndInferenceMatchesTraining(t *testing.T) {
	const side, batch = 8, 16
	x := blobs(256, side, 1)
	spec := Spec{Type: ConvAutoencoder, Inputs: side * side, Channels: []int{4, 8}, Kernel: 3, Latent: 8,
		Activation: ReLU, ImageRows: side, ImageCols: side}
	net, err := New(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	learnsAndMatchesGraph(t, net, x, batch, 400, 2)
	// Any row count, across the inference graph's padded batches, scores each row alike.
	all := net.Scores(x[:70*side*side], 70)
	for _, i := range []int{0, 63, 64, 69} {
		one := net.Scores(x[i*side*side:(i+1)*side*side], 1)
		if math.Abs(float64(one[0]-all[i])) > 1e-6 {
			t.Fatalf("row %d scores %v alone and %v in a batch", i, one[0], all[i])
		}
	}
	// Stored weights rebuild the same network.
	again, err := FromParams(spec, net.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Scores(x[:side*side], 1); got[0] != all[0] {
		t.Fatalf("reloaded network scores %v; want %v", got[0], all[0])
	}
}

func TestConvSpecRefusals(t *testing.T) {
	base := Spec{Type: ConvAutoencoder, Inputs: 784, Channels: []int{16, 32}, Kernel: 3, Latent: 32, Activation: ReLU, ImageRows: 28, ImageCols: 28}
	for name, mutate := range map[string]func(*Spec){
		"even kernel":                 func(s *Spec) { s.Kernel = 4 },
		"no channels":                 func(s *Spec) { s.Channels = nil },
		"indivisible images":          func(s *Spec) { s.Channels = []int{8, 8, 8} },
		"inputs mismatch":             func(s *Spec) { s.Inputs = 100 },
		"kernel wider than the image": func(s *Spec) { s.Kernel = 29 },
	} {
		s := base
		mutate(&s)
		if _, err := New(s, 1); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// sineWindows makes windows of a 2-feature series: a sine and its cosine.
func sineWindows(n, window int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, 0, n*window*2)
	for i := 0; i < n; i++ {
		phase := rng.Float64() * 2 * math.Pi
		for t := 0; t < window; t++ {
			a := phase + float64(t)*0.3
			x = append(x, float32(math.Sin(a)), float32(math.Cos(a)))
		}
	}
	return x
}

// The optimiser updates large tensors in chunks on every core; the weights come out
// bit for bit as from one core.
func TestParallelAdamMatchesSerial(t *testing.T) {
	const d, batch = 300, 8
	spec := Spec{Type: Autoencoder, Inputs: d, Hidden: []int{120}, Latent: 4, Activation: ReLU} // W0 has 36,000 values: 3 chunks
	x := lowRank(batch*3, d, 2)
	run := func(procs int) []Param {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		net, _ := New(spec, 5)
		train(t, net, x, nil, batch, 6)
		return net.Snapshot()
	}
	serial, parallel := run(1), run(4)
	for i := range serial {
		if !slices.Equal(serial[i].Data, parallel[i].Data) {
			t.Fatalf("%s differs between one core and four", serial[i].Name)
		}
	}
}

// Over windows, the ConvAutoencoder's graph sees each feature's values in time order
// (the conv runs along time), and its output maps back to the window's own layout.
func TestConvOverWindowsLayout(t *testing.T) {
	const w, f = 4, 3
	s := Spec{Type: ConvAutoencoder, Inputs: w * f, Window: w}
	x := make([]float32, 2*w*f) // two windows, time-major: value 100*window + 10*feature + t
	for r := range 2 {
		for tt := range w {
			for j := range f {
				x[r*w*f+tt*f+j] = float32(100*r + 10*j + tt)
			}
		}
	}
	g := make([]float32, len(x))
	s.toGraph(g, x)
	for r := range 2 {
		for j := range f {
			for tt := range w {
				if got, want := g[r*w*f+j*w+tt], float32(100*r+10*j+tt); got != want {
					t.Fatalf("graph input window %d feature %d step %d is %v, want %v", r, j, tt, got, want)
				}
			}
		}
	}
	back := make([]float32, len(x))
	s.fromGraph(back, g)
	if !slices.Equal(back, x) {
		t.Fatalf("round trip %v, want %v", back, x)
	}
}

// Both sequence models learn windows of a series, run the same network in training and
// inference, and put a spike's error on the spiked value: the reconstruction comes back
// in the window's own layout.
func TestSequenceAutoencodersLearn(t *testing.T) {
	for _, tt := range []struct {
		spec  Spec
		steps int
	}{
		{Spec{Type: LSTMAutoencoder, Inputs: 12 * 2, Window: 12, Hidden: []int{16}, Latent: 4, Activation: Tanh}, 300},
		{Spec{Type: ConvAutoencoder, Inputs: 16 * 2, Window: 16, Channels: []int{4, 8}, Kernel: 3, Latent: 6, Activation: Tanh}, 400},
		{Spec{Type: ConvAutoencoder, Inputs: 16 * 2, Window: 16, Channels: []int{8, 4}, Kernel: 5, Resampling: Strided, Activation: Tanh}, 400},
	} {
		t.Run(tt.spec.Type+tt.spec.Resampling, func(t *testing.T) {
			const batch = 16
			d := tt.spec.Inputs
			x := sineWindows(256, tt.spec.Window, 1)
			net, err := New(tt.spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			learnsAndMatchesGraph(t, net, x, batch, tt.steps, 4)
			const at = 5 * 2 // step 5, feature 0
			spiked := slices.Clone(x[:d])
			spiked[at] += 3
			s, shares := net.Explain(append(slices.Clone(x[:d]), spiked...), 2)
			if !(s[1] > 5*s[0]) {
				t.Fatalf("spiked window scores %v, clean %v", s[1], s[0])
			}
			if top := argmax(shares[d:]); top != at {
				t.Fatalf("largest error share at %d; the spike is at %d", top, at)
			}
		})
	}
}

func TestConvOverWindowsSpec(t *testing.T) {
	spec := Spec{Type: ConvAutoencoder, Inputs: 16 * 2, Window: 16, Channels: []int{4, 8}, Kernel: 3, Latent: 6, Activation: Tanh}
	net, err := New(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := net.Params[0].Shape; !slices.Equal(got, []int{4, 2, 3, 1}) {
		t.Fatalf("first kernel %v: want 4 channels over 2 features, 3 steps long", got)
	}
	for name, mutate := range map[string]func(*Spec){
		"window not divisible by 4": func(s *Spec) { s.Window, s.Inputs = 10, 20 },
		"inputs not whole rows":     func(s *Spec) { s.Inputs = 33 },
		"image size as well":        func(s *Spec) { s.ImageRows, s.ImageCols = 4, 8 },
		"kernel longer than window": func(s *Spec) { s.Kernel = 17 },
		"unknown resampling":        func(s *Spec) { s.Resampling = "Dilated" },
		"strided with a latent":     func(s *Spec) { s.Resampling = Strided },
		"pooling without a latent":  func(s *Spec) { s.Latent = 0 },
		"dropout of 1":              func(s *Spec) { s.Dropout = 1 },
		"negative dropout":          func(s *Spec) { s.Dropout = -0.1 },
		"NaN dropout":               func(s *Spec) { s.Dropout = math.NaN() },
		"two output channels":       func(s *Spec) { s.OutputChannels = 2 },
	} {
		s := spec
		mutate(&s)
		if _, err := New(s, 1); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Dropout changes the training graph only: its loss differs from the inference loss
// of the same batch, repeats under the same seed and changes with another, while the
// graph without dropout matches inference (learnsAndMatchesGraph).
func TestDropoutOnlyInTraining(t *testing.T) {
	const batch = 16
	spec := Spec{Type: ConvAutoencoder, Inputs: 16 * 2, Window: 16, Channels: []int{8, 4}, Kernel: 5,
		Resampling: Strided, Dropout: 0.5, Activation: Tanh}
	x := sineWindows(batch, spec.Window, 1)
	loss := func(seed int64) (graph float32, inference float64) {
		net, err := New(spec, 1)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(net, batch, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		tr.SeedDropout(seed)
		l, err := tr.Step(x, nil)
		if err != nil {
			t.Fatal(err)
		}
		return l, net.Loss(x, nil, batch)
	}
	g1, inf := loss(1)
	g1again, _ := loss(1)
	g2, _ := loss(2)
	if math.Abs(float64(g1)-inf) < 1e-4 {
		t.Fatalf("graph loss %.6f equals the inference loss: no dropout in training", g1)
	}
	if g1 != g1again {
		t.Fatalf("same seed, graph losses %v and %v", g1, g1again)
	}
	if g1 == g2 {
		t.Fatalf("seeds 1 and 2 drew the same masks (loss %v)", g1)
	}
}

// learnsAndMatchesGraph trains net on the rows of x for steps batches and wants the loss
// divided by at least factor, then one more step's graph loss equal to the inference
// loss of the same batch: training and inference run the same network.
func learnsAndMatchesGraph(t *testing.T, net *Network, x []float32, batch, steps int, factor float64) {
	t.Helper()
	d := net.Spec.Inputs
	rows := len(x) / d
	before := net.Loss(x, nil, rows)
	train(t, net, x, nil, batch, steps)
	if after := net.Loss(x, nil, rows); !(after < before/factor) {
		t.Fatalf("loss did not fall to 1/%v: %.4f -> %.4f", factor, before, after)
	}
	tr, err := NewTrainer(net, batch, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	graphLoss, err := tr.Step(x[:batch*d], nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := net.Loss(x[:batch*d], nil, batch); math.Abs(got-float64(graphLoss)) > 1e-5 {
		t.Fatalf("inference loss %.6f vs graph loss %.6f", got, graphLoss)
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
