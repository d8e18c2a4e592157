package model

import (
	"fmt"
	"math"
	"runtime"
	"sync"

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
	opt   *denseAdam
}

func newDenseTrainer(net *Network, batch int, lr float64) *denseTrainer {
	t := &denseTrainer{net: net, batch: batch}
	for _, w := range net.widths {
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

func (t *denseTrainer) Close() error {
	t.opt.close()
	return nil
}

// Step runs one Adam step on a batch and returns the batch's loss before it.
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
	copy(t.act[0], x)
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
		// Mean squared error over every value of the batch.
		scale := 2 / float32(len(out))
		for i, o := range out {
			e := o - x[i]
			loss += float64(e) * float64(e)
			d[i] = scale * e
		}
		loss /= float64(len(out))
	}

	for l := last; l >= 0; l-- {
		in, outW := n.widths[l], n.widths[l+1]
		// dW = act[l]^T delta[l]; db = the column sums of delta[l].
		blas32.Gemm(blas.Trans, blas.NoTrans, 1,
			blas32.General{Rows: b, Cols: in, Stride: in, Data: t.act[l]},
			blas32.General{Rows: b, Cols: outW, Stride: outW, Data: t.delta[l]},
			0, blas32.General{Rows: in, Cols: outW, Stride: outW, Data: t.grads[2*l]})
		columnSums(t.grads[2*l+1], t.delta[l], outW)
		if l == 0 {
			break
		}
		// delta[l-1] = (delta[l] W^T) * act'(act[l]), the derivative read off the
		// activation's output.
		blas32.Gemm(blas.NoTrans, blas.Trans, 1,
			blas32.General{Rows: b, Cols: outW, Stride: outW, Data: t.delta[l]},
			blas32.General{Rows: in, Cols: outW, Stride: outW, Data: n.Params[2*l].Data},
			0, blas32.General{Rows: b, Cols: in, Stride: in, Data: t.delta[l-1]})
		activationGrad(n.Spec.Activation, t.delta[l-1], t.act[l])
	}
	return float32(loss), nil
}

// columnSums writes into s (width w) the sums of the columns of the rows of m.
func columnSums(s, m []float32, w int) {
	clear(s)
	for r := 0; r+w <= len(m); r += w {
		row := m[r : r+w : r+w]
		for j, v := range row {
			s[j] += v
		}
	}
}

// activationGrad multiplies each gradient in g by the derivative of the activation at
// the point whose output is a (the same length).
func activationGrad(kind string, g, a []float32) {
	a = a[:len(g)]
	switch kind {
	case ReLU:
		for i, v := range a {
			if v <= 0 {
				g[i] = 0
			}
		}
	case LeakyReLU:
		for i, v := range a {
			if v <= 0 {
				g[i] *= leakySlope
			}
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

// denseAdam is the fused Adam update over preallocated gradients, split in chunks
// that long-lived workers update at once: no allocation per step.
type denseAdam struct {
	lr, beta1, beta2, eps float64
	t                     int
	chunks                []adamChunkRef
	u                     update
	work                  chan int
	done                  sync.WaitGroup
	workers               int
}

type adamChunkRef struct{ g, w, m, v []float32 }

func newDenseAdam(lr float64, params []Param, grads [][]float32) *denseAdam {
	a := &denseAdam{lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-8}
	for i, p := range params {
		m, v := make([]float32, len(p.Data)), make([]float32, len(p.Data))
		for lo := 0; lo < len(p.Data); lo += adamChunk {
			hi := min(lo+adamChunk, len(p.Data))
			a.chunks = append(a.chunks, adamChunkRef{grads[i][lo:hi], p.Data[lo:hi], m[lo:hi], v[lo:hi]})
		}
	}
	a.workers = min(runtime.GOMAXPROCS(0), len(a.chunks))
	if a.workers > 1 {
		a.work = make(chan int, len(a.chunks))
		for range a.workers {
			go func() {
				for k := range a.work {
					c := a.chunks[k]
					a.u.applyKeep(c.g, c.w, c.m, c.v)
					a.done.Done()
				}
			}()
		}
	}
	return a
}

func (a *denseAdam) step() {
	a.t++
	c1 := 1 - math.Pow(a.beta1, float64(a.t))
	c2 := 1 - math.Pow(a.beta2, float64(a.t))
	a.u = update{b1: float32(a.beta1), b2: float32(a.beta2), stepSize: float32(a.lr / c1),
		invC2: float32(1 / c2), eps: float32(a.eps)}
	if a.work == nil {
		for _, c := range a.chunks {
			a.u.applyKeep(c.g, c.w, c.m, c.v)
		}
		return
	}
	a.done.Add(len(a.chunks))
	for k := range a.chunks {
		a.work <- k
	}
	a.done.Wait()
}

func (a *denseAdam) close() {
	if a.work != nil {
		close(a.work)
		a.work = nil
	}
}
