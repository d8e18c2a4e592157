package model

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// lstmTrainer trains an LSTMAutoencoder without a graph, as denseTrainer does a dense
// network: the input projections of every time step are one product, each step adds
// its recurrent product and runs the gates in one pass, and backpropagation through
// time gathers the weight gradients of all steps into one product each. Unrolled in a
// Gorgonia graph, a window of 32 steps would be several hundred small operations a
// pass, each too small to keep the cores busy.
//
// Buffers hold one row per (window, step), window-major: row b*T+t.
type lstmTrainer struct {
	net           *Network
	batch         int
	f, T, H, L, D int       // features, window, hidden size, latent size, inputs (T*f)
	gates         []float32 // rows of 4H: the step's input projection, then its gate values
	hprev         []float32 // rows of H: the hidden state a step starts from
	cells         []float32 // rows of H: the cell state a step ends with
	hT, z, out    []float32 // the last hidden state, the latent layer, the output
	dgates        []float32 // rows of 4H: the loss's gradient at the gates' inputs
	dh, dc, dtmp  []float32 // B x H
	dz, dout      []float32
	ones          []float32
	grads         [][]float32
	opt           *denseAdam
	restoreBLAS   func()
}

func newLSTMTrainer(net *Network, batch int, lr float64) *lstmTrainer {
	s := net.Spec
	t := &lstmTrainer{net: net, batch: batch, f: s.Features(), T: s.Window, H: s.Hidden[0], L: s.Latent, D: s.Inputs}
	bt := batch * t.T
	t.gates, t.dgates = make([]float32, bt*4*t.H), make([]float32, bt*4*t.H)
	t.hprev, t.cells = make([]float32, bt*t.H), make([]float32, bt*t.H)
	t.hT, t.dh, t.dc, t.dtmp = make([]float32, batch*t.H), make([]float32, batch*t.H), make([]float32, batch*t.H), make([]float32, batch*t.H)
	t.z, t.dz = make([]float32, batch*t.L), make([]float32, batch*t.L)
	t.out, t.dout = make([]float32, batch*t.D), make([]float32, batch*t.D)
	t.ones = make([]float32, bt)
	for i := range t.ones {
		t.ones[i] = 1
	}
	for _, p := range net.Params {
		t.grads = append(t.grads, make([]float32, len(p.Data)))
	}
	t.opt = newDenseAdam(lr, net.Params, t.grads)
	t.opt.clip = lstmGradClip // recurrent gradients can explode
	t.restoreBLAS = singleThreadedBLAS()
	return t
}

func (t *lstmTrainer) BatchSize() int    { return t.batch }
func (t *lstmTrainer) SeedDropout(int64) {}

// Close gives OpenBLAS its threads back.
func (t *lstmTrainer) Close() error {
	if t.restoreBLAS != nil {
		t.restoreBLAS()
		t.restoreBLAS = nil
	}
	return nil
}

// Step runs one Adam step on a batch of windows and returns the batch's loss before it.
func (t *lstmTrainer) Step(x, _ []float32) (float32, error) {
	loss, err := t.gradients(x)
	if err != nil {
		return 0, err
	}
	t.opt.step()
	return loss, nil
}

// rows is the B x cols view of step s in a buffer of rows b*T+t.
func (t *lstmTrainer) rows(buf []float32, s, cols int) blas32.General {
	return blas32.General{Rows: t.batch, Cols: cols, Stride: t.T * cols, Data: buf[s*cols:]}
}

func gemm(ta, tb blas.Transpose, a, b blas32.General, beta float32, c blas32.General) {
	blas32.Gemm(ta, tb, 1, a, b, beta, c)
}

func mat(rows, cols int, data []float32) blas32.General {
	return blas32.General{Rows: rows, Cols: cols, Stride: cols, Data: data}
}

