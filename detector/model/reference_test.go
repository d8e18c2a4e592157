package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// A plain-Go forward pass of the graph-only networks, written from their description
// (conv.go, lstm.go) and sharing no code with the Gorgonia graphs, so that a mistake in
// the graph builder, used for both training and inference, cannot hide by agreeing
// with itself.

// tensor3 is channels x rows x cols, row-major.
type tensor3 struct {
	c, r, w int
	v       []float64
}

func newTensor3(c, r, w int) tensor3 { return tensor3{c, r, w, make([]float64, c*r*w)} }
func (t tensor3) at(c, r, w int) float64 {
	if r < 0 || r >= t.r || w < 0 || w >= t.w {
		return 0 // zero padding
	}
	return t.v[(c*t.r+r)*t.w+w]
}
func (t tensor3) set(c, r, w int, v float64) { t.v[(c*t.r+r)*t.w+w] = v }

func refActivation(kind string, v float64) float64 {
	switch kind {
	case ReLU:
		return math.Max(v, 0)
	case Tanh:
		return math.Tanh(v)
	case Sigmoid:
		return 1 / (1 + math.Exp(-v))
	}
	panic("reference: activation " + kind)
}

// refConv is a "same" convolution with a kernel (out, in, k, kw) and a bias per output
// channel.
func refConv(in tensor3, p, b Param) tensor3 {
	out, k, kw := p.Shape[0], p.Shape[2], p.Shape[3]
	res := newTensor3(out, in.r, in.w)
	for o := range out {
		for r := range in.r {
			for w := range in.w {
				s := float64(b.Data[o])
				for i := range in.c {
					for dr := range k {
						for dw := range kw {
							s += float64(p.Data[((o*in.c+i)*k+dr)*kw+dw]) * in.at(i, r+dr-k/2, w+dw-kw/2)
						}
					}
				}
				res.set(o, r, w, s)
			}
		}
	}
	return res
}

func refMaxPool(in tensor3, pr, pw int) tensor3 {
	res := newTensor3(in.c, in.r/pr, in.w/pw)
	for c := range res.c {
		for r := range res.r {
			for w := range res.w {
				m := math.Inf(-1)
				for dr := range pr {
					for dw := range pw {
						m = math.Max(m, in.at(c, r*pr+dr, w*pw+dw))
					}
				}
				res.set(c, r, w, m)
			}
		}
	}
	return res
}

func refUpsample(in tensor3, ur, uw int) tensor3 {
	res := newTensor3(in.c, in.r*ur, in.w*uw)
	for c := range res.c {
		for r := range res.r {
			for w := range res.w {
				res.set(c, r, w, in.at(c, r/ur, w/uw))
			}
		}
	}
	return res
}

// refDense is act(x W + b) for W of shape (in, out); act "" is the identity.
func refDense(x []float64, p, b Param, act string) []float64 {
	out := make([]float64, p.Shape[1])
	for j := range out {
		s := float64(b.Data[j])
		for i, v := range x {
			s += v * float64(p.Data[i*p.Shape[1]+j])
		}
		if act != "" {
			s = refActivation(act, s)
		}
		out[j] = s
	}
	return out
}

// refStridedConv is a stride-2 convolution (along rows, and along columns when the
// kernel is wider than one) with zero padding of half the kernel: output (r, w) is
// centred on input (2r, 2w).
func refStridedConv(in tensor3, p, b Param) tensor3 {
	out, k, kw := p.Shape[0], p.Shape[2], p.Shape[3]
	sw := 1
	if kw > 1 {
		sw = 2
	}
	res := newTensor3(out, in.r/2, in.w/sw)
	for o := range out {
		for r := range res.r {
			for w := range res.w {
				s := float64(b.Data[o])
				for i := range in.c {
					for dr := range k {
						for dw := range kw {
							s += float64(p.Data[((o*in.c+i)*k+dr)*kw+dw]) * in.at(i, 2*r+dr-k/2, sw*w+dw-kw/2)
						}
					}
				}
				res.set(o, r, w, s)
			}
		}
	}
	return res
}

