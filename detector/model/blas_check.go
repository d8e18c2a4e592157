package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// Sgemm is C (m x n, row major, leading dimension n) = op(A) op(B), k the inner size.
type Sgemm func(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32)

// CheckProducts checks the BLAS in use with CheckSgemm.
func CheckProducts(trials int) error {
	return checkLevel3(BLASKernels(), blas32.Implementation(), trials)
}

// checkLevel3 checks impl's Sgemm, named kernels, with CheckSgemm.
func checkLevel3(kernels string, impl blas.Float32Level3, trials int) error {
	return CheckSgemm(kernels, func(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32) {
		impl.Sgemm(trans(tA), trans(tB), m, n, k, 1, a, lda, b, ldb, 0, c, n)
	}, trials)
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// CheckSgemm multiplies random matrices of odd sizes and edge tiles (1 to 784 on a
// side, both transpositions) with sgemm and with gonum's pure Go, and says which
// product differs. A kernel that gets one wrong must not be used however fast it is.
func CheckSgemm(kernels string, sgemm Sgemm, trials int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255, 257, 784}
	var ref gonum.Implementation
	for trial := range trials {
		m, n, k := sizes[rng.IntN(len(sizes))], sizes[rng.IntN(len(sizes))], sizes[rng.IntN(len(sizes))]
		tA, tB := rng.IntN(2) == 1, rng.IntN(2) == 1
		lda, ldb := k, n
		if tA {
			lda = m
		}
		if tB {
			ldb = k
		}
		a, b := randomValues(rng, m*k), randomValues(rng, k*n)
		got, want := make([]float32, m*n), make([]float32, m*n)
		sgemm(tA, tB, m, n, k, a, lda, b, ldb, got)
		ref.Sgemm(trans(tA), trans(tB), m, n, k, 1, a, lda, b, ldb, 0, want, n)
		for i := range want {
			// k products of values in [-1, 1], summed in another order in float32
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*float64(k)+1e-6 || math.IsNaN(float64(got[i])) {
				return fmt.Errorf("%s kernels: product %d (%dx%dx%d, transposed %v, %v) element %d is %g, gonum's pure Go %g",
					kernels, trial, m, n, k, tA, tB, i, got[i], want[i])
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
