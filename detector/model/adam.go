package model

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	G "gorgonia.org/gorgonia"
)

// adam is the Adam optimiser (Kingma and Ba, 2015, with PyTorch's defaults) fused into
// one pass over each weight tensor. Gorgonia's AdamSolver computes the same update but
// clones every gradient three times a step; on the speed benchmark's network that was
// a sixth of a training step and most of its garbage.
type adam struct {
	adamSchedule
	m, v [][]float32
}

// adamSchedule holds Adam's settings and step count, which give each step's constants.
type adamSchedule struct {
	lr, beta1, beta2, eps float64
	// clip > 0 clamps each gradient to [-clip, clip] before the update.
	clip float32
	t    int
}

func newAdamSchedule(lr float64) adamSchedule {
	return adamSchedule{lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-8}
}

// next counts a step and returns its constants, bias corrections included.
func (s *adamSchedule) next() update {
	s.t++
	c1 := 1 - math.Pow(s.beta1, float64(s.t))
	c2 := 1 - math.Pow(s.beta2, float64(s.t))
	return update{
		b1: float32(s.beta1), b2: float32(s.beta2), stepSize: float32(s.lr / c1),
		invC2: float32(1 / c2), eps: float32(s.eps), clip: s.clip,
	}
}

func newAdam(lr float64, weights []*G.Node) *adam {
	a := &adam{adamSchedule: newAdamSchedule(lr)}
	for _, w := range weights {
		n := w.Shape().TotalSize()
		a.m, a.v = append(a.m, make([]float32, n)), append(a.v, make([]float32, n))
	}
	return a
}

// adamChunk is how many values one worker updates at a time: large enough that
// handing out chunks costs nothing next to updating them.
const adamChunk = 1 << 14

// step applies one update from the gradients the last backward pass left on weights.
// Every value's update is independent of the others, so the tensors are cut into
// chunks that all cores update at once; the result does not depend on the cutting.
func (a *adam) step(weights []*G.Node) error {
	u := a.next()
	type chunk struct{ g, w, m, v []float32 }
	var chunks []chunk
	for i, n := range weights {
		g, err := n.Grad()
		if err != nil {
			return fmt.Errorf("no gradient for %s: %w", n.Name(), err)
		}
		grad, ok := g.Data().([]float32)
		w, ok2 := n.Value().Data().([]float32)
		if !ok || !ok2 || len(grad) != len(w) || len(w) != len(a.m[i]) {
			return fmt.Errorf("weight %s: unexpected gradient", n.Name())
		}
		for lo := 0; lo < len(w); lo += adamChunk {
			hi := min(lo+adamChunk, len(w))
			chunks = append(chunks, chunk{grad[lo:hi], w[lo:hi], a.m[i][lo:hi], a.v[i][lo:hi]})
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(chunks))
	if workers <= 1 {
		for _, c := range chunks {
			u.apply(c.g, c.w, c.m, c.v)
		}
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1)) - 1; k < len(chunks); k = int(next.Add(1)) - 1 {
				c := chunks[k]
				u.apply(c.g, c.w, c.m, c.v)
			}
		}()
	}
	wg.Wait()
	return nil
}

// update holds one step's constants.
type update struct {
	b1, b2, stepSize, invC2, eps, clip float32
}

// apply updates weights w and moments m, v from gradients g (all the same length),
// and zeroes g: the tape machine adds each backward pass into the gradient, so the
// next one starts from zero.
func (u update) apply(g, w, m, v []float32) {
	u.applyKeep(g, w, m, v)
	clear(g)
}

// tinyMoment is where a moment is flushed to zero. A weight whose gradient stays 0 (a
// dead ReLU unit, an input pixel that is always 0) has its first moment decay by 0.9 a
// step into subnormal numbers within a few hundred steps, and arithmetic on those is
// many times slower: on the speed benchmark's network with always-zero input pixels,
// the vectorised update took 1.5-1.7 ms a step after 1,400 steps without the flush
// and 0.63-0.65 ms with it (pure Go: 3.1 and 2.7 ms). Such a moment's share of an
// update is below 1e-20 of the learning rate.
const tinyMoment = 1e-30

// applyKeepGo is apply leaving g as it is, for gradients the next backward pass
// overwrites (applyKeep is this, or the same in C in the OpenBLAS build).
func (u update) applyKeepGo(g, w, m, v []float32) {
	w, m, v = w[:len(g)], m[:len(g)], v[:len(g)] // one bounds check, not three per value
	for k, gk := range g {
		if u.clip > 0 {
			gk = max(-u.clip, min(u.clip, gk))
		}
		if gk < tinyMoment && gk > -tinyMoment {
			gk = 0
		}
		mk := u.b1*m[k] + (1-u.b1)*gk
		vk := u.b2*v[k] + ((1-u.b2)*gk)*gk
		if mk < tinyMoment && mk > -tinyMoment {
			mk = 0
		}
		if vk < tinyMoment {
			vk = 0
		}
		m[k], v[k] = mk, vk
		w[k] -= u.stepSize * mk / (float32(math.Sqrt(float64(vk*u.invC2))) + u.eps)
	}
}
