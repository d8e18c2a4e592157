package model

import "testing"

// TestBLASProducts checks the BLAS this build and process use (OpenBLAS with the
// kernels it picked, under -tags openblas) against gonum's pure Go.
func TestBLASProducts(t *testing.T) {
	if BLAS == "gonum" {
		t.Skip("the pure-Go build has no other BLAS to check: run with -tags openblas")
	}
	if err := CheckProducts(300); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (%s): 300 products agree with gonum's pure Go", BLAS, BLASKernels())
}
