package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// CheckProducts multiplies random matrices of odd sizes and edge tiles (1 to 784 on a
// side, both transpositions) with the BLAS in use and with gonum's pure Go, and says
// which product differs. A kernel that gets one wrong must not be used however fast
// it is.
func CheckProducts(trials int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255, 257, 784}
	var ref gonum.Implementation
	impl := blas32.Implementation()
	for trial := range trials {
		m, n, k := sizes[rng.IntN(len(sizes))], sizes[rng.IntN(len(sizes))], sizes[rng.IntN(len(sizes))]
		ta, tb := blas.NoTrans, blas.NoTrans
		lda, ldb := k, n
		if rng.IntN(2) == 1 {
			ta, lda = blas.Trans, m
		}
		if rng.IntN(2) == 1 {
			tb, ldb = blas.Trans, k
		}
		a, b := randomValues(rng, m*k), randomValues(rng, k*n)
		got, want := make([]float32, m*n), make([]float32, m*n)
		impl.Sgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, got, n)
		ref.Sgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, want, n)
		for i := range want {
			// k products of values in [-1, 1], summed in another order in float32
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*float64(k)+1e-6 || math.IsNaN(float64(got[i])) {
				return fmt.Errorf("%s kernels: product %d (%dx%dx%d, %c%c) element %d is %g, gonum's pure Go %g",
					BLASKernels(), trial, m, n, k, ta, tb, i, got[i], want[i])
			}
		}
	}
	return nil
}

func randomValues(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	return x
}
