//go:build !openblas

package model

// BLAS names the BLAS this build uses: Gonum's pure Go, which needs no C library.
const BLAS = "gonum"
