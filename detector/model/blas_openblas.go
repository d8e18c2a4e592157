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

// BLASKernels names the kernels OpenBLAS chose for this CPU (OPENBLAS_CORETYPE
// overrides its choice), for logs and benchmark reports.
func BLASKernels() string { return C.GoString(C.openblas_get_corename()) }
