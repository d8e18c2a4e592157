//go:build openblas && !blis

package main

// #cgo LDFLAGS: -lopenblas
// #include <cblas.h>
import "C"

import "unsafe"

func lib() string { return "openblas" }

func kernels() string { return C.GoString(C.openblas_get_corename()) }

func sgemm(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32) {
	ta, tb := C.CblasNoTrans, C.CblasNoTrans
	if tA {
		ta = C.CblasTrans
	}
	if tB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, uint32(ta), uint32(tb), C.blasint(m), C.blasint(n), C.blasint(k), 1,
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda), (*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb), 0,
		(*C.float)(unsafe.Pointer(&c[0])), C.blasint(n))
}
