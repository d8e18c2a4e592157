package model

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// denseTrainer trains a dense network (Autoencoder, MLPClassifier) without a graph:
// forward and backward passes are BLAS products on buffers allocated once, bias and
// activation are fused into one pass, and so are an activation's derivative and the
// gradient it multiplies. A Gorgonia tape machine spent more than half of a training
// step outside the products (allocating values, broadcasting biases into matrices);
// the graph trainer stays the reference its gradients are tested against.
type denseTrainer struct {
	net   *Network
	batch int
	// act[l] holds layer l's output for the batch (act[0] is the input batch);
	// delta[l] the loss's gradient with respect to layer l+1's pre-activation.
	act, delta [][]float32
	// grads are the gradients of net.Params, in their order and shapes.
	grads [][]float32
	y     []float32
	ones  []float32 // batch ones, for the bias gradients
	opt   *denseAdam
}

func newDenseTrainer(net *Network, batch int, lr float64) *denseTrainer {
	t := &denseTrainer{net: net, batch: batch, ones: make([]float32, batch)}
	for i := range t.ones {
		t.ones[i] = 1
	}
	t.act = append(t.act, nil) // the batch itself, set by each step
	for _, w := range net.widths[1:] {
		t.act = append(t.act, make([]float32, batch*w))
	}
	for _, w := range net.widths[1:] {
		t.delta = append(t.delta, make([]float32, batch*w))
	}
	for _, p := range net.Params {
		t.grads = append(t.grads, make([]float32, len(p.Data)))
	}
	if net.Spec.Type == MLPClassifier {
		t.y = make([]float32, batch)
	}
	t.opt = newDenseAdam(lr, net.Params, t.grads)
	return t
}

func (t *denseTrainer) BatchSize() int { return t.batch }

// SeedDropout does nothing: dense networks have no dropout.
func (t *denseTrainer) SeedDropout(int64) {}

func (t *denseTrainer) Close() error { return nil }

// Step runs one Adam step on a batch and returns the batch's loss before it: the
// backward pass first, then every layer's update.
func (t *denseTrainer) Step(x, y []float32) (float32, error) {
	loss, err := t.gradients(x, y)
	if err != nil {
		return 0, err
	}
	t.opt.step()
	return loss, nil
}

// gradients runs the forward and backward passes of a batch, leaving the gradient of
// the mean loss with respect to every parameter in t.grads, and returns the loss.
func (t *denseTrainer) gradients(x, y []float32) (float32, error) {
	n := t.net
	b := t.batch
	if len(x) != b*n.widths[0] {
		return 0, fmt.Errorf("batch of %d values; want %d rows of %d", len(x), b, n.widths[0])
	}
	if t.y != nil && len(y) != b {
		return 0, fmt.Errorf("%d labels for a batch of %d", len(y), b)
	}
	t.act[0] = x // read only, and only during this step: no copy
	layers := len(n.widths) - 1
	for l := 0; l < layers; l++ {
		in, out := n.widths[l], n.widths[l+1]
		blas32.Gemm(blas.NoTrans, blas.NoTrans, 1,
			blas32.General{Rows: b, Cols: in, Stride: in, Data: t.act[l]},
			blas32.General{Rows: in, Cols: out, Stride: out, Data: n.Params[2*l].Data},
			0, blas32.General{Rows: b, Cols: out, Stride: out, Data: t.act[l+1]})
		kind := n.Spec.Activation
		if l == layers-1 {
			kind = ""
		}
		biasActivate(kind, t.act[l+1], n.Params[2*l+1].Data)
	}

	// The output layer's gradient, from the loss.
	last := layers - 1
	out, d := t.act[layers], t.delta[last]
	var loss float64
	if t.y != nil {
		// Cross-entropy of sigmoid(z): softplus(z) - y*z, whose derivative is
		// sigmoid(z) - y; mean over the batch.
		copy(t.y, y)
		inv := 1 / float32(b)
		for i, z := range out {
			loss += softplus(float64(z)) - float64(t.y[i])*float64(z)
			d[i] = (sigmoid(z) - t.y[i]) * inv
		}
		loss /= float64(b)
	} else {
		loss = mseGrad(d, out, x, n.widths[layers])
	}

	for l := last; l >= 0; l-- {
		in, outW := n.widths[l], n.widths[l+1]
		// dW = act[l]^T delta[l]; db = the column sums of delta[l].
		blas32.Gemm(blas.Trans, blas.NoTrans, 1,
			blas32.General{Rows: b, Cols: in, Stride: in, Data: t.act[l]},
			blas32.General{Rows: b, Cols: outW, Stride: outW, Data: t.delta[l]},
			0, blas32.General{Rows: in, Cols: outW, Stride: outW, Data: t.grads[2*l]})
		// db = delta[l]^T 1, a BLAS product rather than a loop over every value.
		blas32.Gemv(blas.Trans, 1, blas32.General{Rows: b, Cols: outW, Stride: outW, Data: t.delta[l]},
			blas32.Vector{N: b, Inc: 1, Data: t.ones}, 0, blas32.Vector{N: outW, Inc: 1, Data: t.grads[2*l+1]})
		if l > 0 {
			// delta[l-1] = (delta[l] W^T) * act'(act[l]), the derivative read off the
			// activation's output; W is still this step's.
			blas32.Gemm(blas.NoTrans, blas.Trans, 1,
				blas32.General{Rows: b, Cols: outW, Stride: outW, Data: t.delta[l]},
				blas32.General{Rows: in, Cols: outW, Stride: outW, Data: n.Params[2*l].Data},
				0, blas32.General{Rows: b, Cols: in, Stride: in, Data: t.delta[l-1]})
			activationGrad(n.Spec.Activation, t.delta[l-1], t.act[l])
		}
	}
	return float32(loss), nil
}

