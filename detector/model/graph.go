package model

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Trainer runs Adam steps on a Network, in place, for batches of a fixed size.
type Trainer interface {
	// BatchSize is the fixed number of rows of a batch.
	BatchSize() int
	// Step runs one Adam step on a batch: x holds BatchSize() rows, y their labels
	// (only for a classifier). It returns the batch's loss before the step.
	Step(x, y []float32) (float32, error)
	// SeedDropout makes the dropout masks a function of seed, so a training run
	// repeats.
	SeedDropout(seed int64)
	// Close releases what the trainer holds.
	Close() error
}

// NewTrainer returns a trainer of net for batches of batch rows, optimised by Adam
// with learning rate lr: direct BLAS passes for a dense network and an LSTM, a
// Gorgonia graph for a convolutional one.
func NewTrainer(net *Network, batch int, lr float64) (Trainer, error) {
	if batch <= 0 {
		return nil, fmt.Errorf("batch size %d", batch)
	}
	if net.infer == nil && (net.Spec.Type == Autoencoder || net.Spec.Type == MLPClassifier) {
		return newDenseTrainer(net, batch, lr), nil
	}
	if net.Spec.Type == LSTMAutoencoder {
		return newLSTMTrainer(net, batch, lr), nil
	}
	return newGraphTrainer(net, batch, lr)
}

// graphTrainer is a Gorgonia training graph for a fixed batch size whose weight nodes
// share their backing arrays with a Network: each Adam step updates the Network in
// place.
type graphTrainer struct {
	net     *Network
	batch   int
	g       *G.ExprGraph
	vm      G.VM
	solver  *adam
	x, y    *G.Node
	xT, yT  *tensor.Dense
	loss    *G.Node
	weights []*G.Node
	lossVal G.Value
	// masks are the dropout masks of a training graph, drawn anew at each step.
	masks []*tensor.Dense
	rng   *rand.Rand
}

// newGraphTrainer builds the training graph of net for batches of batch rows,
// optimised by Adam with learning rate lr.
func newGraphTrainer(net *Network, batch int, lr float64) (*graphTrainer, error) {
	if batch <= 0 {
		return nil, fmt.Errorf("batch size %d", batch)
	}
	t := &graphTrainer{net: net, batch: batch, g: G.NewGraph(), rng: rand.New(rand.NewPCG(1, 0x64726f70))} // "drop"
	t.xT = tensor.New(tensor.WithShape(inputShape(net.Spec, batch)...), tensor.Of(tensor.Float32))
	t.x = G.NodeFromAny(t.g, t.xT, G.WithName("x"))
	// The weight nodes share p.Data with the graph: the solver's in-place updates are
	// the Network's weights, no copy back needed.
	t.weights = weightNodes(t.g, net)
	var out *G.Node
	var err error
	if net.infer != nil {
		out, err = buildGraph(net.Spec, t.x, t.weights, t.dropout)
	} else {
		out, err = t.forward()
	}
	if err != nil {
		return nil, err
	}
	if net.Spec.Type == MLPClassifier {
		t.yT = tensor.New(tensor.WithShape(batch, 1), tensor.Of(tensor.Float32))
		t.y = G.NewMatrix(t.g, tensor.Float32, G.WithShape(batch, 1), G.WithName("y"), G.WithValue(t.yT))
		// softplus(z) - y*z is the cross-entropy of sigmoid(z) without its overflow.
		t.loss, err = mean(G.Sub(G.Must(G.Softplus(out)), G.Must(G.HadamardProd(t.y, out))))
	} else {
		t.loss, err = mean(G.Square(G.Must(G.Sub(out, t.x))))
	}
	if err != nil {
		return nil, fmt.Errorf("building loss: %w", err)
	}
	G.Read(t.loss, &t.lossVal)
	if _, err := G.Grad(t.loss, t.weights...); err != nil {
		return nil, fmt.Errorf("building gradients: %w", err)
	}
	t.vm = G.NewTapeMachine(t.g, G.BindDualValues(t.weights...))
	t.solver = newAdam(lr, t.weights)
	if net.Spec.Type == LSTMAutoencoder {
		t.solver.clip = lstmGradClip // recurrent gradients can explode
	}
	return t, nil
}

// SeedDropout makes the dropout masks a function of seed, so a training run repeats.
func (t *graphTrainer) SeedDropout(seed int64) {
	t.rng = rand.New(rand.NewPCG(uint64(seed), 0x64726f70))
}

// dropout multiplies h by a mask of h's shape that Step fills with zeros at the spec's
// rate and 1/(1-rate) elsewhere (inverted dropout: inference needs no rescaling).
func (t *graphTrainer) dropout(h *G.Node) (*G.Node, error) {
	m := tensor.New(tensor.WithShape(h.Shape()...), tensor.Of(tensor.Float32))
	t.masks = append(t.masks, m)
	return G.HadamardProd(h, G.NodeFromAny(t.g, m, G.WithName(fmt.Sprintf("dropout%d", len(t.masks)))))
}

func (t *graphTrainer) drawMasks() {
	p := t.net.Spec.Dropout
	keep := float32(1 / (1 - p))
	for _, m := range t.masks {
		for i := range m.Data().([]float32) {
			v := keep
			if t.rng.Float64() < p {
				v = 0
			}
			m.Data().([]float32)[i] = v
		}
	}
}

func mean(n *G.Node, err error) (*G.Node, error) {
	if err != nil {
		return nil, err
	}
	return G.Mean(n)
}

func (t *graphTrainer) forward() (*G.Node, error) {
	h := t.x
	layers := len(t.weights) / 2
	for l := 0; l < layers; l++ {
		z, err := G.Mul(h, t.weights[2*l])
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", l, err)
		}
		if z, err = G.BroadcastAdd(z, t.weights[2*l+1], nil, []byte{0}); err != nil {
			return nil, fmt.Errorf("layer %d bias: %w", l, err)
		}
		if l < layers-1 {
			if z, err = graphActivation(t.net.Spec.Activation, z); err != nil {
				return nil, fmt.Errorf("layer %d activation: %w", l, err)
			}
		}
		h = z
	}
	return h, nil
}

func graphActivation(kind string, z *G.Node) (*G.Node, error) {
	switch kind {
	case ReLU:
		return G.Rectify(z)
	case LeakyReLU:
		return G.LeakyRelu(z, leakySlope)
	case Tanh:
		return G.Tanh(z)
	case Sigmoid:
		return G.Sigmoid(z)
	}
	return nil, fmt.Errorf("unknown activation %q", kind)
}

// BatchSize is the graph's fixed batch size.
func (t *graphTrainer) BatchSize() int { return t.batch }

// Step runs one Adam step on a batch: x holds BatchSize() rows, y their labels (only
// for a classifier). It returns the batch's loss before the step.
func (t *graphTrainer) Step(x, y []float32) (float32, error) {
	t.net.Spec.toGraph(t.xT.Data().([]float32), x)
	if t.yT != nil {
		copy(t.yT.Data().([]float32), y)
	}
	t.drawMasks()
	defer t.vm.Reset()
	if err := t.vm.RunAll(); err != nil {
		return 0, err
	}
	if err := t.solver.step(t.weights); err != nil {
		return 0, err
	}
	return t.lossVal.Data().(float32), nil
}

// Close releases the graph's machine.
func (t *graphTrainer) Close() error { return t.vm.Close() }
