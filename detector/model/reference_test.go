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

// refConvForward reconstructs one record: an image (rows x cols), or a window of rows
// in time order (window x features), where each feature is a channel along time.
func refConvForward(s Spec, ps []Param, x []float32) []float64 {
	var h tensor3
	pr, pw := 2, 2
	if s.Window > 0 {
		f := s.Features()
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
	l := 0
	for range s.Channels {
		h = refConv(h, ps[2*l], ps[2*l+1])
		for i := range h.v {
			h.v[i] = refActivation(s.Activation, h.v[i])
		}
		h = refMaxPool(h, pr, pw)
		l++
	}
	c, r, w := h.c, h.r, h.w
	z := refDense(h.v, ps[2*l], ps[2*l+1], s.Activation)
	h = tensor3{c, r, w, refDense(z, ps[2*l+2], ps[2*l+3], s.Activation)}
	l += 2
	for i := range s.Channels {
		h = refConv(refUpsample(h, pr, pw), ps[2*l], ps[2*l+1])
		if i < len(s.Channels)-1 {
			for k := range h.v {
				h.v[k] = refActivation(s.Activation, h.v[k])
			}
		}
		l++
	}
	if s.Window == 0 {
		return h.v
	}
	out := make([]float64, len(x))
	for t := range s.Window {
		for j := range h.c {
			out[t*h.c+j] = h.at(j, t, 0)
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