// refTransposedConv is a stride-2 transposed convolution written as a scatter: input
// (r, w) adds its kernel-weighted value to the outputs around (2r, 2w).
func refTransposedConv(in tensor3, p, b Param) tensor3 {
	out, k, kw := p.Shape[0], p.Shape[2], p.Shape[3]
	sw := 1
	if kw > 1 {
		sw = 2
	}
	res := newTensor3(out, in.r*2, in.w*sw)
	for o := range out {
		for i := range res.r * res.w {
			res.v[o*res.r*res.w+i] = float64(b.Data[o])
		}
		for c := range in.c {
			for r := range in.r {
				for w := range in.w {
					v := in.at(c, r, w)
					for dr := range k {
						for dw := range kw {
							or, ow := 2*r-dr+k/2, sw*w-dw+kw/2
							if or < 0 || or >= res.r || ow < 0 || ow >= res.w {
								continue
							}
							res.v[(o*res.r+or)*res.w+ow] += float64(p.Data[((o*in.c+c)*k+dr)*kw+dw]) * v
						}
					}
				}
			}
		}
	}
	return res
}

// refConvForward reconstructs one record: an image (rows x cols), or a window of rows
// in time order (window x features), where each feature is a channel along time.
// Dropout is left out: inference keeps every activation.
func refConvForward(s Spec, ps []Param, x []float32) []float64 {
	var h tensor3
	pr, pw := 2, 2
	f := 1
	if s.Window > 0 {
		f = s.Features()
		h, pw = newTensor3(f, s.Window, 1), 1
		for t := range s.Window {
			for j := range f {
				h.set(j, t, 0, float64(x[t*f+j]))
			}
		}
	} else {
		h = newTensor3(1, s.ImageRows, s.ImageCols)
		for i, v := range x {
			h.v[i] = float64(v)
		}
	}
	activate := func(h tensor3) {
		for i := range h.v {
			h.v[i] = refActivation(s.Activation, h.v[i])
		}
	}
	l := 0
	for range s.Channels {
		if s.Resampling == Strided {
			h = refStridedConv(h, ps[2*l], ps[2*l+1])
			activate(h)
		} else {
			h = refConv(h, ps[2*l], ps[2*l+1])
			activate(h)
			h = refMaxPool(h, pr, pw)
		}
		l++
	}
	if s.Resampling == Strided {
		for range s.Channels {
			h = refTransposedConv(h, ps[2*l], ps[2*l+1])
			activate(h)
			l++
		}
		h = refConv(h, ps[2*l], ps[2*l+1])
	} else {
		c, r, w := h.c, h.r, h.w
		z := refDense(h.v, ps[2*l], ps[2*l+1], s.Activation)
		h = tensor3{c, r, w, refDense(z, ps[2*l+2], ps[2*l+3], s.Activation)}
		l += 2
		for i := range s.Channels {
			h = refConv(refUpsample(h, pr, pw), ps[2*l], ps[2*l+1])
			if i < len(s.Channels)-1 {
				activate(h)
			}
			l++
		}
	}
	if s.Window == 0 {
		return h.v
	}
	out := make([]float64, len(x))
	for t := range s.Window {
		for j := range f {
			out[t*f+j] = h.at(min(j, h.c-1), t, 0) // one output channel stands for every feature
		}
	}
	return out
}

// refLSTMForward reconstructs one window (window x features, time order): an LSTM
// with gates in PyTorch's order (input, forget, candidate, output), its last hidden
// state through the latent layer, and a dense decoder of the whole window.
func refLSTMForward(s Spec, ps []Param, x []float32) []float64 {
	f, hs := s.Features(), s.Hidden[0]
	h, c := make([]float64, hs), make([]float64, hs)
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	for t := range s.Window {
		xt := make([]float64, f)
		for j := range xt {
			xt[j] = float64(x[t*f+j])
		}
		a, rec := refDense(xt, ps[0], ps[1], ""), refDense(h, ps[2], ps[3], "")
		for k := range hs {
			i := sig(a[k] + rec[k])
			fg := sig(a[hs+k] + rec[hs+k])
			g := math.Tanh(a[2*hs+k] + rec[2*hs+k])
			o := sig(a[3*hs+k] + rec[3*hs+k])
			c[k] = fg*c[k] + i*g
			h[k] = o * math.Tanh(c[k])
		}
	}
	return refDense(refDense(h, ps[4], ps[5], s.Activation), ps[6], ps[7], "")
}