// gradients runs the forward pass and backpropagation through time, leaving every
// parameter's gradient in t.grads, and returns the mean squared error.
func (t *lstmTrainer) gradients(x []float32) (float32, error) {
	B, T, H, f, L, D := t.batch, t.T, t.H, t.f, t.L, t.D
	if len(x) != B*D {
		return 0, fmt.Errorf("batch of %d values; want %d windows of %d", len(x), B, D)
	}
	p := t.net.Params
	W0, b0, W1, b1, W2, b2, W3, b3 := p[0].Data, p[1].Data, p[2].Data, p[3].Data, p[4].Data, p[5].Data, p[6].Data, p[7].Data
	bt := B * T
	// Every step's input projection at once: x read as (B*T) x f.
	gemm(blas.NoTrans, blas.NoTrans, mat(bt, f, x), mat(f, 4*H, W0), 0, mat(bt, 4*H, t.gates))
	for b := 0; b < B; b++ { // the first step of every window starts from zeros

		clear(t.hprev[(b*T)*H : (b*T+1)*H])
	}
	for s := 0; s < T; s++ {
		if s > 0 {
			gemm(blas.NoTrans, blas.NoTrans, t.rows(t.hprev, s, H), mat(H, 4*H, W1), 1, t.rows(t.gates, s, 4*H))
		}
		for b := 0; b < B; b++ {
			r := b*T + s
			g := t.gates[r*4*H : (r+1)*4*H : (r+1)*4*H]
			c := t.cells[r*H : (r+1)*H : (r+1)*H]
			for k := 0; k < H; k++ {
				i := sigmoid32(g[k] + b0[k] + b1[k])
				fg := sigmoid32(g[H+k] + b0[H+k] + b1[H+k])
				cand := tanh32(g[2*H+k] + b0[2*H+k] + b1[2*H+k])
				o := sigmoid32(g[3*H+k] + b0[3*H+k] + b1[3*H+k])
				g[k], g[H+k], g[2*H+k], g[3*H+k] = i, fg, cand, o
				var cp float32
				if s > 0 {
					cp = t.cells[(r-1)*H+k]
				}
				c[k] = fg*cp + i*cand
				h := o * tanh32(c[k])
				if s+1 < T {
					t.hprev[(r+1)*H+k] = h
				} else {
					t.hT[b*H+k] = h
				}
			}
		}
	}
	gemm(blas.NoTrans, blas.NoTrans, mat(B, H, t.hT), mat(H, L, W2), 0, mat(B, L, t.z))
	biasActivate(t.net.Spec.Activation, t.z, b2)
	gemm(blas.NoTrans, blas.NoTrans, mat(B, L, t.z), mat(L, D, W3), 0, mat(B, D, t.out))
	biasActivate("", t.out, b3)

	loss := mseGrad(t.dout, t.out, x, D)

	g := t.grads
	// Decoder and latent layer.
	gemm(blas.Trans, blas.NoTrans, mat(B, L, t.z), mat(B, D, t.dout), 0, mat(L, D, g[6]))
	blas32.Gemv(blas.Trans, 1, mat(B, D, t.dout), blas32.Vector{N: B, Inc: 1, Data: t.ones}, 0, blas32.Vector{N: D, Inc: 1, Data: g[7]})
	gemm(blas.NoTrans, blas.Trans, mat(B, D, t.dout), mat(L, D, W3), 0, mat(B, L, t.dz))
	activationGrad(t.net.Spec.Activation, t.dz, t.z)
	gemm(blas.Trans, blas.NoTrans, mat(B, H, t.hT), mat(B, L, t.dz), 0, mat(H, L, g[4]))
	blas32.Gemv(blas.Trans, 1, mat(B, L, t.dz), blas32.Vector{N: B, Inc: 1, Data: t.ones}, 0, blas32.Vector{N: L, Inc: 1, Data: g[5]})
	gemm(blas.NoTrans, blas.Trans, mat(B, L, t.dz), mat(H, L, W2), 0, mat(B, H, t.dh))

	// Through time: dh and dc carry the gradient to the step before.
	clear(t.dc)
	for s := T - 1; s >= 0; s-- {
		for b := 0; b < B; b++ {
			r := b*T + s
			gv := t.gates[r*4*H : (r+1)*4*H : (r+1)*4*H]
			dg := t.dgates[r*4*H : (r+1)*4*H : (r+1)*4*H]
			dh, dc := t.dh[b*H:(b+1)*H:(b+1)*H], t.dc[b*H:(b+1)*H:(b+1)*H]
			for k := 0; k < H; k++ {
				i, fg, cand, o := gv[k], gv[H+k], gv[2*H+k], gv[3*H+k]
				tc := tanh32(t.cells[r*H+k])
				d := dc[k] + dh[k]*o*(1-tc*tc)
				var cp float32
				if s > 0 {
					cp = t.cells[(r-1)*H+k]
				}
				dg[k] = d * cand * i * (1 - i)
				dg[H+k] = d * cp * fg * (1 - fg)
				dg[2*H+k] = d * i * (1 - cand*cand)
				dg[3*H+k] = dh[k] * tc * o * (1 - o)
				dc[k] = d * fg
			}
		}
		if s > 0 {
			gemm(blas.NoTrans, blas.Trans, t.rows(t.dgates, s, 4*H), mat(H, 4*H, W1), 0, mat(B, H, t.dh))
		}
	}
	// Every step's weight gradients in one product each; both biases get the same.
	gemm(blas.Trans, blas.NoTrans, mat(bt, f, x), mat(bt, 4*H, t.dgates), 0, mat(f, 4*H, g[0]))
	gemm(blas.Trans, blas.NoTrans, mat(bt, H, t.hprev), mat(bt, 4*H, t.dgates), 0, mat(H, 4*H, g[2]))
	blas32.Gemv(blas.Trans, 1, mat(bt, 4*H, t.dgates), blas32.Vector{N: bt, Inc: 1, Data: t.ones}, 0, blas32.Vector{N: 4 * H, Inc: 1, Data: g[1]})
	copy(g[3], g[1])
	return float32(loss), nil
}

// exp32 is e^x in float32, as Cephes's expf computes it: x = n ln 2 + r with |r| <=
// ln 2 / 2, e^r by a degree-5 polynomial, times 2^n. It is within 2e-7 relative of
// math.Exp and about three times faster: the gates of an LSTM step call it for every
// unit, and math.Exp and math.Tanh were half of a training step.
func exp32(x float32) float32 {
	switch {
	case x > 88.72283: // ln of the largest float32
		return float32(math.Inf(1))
	case x < -87.3:
		return 0
	}
	n := float32(math.Floor(float64(x*1.44269504088896341 + 0.5)))
	r := x - n*0.693359375 - n*-2.12194440e-4
	z := r * r
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	p = p*z + r + 1
	if n > 127 { // 2^128 has no float32 exponent; e^x still fits
		p, n = 2*p, n-1
	}
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// sigmoid32 is 1 / (1 + e^-x) with exp32.
func sigmoid32(x float32) float32 { return 1 / (1 + exp32(-x)) }

// tanh32 is tanh(x) with exp32: 1 - 2 / (e^2x + 1), within 1e-7 of math.Tanh.
func tanh32(x float32) float32 { return 1 - 2/(exp32(2*x)+1) }
