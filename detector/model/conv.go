package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A ConvAutoencoder encodes an image with conv blocks and decodes it with mirrored
// blocks, the last one back to the input's channels with a linear output so it works
// with any pixel scaling. Its score is the reconstruction error, like the dense
// autoencoder's. Two ways to shrink and grow:
//   - Pooling: a block is a k x k convolution, the activation and 2 x 2 max pooling; a
//     dense latent layer sits between encoder and decoder; a decoder block is 2x
//     upsampling and a convolution.
//   - Strided: a block is a stride-2 convolution and the activation; a decoder block a
//     stride-2 transposed convolution (composed here from zero insertion and a
//     convolution: Gorgonia has none) and the activation, and one more convolution
//     gives the output. No dense layer: the network is convolutional throughout, as
//     the published SKAB Conv-AE is.
//
// Over a window of rows (Spec.Window > 0) the same blocks run along time only: each
// feature is an input channel, kernels are k x 1, and every resampling halves or
// doubles the window alone. The graph sees a window feature-major (features x window x
// 1); windows arrive time-major (window x features), so toGraph and fromGraph transpose
// them.

// OddKernel says whether k rows make a conv kernel: odd (centred on its row, so the
// output keeps the input's size) and at least 1. The CRD's CEL rule on kernelSize
// says the same.
func OddKernel(k int) bool { return k >= 1 && k%2 == 1 }

// convParams lists the tensors of a ConvAutoencoder: the encoder's kernels and biases,
// the two dense layers around the latent vector (Pooling only), and the decoder's
// kernels and biases.
func (s Spec) convParams() ([]Param, error) {
	strided := s.Resampling == Strided
	switch {
	case s.Resampling != "" && s.Resampling != Pooling && !strided:
		return nil, fmt.Errorf("conv autoencoder resampling %q: want %s or %s", s.Resampling, Pooling, Strided)
	case len(s.Channels) == 0 || !OddKernel(s.Kernel):
		return nil, fmt.Errorf("conv autoencoder needs channels and an odd kernel size (got %v, %d)", s.Channels, s.Kernel)
	case strided && s.Latent != 0:
		return nil, fmt.Errorf("a strided conv autoencoder has no dense latent layer; leave the latent size out (got %d)", s.Latent)
	case !strided && s.Latent < 1:
		return nil, fmt.Errorf("conv autoencoder with pooling needs a latent size (got %d)", s.Latent)
	case !(s.Dropout >= 0 && s.Dropout < 1): // also refuses NaN
		return nil, fmt.Errorf("conv autoencoder dropout %v: want at least 0 and below 1", s.Dropout)
	case s.OutputChannels != 0 && s.OutputChannels != 1:
		return nil, fmt.Errorf("conv autoencoder output channels %d: want 0 (one per feature) or 1", s.OutputChannels)
	}
	scale := 1 << len(s.Channels)
	k, kw, in := s.Kernel, s.Kernel, 1
	var flatSide int // positions left after the encoder
	if s.Window > 0 {
		if s.ImageRows != 0 || s.ImageCols != 0 {
			return nil, fmt.Errorf("conv autoencoder over windows of %d rows cannot also have an image size (%dx%d)", s.Window, s.ImageRows, s.ImageCols)
		}
		if s.Window%scale != 0 {
			return nil, fmt.Errorf("conv autoencoder with %d blocks needs a window divisible by %d; the window is %d rows", len(s.Channels), scale, s.Window)
		}
		if s.Inputs <= 0 || s.Inputs%s.Window != 0 {
			return nil, fmt.Errorf("conv autoencoder has %d inputs for windows of %d rows", s.Inputs, s.Window)
		}
		kw, in, flatSide = 1, s.Features(), s.Window/scale
	} else {
		if s.ImageRows <= 0 || s.ImageCols <= 0 || s.ImageRows%scale != 0 || s.ImageCols%scale != 0 {
			return nil, fmt.Errorf("conv autoencoder with %d blocks needs image sides divisible by %d; images are %dx%d",
				len(s.Channels), scale, s.ImageRows, s.ImageCols)
		}
		if s.Inputs != s.ImageRows*s.ImageCols {
			return nil, fmt.Errorf("conv autoencoder has %d inputs for %dx%d images", s.Inputs, s.ImageRows, s.ImageCols)
		}
		flatSide = (s.ImageRows / scale) * (s.ImageCols / scale)
	}
	channelsOut := in
	if s.OutputChannels == 1 {
		channelsOut = 1
	}
	if side := max(s.Window, min(s.ImageRows, s.ImageCols)); s.Kernel > side {
		return nil, fmt.Errorf("conv kernel of %d is larger than the input's %d", s.Kernel, side)
	}
	switch s.Activation {
	case ReLU, LeakyReLU, Tanh, Sigmoid:
	default:
		return nil, fmt.Errorf("unknown activation %q", s.Activation)
	}
	var ps []Param
	add := func(w, b []int) {
		l := len(ps) / 2
		ps = append(ps, Param{Name: fmt.Sprintf("W%d", l), Shape: w}, Param{Name: fmt.Sprintf("b%d", l), Shape: b})
	}
	for _, c := range s.Channels {
		if c < 1 || c > 1024 {
			return nil, fmt.Errorf("conv channels %d", c)
		}
		add([]int{c, in, k, kw}, []int{1, c, 1, 1})
		in = c
	}
	if strided {
		for i := len(s.Channels) - 1; i >= 0; i-- {
			add([]int{s.Channels[i], in, k, kw}, []int{1, s.Channels[i], 1, 1})
			in = s.Channels[i]
		}
		add([]int{channelsOut, in, k, kw}, []int{1, channelsOut, 1, 1})
		return ps, nil
	}
	flat := in * flatSide
	if flat*s.Latent > maxParams {
		return nil, fmt.Errorf("model is too large: more than %d weights", maxParams)
	}
	add([]int{flat, s.Latent}, []int{1, s.Latent})
	add([]int{s.Latent, flat}, []int{1, flat})
	for i := len(s.Channels) - 1; i >= 0; i-- {
		out := channelsOut
		if i > 0 {
			out = s.Channels[i-1]
		}
		add([]int{out, s.Channels[i], k, kw}, []int{1, out, 1, 1})
	}
	return ps, nil
}

