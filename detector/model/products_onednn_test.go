//go:build openblas

package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// oneDNN's products agree with gonum's pure Go on random shapes, both transpositions
// and edge tiles, as a kernel must before ChooseKernels uses it.
func TestOneDNNProducts(t *testing.T) {
	if err := checkOneDNN(300); err != nil {
		t.Fatal(err)
	}
}

// The general form, which CheckSgemm does not use: sub-matrices (leading dimensions
// wider than the rows), alpha and beta, against gonum's pure Go.
func TestOneDNNSgemmStridedAlphaBeta(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var ref gonum.Implementation
	var o oneDNN
	for trial := range 100 {
		m, n, k := 1+rng.IntN(70), 1+rng.IntN(70), 1+rng.IntN(70)
		tA, tB := trans(rng.IntN(2) == 1), trans(rng.IntN(2) == 1)
		rowsA, colsA := m, k
		if tA == blas.Trans {
			rowsA, colsA = k, m
		}
		rowsB, colsB := k, n
		if tB == blas.Trans {
			rowsB, colsB = n, k
		}
		lda, ldb, ldc := colsA+rng.IntN(5), colsB+rng.IntN(5), n+rng.IntN(5)
		a, b := randomValues(rng, (rowsA-1)*lda+colsA), randomValues(rng, (rowsB-1)*ldb+colsB)
		c := randomValues(rng, (m-1)*ldc+n)
		want := append([]float32(nil), c...)
		alpha, beta := float32(rng.Float64()*4-2), float32(rng.IntN(3))*0.5
		o.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		ref.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc)
		for i := range want {
			if d := math.Abs(float64(c[i] - want[i])); d > 1e-5*float64(k)+1e-6 {
				t.Fatalf("trial %d (%dx%dx%d %v %v lda %d ldb %d ldc %d alpha %v beta %v): element %d is %v, gonum's %v",
					trial, m, n, k, tA, tB, lda, ldb, ldc, alpha, beta, i, c[i], want[i])
			}
		}
	}
}

// Arguments gonum's BLAS refuses are refused the same way (a panic), not handed to
// oneDNN to read past a slice.
func TestOneDNNSgemmRefusesShortSlices(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a product over a slice too short for it did not panic")
		}
	}()
	var o oneDNN
	o.Sgemm(blas.NoTrans, blas.NoTrans, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
}

// Training and a Gorgonia graph give the same results with their products on oneDNN
// as on OpenBLAS: the dense trainer's gradients, and a convolutional autoencoder's
// forward pass (im2col products inside Gorgonia).
func TestOneDNNTrainsAsOpenBLASDoes(t *testing.T) {
	defer useOneDNN(false)
	rng := rand.New(rand.NewPCG(3, 3))
	const batch = 32
	spec := Spec{Type: Autoencoder, Inputs: 37, Hidden: []int{29}, Latent: 5, Activation: ReLU}
	x := randomValues(rng, batch*spec.Inputs)
	grads := func(on bool) [][]float32 {
		useOneDNN(on)
		net, err := New(spec, 5)
		if err != nil {
			t.Fatal(err)
		}
		tr := newDenseTrainer(net, batch, 0)
		defer tr.Close()
		if _, err := tr.gradients(x, nil); err != nil {
			t.Fatal(err)
		}
		return tr.grads
	}
	closeTo(t, "dense gradients", grads(false), grads(true))

	conv := Spec{Type: ConvAutoencoder, Inputs: 16 * 16, Channels: []int{4, 8}, Kernel: 3, Latent: 8,
		Activation: ReLU, ImageRows: 16, ImageCols: 16}
	img := randomValues(rng, 5*conv.Inputs)
	forward := func(on bool) [][]float32 {
		useOneDNN(on)
		net, err := New(conv, 5)
		if err != nil {
			t.Fatal(err)
		}
		return [][]float32{net.Forward(img, 5)}
	}
	closeTo(t, "conv forward", forward(false), forward(true))
}

// closeTo checks each tensor's largest difference is within 1e-5 of its largest value.
func closeTo(t *testing.T, what string, want, got [][]float32) {
	t.Helper()
	for p := range want {
		var diff, size float64
		for i := range want[p] {
			diff = max(diff, math.Abs(float64(got[p][i]-want[p][i])))
			size = max(size, math.Abs(float64(want[p][i])))
		}
		if diff > 1e-5*size {
			t.Fatalf("%s, tensor %d: largest difference %g of largest value %g", what, p, diff, size)
		}
	}
}

// With the products on oneDNN, its threads are the ones OpenBLAS had and OpenBLAS runs
// on the calling thread; singleThreadedBLAS holds the products to one thread and
// gives them back; returning to OpenBLAS gives it its threads back.
func TestOneDNNTakesOpenBLASThreads(t *testing.T) {
	defer useOneDNN(false)
	restore := singleThreadedBLAS() // a known start whatever OPENBLAS_NUM_THREADS says
	setBLASThreads(2)
	useOneDNN(true)
	if blasThreads() != 2 || openBLASThreads() != 1 {
		t.Fatalf("on oneDNN: products on %d threads, OpenBLAS on %d; want 2 and 1", blasThreads(), openBLASThreads())
	}
	back := singleThreadedBLAS()
	if blasThreads() != 1 || openBLASThreads() != 1 {
		t.Fatalf("single-threaded: products on %d threads, OpenBLAS on %d; want 1 and 1", blasThreads(), openBLASThreads())
	}
	back()
	if blasThreads() != 2 {
		t.Fatalf("after single-threaded: products on %d threads; want 2", blasThreads())
	}
	useOneDNN(false)
	if openBLASThreads() != 2 {
		t.Fatalf("back on OpenBLAS: %d threads; want 2", openBLASThreads())
	}
	restore()
}

// Products called at once from many goroutines (a server's concurrent requests: one
// gets the team, the others run on their own threads) are each right.
func TestOneDNNConcurrentProducts(t *testing.T) {
	defer useOneDNN(false)
	useOneDNN(true)
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- checkOneDNN(40) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