// mseGradGo returns the mean squared error of out against x (rows of width w), summed
// in float32 per row and in float64 across rows, and writes its gradient with respect
// to out into d.
func mseGradGo(d, out, x []float32, w int) float64 {
	var loss float64
	scale := 2 / float32(len(out))
	for r := 0; r+w <= len(out); r += w {
		o, xr, dr := out[r:r+w:r+w], x[r:r+w:r+w], d[r:r+w:r+w]
		var row float32
		for i := range o {
			e := o[i] - xr[i]
			row += e * e
			dr[i] = scale * e
		}
		loss += float64(row)
	}
	return loss / float64(len(out))
}

// activationGradGo multiplies each gradient in g by the derivative of the activation at
// the point whose output is a (the same length).
func activationGradGo(kind string, g, a []float32) {
	a = a[:len(g)]
	switch kind {
	case ReLU:
		// Branch-free, as in biasActivate: a ReLU output is +0 or positive, and about
		// half are +0. bits-1 is negative (all ones after the shift) only for +0.
		for i, v := range a {
			zero := uint32(int32(math.Float32bits(v)-1) >> 31)
			g[i] = math.Float32frombits(math.Float32bits(g[i]) &^ zero)
		}
	case LeakyReLU:
		for i, v := range a {
			neg := float32(math.Float32bits(v) >> 31) // 1 when negative
			g[i] *= 1 - neg*(1-leakySlope)
		}
	case Tanh:
		for i, v := range a {
			g[i] *= 1 - v*v
		}
	case Sigmoid:
		for i, v := range a {
			g[i] *= v * (1 - v)
		}
	}
}

// softplus is log(1 + e^z) without overflow.
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// denseAdam is the fused Adam update over preallocated gradients, on the training
// goroutine. Splitting it over the cores, as the graph trainer's optimiser does, made
// the whole step slower here: OpenBLAS's threads keep spinning after a product, and a
// second worker competed with them for the other core (4.9 ms a step against 3.6 on
// the speed benchmark's network).
type denseAdam struct {
	adamSchedule
	g, w, m, v [][]float32
}

func newDenseAdam(lr float64, params []Param, grads [][]float32) *denseAdam {
	a := &denseAdam{adamSchedule: newAdamSchedule(lr), g: grads}
	for _, p := range params {
		a.w = append(a.w, p.Data)
		a.m, a.v = append(a.m, make([]float32, len(p.Data))), append(a.v, make([]float32, len(p.Data)))
	}
	return a
}

func (a *denseAdam) step() {
	u := a.next()
	for i := range a.w {
		u.applyKeep(a.g[i], a.w[i], a.m[i], a.v[i])
	}
}
