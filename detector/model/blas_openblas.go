//go:build openblas

package model

// Built with -tags openblas, training graphs and inference run their matrix products on
// OpenBLAS (Debian: libopenblas-dev) through cgo instead of Gonum's pure-Go BLAS, which
// spends most of a training step in its sgemm. The default build stays pure Go.

// #cgo LDFLAGS: -lopenblas
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
