//go:build blis && !dnnl

package main

// #cgo CFLAGS: -I/usr/include/x86_64-linux-gnu
// #cgo LDFLAGS: -lblis
// #include <blis.h>
import "C"

import "unsafe"

func lib() string { return "blis" }

func kernels() string {
	return C.GoString(C.bli_arch_string(C.bli_arch_query_id()))
}

func sgemm(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32) {
	ta, tb := C.CblasNoTrans, C.CblasNoTrans
	if tA {
		ta = C.CblasTrans
	}
	if tB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, uint32(ta), uint32(tb), C.f77_int(m), C.f77_int(n), C.f77_int(k), 1,
		(*C.float)(unsafe.Pointer(&a[0])), C.f77_int(lda), (*C.float)(unsafe.Pointer(&b[0])), C.f77_int(ldb), 0,
		(*C.float)(unsafe.Pointer(&c[0])), C.f77_int(n))
}
