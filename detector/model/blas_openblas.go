//go:build openblas

package model

// Built with -tags openblas, training graphs and inference run their matrix products on
// OpenBLAS (Debian: libopenblas-dev) through cgo instead of Gonum's pure-Go BLAS, which
// spends most of a training step in its sgemm. The default build stays pure Go.

// #cgo LDFLAGS: -lopenblas
// char* openblas_get_corename(void);
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// BLAS names the BLAS this build uses.
const BLAS = "openblas"

func init() {
	G.Use(netlib.Implementation{})
	blas32.Use(netlib.Implementation{})
}

// singleThreadedBLAS makes OpenBLAS run each product on the calling thread until
// restore is called. OpenBLAS splits even a 64 x 32 x 128 product between its threads,
// and an LSTM step is dozens of those: the LSTM trainer ran 14,200 samples/s on one
// thread against 10,500 on two (window 32, 8 features, batch 64, 2 cores). The setting
// is the process's: the trainer holds it while it lives, and training runs alone.
func singleThreadedBLAS() (restore func()) {
	n := blasThreads()
	setBLASThreads(1)
	return func() { setBLASThreads(n) }
}

// BLASKernels names the kernels OpenBLAS chose for this CPU (OPENBLAS_CORETYPE
// overrides its choice), for logs and benchmark reports.
// With the products on another library (ChooseKernels), it names that too.
func BLASKernels() string {
	k := C.GoString(C.openblas_get_corename())
	if products != "" {
		return k + ", matrix products on " + products
	}
	return k
}
