//go:build dnnl && !openblas && !blis

package main

// #cgo LDFLAGS: -ldnnl
// #include <oneapi/dnnl/dnnl.h>
import "C"

import (
	"fmt"
	"unsafe"
)

func lib() string { return "dnnl" }

func kernels() string { return fmt.Sprintf("onednn isa %#x", int(C.dnnl_get_effective_cpu_isa())) }

func sgemm(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32) {
	ta, tb := C.char('N'), C.char('N')
	if tA {
		ta = 'T'
	}
	if tB {
		tb = 'T'
	}
	C.dnnl_sgemm(ta, tb, C.dnnl_dim_t(m), C.dnnl_dim_t(n), C.dnnl_dim_t(k), 1,
		(*C.float)(unsafe.Pointer(&a[0])), C.dnnl_dim_t(lda), (*C.float)(unsafe.Pointer(&b[0])), C.dnnl_dim_t(ldb), 0,
		(*C.float)(unsafe.Pointer(&c[0])), C.dnnl_dim_t(n))
}
