//go:build openblas

package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// fusedInput is rows x d values with the cases the bit tricks must get right: +0, -0,
// values on both sides of zero, tiny and large ones.
func fusedInput(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		switch rng.IntN(6) {
		case 0:
			v[i] = 0
		case 1:
			v[i] = float32(math.Copysign(0, -1))
		case 2:
			v[i] = float32(rng.NormFloat64() * 1e-40) // subnormal
		case 3:
			v[i] = float32(rng.NormFloat64() * 1e30)
		default:
			v[i] = float32(rng.NormFloat64())
		}
	}
	return v
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s, value %d: C %v (%#x), Go %v (%#x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// The C bias and activation pass and the activation derivative give the Go passes'
// bits for every kind and for widths that exercise vector bodies and tails.
func TestFusedPassesMatchGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, d := range []int{1, 7, 16, 17, 64, 255, 784} {
		rows := 1 + rng.IntN(9)
		for _, kind := range []string{"", ReLU, LeakyReLU, Tanh, Sigmoid} {
			v, b := fusedInput(rng, rows*d), fusedInput(rng, d)
			want := slices.Clone(v)
			biasActivateGo(kind, want, b)
			biasActivate(kind, v, b)
			sameBits(t, "biasActivate "+kind, v, want)

			if kind == "" {
				continue
			}
			g := fusedInput(rng, rows*d)
			wantG := slices.Clone(g)
			activationGradGo(kind, wantG, v)
			activationGrad(kind, g, v)
			sameBits(t, "activationGrad "+kind, g, wantG)
		}
	}
}

// The C squared errors: the gradient's bits are Go's; the sums, added in another
// order, are within the bound of float32 summation of d positive terms.
func TestFusedSquaredErrorsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, d := range []int{1, 7, 16, 17, 64, 255, 784} {
		rows := 1 + rng.IntN(9)
		out, x := make([]float32, rows*d), make([]float32, rows*d)
		for i := range out {
			out[i], x[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		tol := 2 * float64(d) * 0x1p-24

		sse, want := make([]float32, rows), make([]float32, rows)
		rowSSE(sse, out, x, d)
		rowSSEGo(want, out, x, d)
		for i := range want {
			if math.Abs(float64(sse[i]-want[i])) > tol*float64(want[i]) {
				t.Fatalf("d %d row %d: C sum %v, Go %v", d, i, sse[i], want[i])
			}
		}

		g, wantG := make([]float32, rows*d), make([]float32, rows*d)
		loss, wantLoss := mseGrad(g, out, x, d), mseGradGo(wantG, out, x, d)
		sameBits(t, "mseGrad gradient", g, wantG)
		if math.Abs(loss-wantLoss) > tol*wantLoss {
			t.Fatalf("d %d: C loss %v, Go %v", d, loss, wantLoss)
		}
	}
}
