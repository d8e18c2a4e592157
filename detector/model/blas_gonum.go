//go:build !openblas

package model

// BLAS names the BLAS this build uses: Gonum's pure Go, which needs no C library.
const BLAS = "gonum"

// BLASKernels names the BLAS kernels in use.
func BLASKernels() string { return "gonum" }

// singleThreadedBLAS does nothing: Gonum runs small products on the calling goroutine.
func singleThreadedBLAS() (restore func()) { return func() {} }