// dropFunc applies dropout to a block's output in a training graph; inference graphs
// pass nil.
type dropFunc func(*G.Node) (*G.Node, error)

// convGraph builds the network on x, shaped (batch, 1, rows, cols) for images or
// (batch, features, window, 1) for windows, and returns its output in the same shape.
func convGraph(s Spec, x *G.Node, w []*G.Node, drop dropFunc) (*G.Node, error) {
	batch := x.Shape()[0]
	k, pad := s.Kernel, s.Kernel/2
	kw, padW, twoW := k, pad, 2 // along the image's width; along nothing for windows
	if s.Window > 0 {
		kw, padW, twoW = 1, 0, 1
	}
	strided := s.Resampling == Strided
	conv := func(h *G.Node, l, stride int) (*G.Node, error) {
		strideW := 1
		if stride > 1 {
			strideW = twoW
		}
		z, err := G.Conv2d(h, w[2*l], tensor.Shape{k, kw}, []int{pad, padW}, []int{stride, strideW}, []int{1, 1})
		if err != nil {
			return nil, err
		}
		return G.BroadcastAdd(z, w[2*l+1], nil, []byte{0, 2, 3})
	}
	// interleave puts other after each element of h along time (windows) or along both
	// sides (images): nearest-neighbour upsampling when other is h, the zero insertion
	// of a transposed convolution when other is zero.
	interleave := func(h *G.Node, other func(*G.Node) *G.Node) (*G.Node, error) {
		sh := h.Shape()
		double := func(h *G.Node, rows, cols int) (*G.Node, error) {
			// (b, c, n, 1) side by side with its partner is (b, c, n, 2); read as
			// (b, c, rows, cols) each element is followed by its partner's.
			flat, err := G.Reshape(h, tensor.Shape{sh[0], sh[1], h.Shape()[2] * h.Shape()[3], 1})
			if err != nil {
				return nil, err
			}
			pair, err := G.Concat(3, flat, other(flat))
			if err != nil {
				return nil, err
			}
			return G.Reshape(pair, tensor.Shape{sh[0], sh[1], rows, cols})
		}
		if s.Window > 0 {
			return double(h, 2*sh[2], 1)
		}
		// Images: along each row, then every row followed by its partner. Gorgonia's
		// Upsample2D does the same for the nearest-neighbour case, but its gradient
		// reads and writes one boxed value at a time: 6.6 million allocations and
		// most of a training step of the default MNIST ConvAutoencoder.
		wide, err := double(h, sh[2], 2*sh[3]) // along each row
		if err != nil {
			return nil, err
		}
		// Then every row followed by a row of zeros: (b, c, h, 2w) beside zeros is
		// (b, c, h, 4w), read as (b, c, 2h, 2w).
		pair, err := G.Concat(3, wide, other(wide))
		if err != nil {
			return nil, err
		}
		return G.Reshape(pair, tensor.Shape{sh[0], sh[1], 2 * sh[2], 2 * sh[3]})
	}
	same := func(h *G.Node) *G.Node { return h }
	zeros := func(h *G.Node) *G.Node {
		return G.NodeFromAny(h.Graph(), tensor.New(tensor.WithShape(h.Shape()...), tensor.Of(tensor.Float32)))
	}
	dropout := func(h *G.Node, i, blocks int) (*G.Node, error) {
		if drop == nil || s.Dropout == 0 || i == blocks-1 {
			return h, nil
		}
		return drop(h)
	}
	h, l := x, 0
	var err error
	for i := range s.Channels {
		stride := 1
		if strided {
			stride = 2
		}
		if h, err = conv(h, l, stride); err != nil {
			return nil, fmt.Errorf("encoder block %d: %w", l, err)
		}
		if h, err = graphActivation(s.Activation, h); err != nil {
			return nil, err
		}
		if !strided {
			if h, err = G.MaxPool2D(h, tensor.Shape{2, twoW}, []int{0, 0}, []int{2, twoW}); err != nil {
				return nil, fmt.Errorf("encoder pooling %d: %w", l, err)
			}
		}
		if h, err = dropout(h, i, len(s.Channels)); err != nil {
			return nil, err
		}
		l++
	}
	if strided {
		for i := range s.Channels {
			if h, err = interleave(h, zeros); err != nil {
				return nil, fmt.Errorf("decoder block %d: %w", i, err)
			}
			if h, err = conv(h, l, 1); err != nil {
				return nil, fmt.Errorf("decoder block %d: %w", i, err)
			}
			if h, err = graphActivation(s.Activation, h); err != nil {
				return nil, err
			}
			if h, err = dropout(h, i, len(s.Channels)); err != nil {
				return nil, err
			}
			l++
		}
		if h, err = conv(h, l, 1); err != nil {
			return nil, fmt.Errorf("output layer: %w", err)
		}
		return repeatChannel(x, h)
	}
	shape := h.Shape().Clone()
	flat := shape[1] * shape[2] * shape[3]
	if h, err = G.Reshape(h, tensor.Shape{batch, flat}); err != nil {
		return nil, err
	}
	for range 2 { // down to the latent vector and back up
		if h, err = G.Mul(h, w[2*l]); err != nil {
			return nil, fmt.Errorf("dense layer %d: %w", l, err)
		}
		if h, err = G.BroadcastAdd(h, w[2*l+1], nil, []byte{0}); err != nil {
			return nil, err
		}
		if h, err = graphActivation(s.Activation, h); err != nil {
			return nil, err
		}
		l++
	}
	if h, err = G.Reshape(h, shape); err != nil {
		return nil, err
	}
	for i := range s.Channels {
		if h, err = interleave(h, same); err != nil {
			return nil, fmt.Errorf("decoder upsampling %d: %w", i, err)
		}
		if h, err = conv(h, l, 1); err != nil {
			return nil, fmt.Errorf("decoder block %d: %w", i, err)
		}
		if i < len(s.Channels)-1 {
			if h, err = graphActivation(s.Activation, h); err != nil {
				return nil, err
			}
			if h, err = dropout(h, i, len(s.Channels)); err != nil {
				return nil, err
			}
		}
		l++
	}
	return repeatChannel(x, h)
}

// repeatChannel gives a one-channel output (OutputChannels 1) once per input channel,
// so the loss and the scores compare it with every feature.
func repeatChannel(x, h *G.Node) (*G.Node, error) {
	n := x.Shape()[1]
	if h.Shape()[1] == n {
		return h, nil
	}
	copies := make([]*G.Node, n)
	for i := range copies {
		copies[i] = h
	}
	return G.Concat(1, copies...)
}