func TestGraphNetworksMatchAPlainReference(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		ref  func(Spec, []Param, []float32) []float64
	}{
		{"conv over images", Spec{Type: ConvAutoencoder, Inputs: 8 * 4, Channels: []int{3, 2}, Kernel: 3, Latent: 5,
			Activation: Tanh, ImageRows: 8, ImageCols: 4}, refConvForward},
		{"conv over windows", Spec{Type: ConvAutoencoder, Inputs: 8 * 3, Window: 8, Channels: []int{4, 2}, Kernel: 3,
			Latent: 4, Activation: ReLU}, refConvForward},
		{"conv over a window of one feature", Spec{Type: ConvAutoencoder, Inputs: 8, Window: 8, Channels: []int{2},
			Kernel: 5, Latent: 3, Activation: Tanh}, refConvForward},
		{"strided conv over windows", Spec{Type: ConvAutoencoder, Inputs: 8 * 3, Window: 8, Channels: []int{4, 2}, Kernel: 3,
			Resampling: Strided, Activation: ReLU}, refConvForward},
		{"strided conv over windows, one output channel, dropout", Spec{Type: ConvAutoencoder, Inputs: 16 * 3, Window: 16,
			Channels: []int{4, 3}, Kernel: 7, Resampling: Strided, Dropout: 0.2, OutputChannels: 1, Activation: ReLU}, refConvForward},
		{"strided conv over images", Spec{Type: ConvAutoencoder, Inputs: 8 * 4, Channels: []int{3, 2}, Kernel: 3,
			Resampling: Strided, Activation: Tanh, ImageRows: 8, ImageCols: 4}, refConvForward},
		{"pooling conv over windows, one output channel", Spec{Type: ConvAutoencoder, Inputs: 8 * 3, Window: 8,
			Channels: []int{4, 2}, Kernel: 3, Latent: 4, OutputChannels: 1, Activation: Tanh}, refConvForward},
		{"lstm", Spec{Type: LSTMAutoencoder, Inputs: 5 * 3, Window: 5, Hidden: []int{4}, Latent: 3, Activation: Tanh}, refLSTMForward},
		{"lstm of one feature", Spec{Type: LSTMAutoencoder, Inputs: 6, Window: 6, Hidden: []int{3}, Latent: 2,
			Activation: Sigmoid}, refLSTMForward},
		{"lstm of one hidden unit", Spec{Type: LSTMAutoencoder, Inputs: 4 * 2, Window: 4, Hidden: []int{1}, Latent: 1,
			Activation: Tanh}, refLSTMForward},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net, err := New(tt.spec, 7)
			if err != nil {
				t.Fatal(err)
			}
			// Random weights of a larger scale than the initialisation's, so every
			// layer and gate is far from zero and a misplaced index shows.
			rng := rand.New(rand.NewPCG(3, 4))
			for _, p := range net.Params {
				for i := range p.Data {
					p.Data[i] = float32(rng.NormFloat64() * 0.5)
				}
			}
			d := tt.spec.Inputs
			const rows = 3
			x := make([]float32, rows*d)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			got := net.Forward(x, rows)
			for r := range rows {
				want := tt.ref(tt.spec, net.Params, x[r*d:(r+1)*d])
				for i, w := range want {
					if g := float64(got[r*d+i]); math.Abs(g-w) > 1e-4*math.Max(1, math.Abs(w)) {
						t.Fatalf("row %d output %d: network %.6f, reference %.6f", r, i, g, w)
					}
				}
			}
		})
	}
}
