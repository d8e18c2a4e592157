package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// An LSTMAutoencoder reads a window of rows with an LSTM (composed here from Gorgonia
// operations: Gorgonia has no LSTM cell), squeezes its last hidden state through a
// dense latent layer, and reconstructs the whole window with a dense decoder. Its score
// is the window's reconstruction error.

// lstmGradClip bounds each gradient element of a recurrent network.
const lstmGradClip = 5

// lstmParams: input-to-gates and hidden-to-gates weights with a bias each (as
// PyTorch's LSTM has), the latent layer, and the decoder.
func (s Spec) lstmParams() ([]Param, error) {
	if s.Window < 2 || len(s.Hidden) != 1 || s.Hidden[0] < 1 || s.Latent < 1 {
		return nil, fmt.Errorf("LSTM autoencoder needs a window of at least 2 rows, one hidden size and a latent size (got %d, %v, %d)",
			s.Window, s.Hidden, s.Latent)
	}
	if s.Inputs <= 0 || s.Inputs%s.Window != 0 {
		return nil, fmt.Errorf("LSTM autoencoder has %d inputs for windows of %d rows", s.Inputs, s.Window)
	}
	switch s.Activation {
	case ReLU, LeakyReLU, Tanh, Sigmoid:
	default:
		return nil, fmt.Errorf("unknown activation %q", s.Activation)
	}
	f, h := s.Features(), s.Hidden[0]
	if 4*h*(f+h)+s.Latent*(h+s.Inputs) > maxParams {
		return nil, fmt.Errorf("model is too large: more than %d weights", maxParams)
	}
	return []Param{
		{Name: "W0", Shape: []int{f, 4 * h}}, {Name: "b0", Shape: []int{1, 4 * h}},
		{Name: "W1", Shape: []int{h, 4 * h}}, {Name: "b1", Shape: []int{1, 4 * h}},
		{Name: "W2", Shape: []int{h, s.Latent}}, {Name: "b2", Shape: []int{1, s.Latent}},
		{Name: "W3", Shape: []int{s.Latent, s.Inputs}}, {Name: "b3", Shape: []int{1, s.Inputs}},
	}, nil
}

// lstmGraph unrolls the LSTM over the window in x, shaped (batch, window * features).
func lstmGraph(s Spec, x *G.Node, w []*G.Node) (*G.Node, error) {
	batch, f, hs := x.Shape()[0], s.Features(), s.Hidden[0]
	g := x.Graph()
	zeros := func(name string) *G.Node {
		return G.NodeFromAny(g, tensor.New(tensor.WithShape(batch, hs), tensor.Of(tensor.Float32)), G.WithName(name))
	}
	h, c := zeros("h0"), zeros("c0")
	// cols slices columns [from, to) of a (batch, n) node. Gorgonia's Slice drops a
	// dimension of length one, which would turn one feature (a univariate series) or
	// a hidden size of one into a vector the products refuse: keep it a matrix.
	cols := func(z *G.Node, from, to int) (*G.Node, error) {
		v, err := G.Slice(z, nil, G.S(from, to))
		if err != nil || v.Dims() == 2 {
			return v, err
		}
		return G.Reshape(v, tensor.Shape{batch, to - from})
	}
	gate := func(z *G.Node, k int) (*G.Node, error) { return cols(z, k*hs, (k+1)*hs) }
	for t := 0; t < s.Window; t++ {
		xt, err := cols(x, t*f, (t+1)*f)
		if err != nil {
			return nil, err
		}
		a, err := G.Mul(xt, w[0])
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", t, err)
		}
		if a, err = G.BroadcastAdd(a, w[1], nil, []byte{0}); err != nil {
			return nil, err
		}
		r, err := G.Mul(h, w[2])
		if err != nil {
			return nil, err
		}
		if r, err = G.BroadcastAdd(r, w[3], nil, []byte{0}); err != nil {
			return nil, err
		}
		z, err := G.Add(a, r)
		if err != nil {
			return nil, err
		}
		// Gates in PyTorch's order: input, forget, cell candidate, output.
		var gs [4]*G.Node
		for k := range gs {
			if gs[k], err = gate(z, k); err != nil {
				return nil, err
			}
		}
		i, fg, o := G.Must(G.Sigmoid(gs[0])), G.Must(G.Sigmoid(gs[1])), G.Must(G.Sigmoid(gs[3]))
		cand := G.Must(G.Tanh(gs[2]))
		c = G.Must(G.Add(G.Must(G.HadamardProd(fg, c)), G.Must(G.HadamardProd(i, cand))))
		h = G.Must(G.HadamardProd(o, G.Must(G.Tanh(c))))
	}
	z, err := G.Mul(h, w[4])
	if err != nil {
		return nil, err
	}
	if z, err = G.BroadcastAdd(z, w[5], nil, []byte{0}); err != nil {
		return nil, err
	}
	if z, err = graphActivation(s.Activation, z); err != nil {
		return nil, err
	}
	out, err := G.Mul(z, w[6])
	if err != nil {
		return nil, err
	}
	return G.BroadcastAdd(out, w[7], nil, []byte{0})
}
