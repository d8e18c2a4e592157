package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A ConvAutoencoder encodes an image with conv blocks (k x k convolution, activation,
// 2 x 2 max pooling), squeezes it through a dense latent layer, and decodes it with
// mirrored blocks (2x upsampling, convolution), the last one back to one channel with a
// linear output so it works with any pixel scaling. Its score is the reconstruction
// error, like the dense autoencoder's.
//
// Over a window of rows (Spec.Window > 0) the same blocks run along time only: each
// feature is an input channel, kernels are k x 1, pooling and upsampling halve and
// double the window, and the decoder ends in one channel per feature. The graph sees a
// window feature-major (features x window x 1); windows arrive time-major (window x
// features), so toGraph and fromGraph transpose them.

// convParams lists the tensors of a ConvAutoencoder: the encoder's kernels and biases,
// the two dense layers around the latent vector, and the decoder's kernels and biases.
func (s Spec) convParams() ([]Param, error) {
	if len(s.Channels) == 0 || s.Kernel < 1 || s.Kernel%2 == 0 || s.Latent < 1 {
		return nil, fmt.Errorf("conv autoencoder needs channels, an odd kernel size and a latent size (got %v, %d, %d)", s.Channels, s.Kernel, s.Latent)
	}
	scale := 1 << len(s.Channels)
	k, kw, in := s.Kernel, s.Kernel, 1
	var flatSide int // positions left after the encoder's pooling
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
	channelsIn := in
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
	flat := in * flatSide
	if flat*s.Latent > maxParams {
		return nil, fmt.Errorf("model is too large: more than %d weights", maxParams)
	}
	add([]int{flat, s.Latent}, []int{1, s.Latent})
	add([]int{s.Latent, flat}, []int{1, flat})
	for i := len(s.Channels) - 1; i >= 0; i-- {
		out := channelsIn
		if i > 0 {
			out = s.Channels[i-1]
		}
		add([]int{out, s.Channels[i], k, kw}, []int{1, out, 1, 1})
	}
	return ps, nil
}

// convGraph builds the network on x, shaped (batch, 1, rows, cols) for images or
// (batch, features, window, 1) for windows, and returns its output in the same shape.
func convGraph(s Spec, x *G.Node, w []*G.Node) (*G.Node, error) {
	batch := x.Shape()[0]
	k, pad := s.Kernel, s.Kernel/2
	kw, padW, poolW := k, pad, 2 // along the image's width; along nothing for windows
	if s.Window > 0 {
		kw, padW, poolW = 1, 0, 1
	}
	conv := func(h *G.Node, l int) (*G.Node, error) {
		z, err := G.Conv2d(h, w[2*l], tensor.Shape{k, kw}, []int{pad, padW}, []int{1, 1}, []int{1, 1})
		if err != nil {
			return nil, err
		}
		return G.BroadcastAdd(z, w[2*l+1], nil, []byte{0, 2, 3})
	}
	upsample := func(h *G.Node) (*G.Node, error) {
		if s.Window == 0 {
			return G.Upsample2D(h, 2)
		}
		// Upsample2D doubles both sides; a window has one. Side by side with itself,
		// (c, t, 2) read as (c, 2t, 1) repeats each step: nearest-neighbour along time.
		sh := h.Shape()
		twice, err := G.Concat(3, h, h)
		if err != nil {
			return nil, err
		}
		return G.Reshape(twice, tensor.Shape{sh[0], sh[1], 2 * sh[2], 1})
	}
	h, l := x, 0
	var err error
	for range s.Channels {
		if h, err = conv(h, l); err != nil {
			return nil, fmt.Errorf("encoder block %d: %w", l, err)
		}
		if h, err = graphActivation(s.Activation, h); err != nil {
			return nil, err
		}
		if h, err = G.MaxPool2D(h, tensor.Shape{2, poolW}, []int{0, 0}, []int{2, poolW}); err != nil {
			return nil, fmt.Errorf("encoder pooling %d: %w", l, err)
		}
		l++
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
		if h, err = upsample(h); err != nil {
			return nil, fmt.Errorf("decoder upsampling %d: %w", i, err)
		}
		if h, err = conv(h, l); err != nil {
			return nil, fmt.Errorf("decoder block %d: %w", i, err)
		}
		if i < len(s.Channels)-1 {
			if h, err = graphActivation(s.Activation, h); err != nil {
				return nil, err
			}
		}
		l++
	}
	return h, nil
}
