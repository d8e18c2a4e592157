//go:build openblas

package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The C update gives the pure-Go one's bits, for every length (vector bodies and
// their tails), with and without clipping, on gradients that include zeros, tiny
// values and values beyond the clip, over several steps.
func TestAdamInCMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{1, 7, 16, 17, 63, 1000, adamChunk + 5} {
		for _, clip := range []float32{0, 0.5} {
			g := make([]float32, n)
			w := make([]float32, n)
			for i := range w {
				w[i] = float32(rng.NormFloat64())
			}
			m, v := make([]float32, n), make([]float32, n)
			w2, m2, v2 := slices.Clone(w), slices.Clone(m), slices.Clone(v)
			for step := 1; step <= 5; step++ {
				for i := range g {
					switch rng.IntN(4) {
					case 0:
						g[i] = 0
					case 1:
						g[i] = float32(rng.NormFloat64() * 1e-32) // below the flush
					default:
						g[i] = float32(rng.NormFloat64())
					}
				}
				c1, c2 := 1-math.Pow(0.9, float64(step)), 1-math.Pow(0.999, float64(step))
				u := update{b1: 0.9, b2: 0.999, stepSize: float32(0.01 / c1), invC2: float32(1 / c2), eps: 1e-8, clip: clip}
				u.applyKeep(g, w, m, v)
				u.applyKeepGo(g, w2, m2, v2)
			}
			for i := range w {
				if math.Float32bits(w[i]) != math.Float32bits(w2[i]) || m[i] != m2[i] || v[i] != v2[i] {
					t.Fatalf("n %d clip %v, value %d: C w %v m %v v %v; Go w %v m %v v %v", n, clip, i, w[i], m[i], v[i], w2[i], m2[i], v2[i])
				}
			}
		}
	}
}
