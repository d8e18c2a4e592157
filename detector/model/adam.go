package model

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
)

// adam is the Adam optimiser (Kingma and Ba, 2015, with PyTorch's defaults) fused into
// one pass over each weight tensor. Gorgonia's AdamSolver computes the same update but
// clones every gradient three times a step; on the speed benchmark's network that was
// a sixth of a training step and most of its garbage.
type adam struct {
	lr, beta1, beta2, eps float64
	// clip > 0 clamps each gradient to [-clip, clip] before the update.
	clip float32
	t    int
	m, v [][]float32
}

func newAdam(lr float64, weights []*G.Node) *adam {
	a := &adam{lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-8}
	for _, w := range weights {
		n := w.Shape().TotalSize()
		a.m, a.v = append(a.m, make([]float32, n)), append(a.v, make([]float32, n))
	}
	return a
}

// step applies one update from the gradients the last backward pass left on weights.
func (a *adam) step(weights []*G.Node) error {
	a.t++
	c1 := 1 - math.Pow(a.beta1, float64(a.t))
	c2 := 1 - math.Pow(a.beta2, float64(a.t))
	b1, b2 := float32(a.beta1), float32(a.beta2)
	stepSize := float32(a.lr / c1)
	invC2 := float32(1 / c2)
	eps := float32(a.eps)
	for i, n := range weights {
		g, err := n.Grad()
		if err != nil {
			return fmt.Errorf("no gradient for %s: %w", n.Name(), err)
		}
		grad, ok := g.Data().([]float32)
		w, ok2 := n.Value().Data().([]float32)
		if !ok || !ok2 || len(grad) != len(w) {
			return fmt.Errorf("weight %s: unexpected gradient", n.Name())
		}
		m, v := a.m[i], a.v[i]
		for k, gk := range grad {
			if a.clip > 0 {
				gk = max(-a.clip, min(a.clip, gk))
			}
			m[k] = b1*m[k] + (1-b1)*gk
			v[k] = b2*v[k] + (1-b2)*gk*gk
			w[k] -= stepSize * m[k] / (float32(math.Sqrt(float64(v[k]*invC2))) + eps)
			// The tape machine adds each backward pass into the gradient; start the
			// next one from zero.
			grad[k] = 0
		}
	}
	return nil
}
