//go:build openblas

package model

// The OpenBLAS build can run its matrix products on oneDNN's sgemm (Debian's
// libdnnl-dev, the library PyTorch's CPU build ships with), which runs the dense
// models' products faster than OpenBLAS's kernels do (docs/speed.md, `make
// bench-kernels`). Everything else (vector products, Gorgonia's other operations)
// stays on OpenBLAS.
//
// oneDNN runs a product on OpenMP threads, as many as OpenBLAS had
// (OPENBLAS_NUM_THREADS, or the cores), set on the calling thread before each product:
// OpenMP keeps the count per thread, and Go calls from any. OpenBLAS itself then runs
// on the calling thread alone: its idle workers spin on sched_yield and would take
// the CPU oneDNN's threads need. singleThreadedBLAS governs both.
//
// OpenMP gives each calling thread a team of its own, so products called at once (a
// server scoring concurrent requests) would each start that many threads. One product
// at a time gets the team; a product called while another runs goes on its caller's
// thread alone, without waiting: the threads working never exceed the count plus the
// callers.

/*
#cgo LDFLAGS: -ldnnl -lgomp
#include <oneapi/dnnl/dnnl.h>
#include <stdatomic.h>

int openblas_get_num_threads(void);
void openblas_set_num_threads(int);

void omp_set_num_threads(int);

static int kadet_product_threads = 1;

static void kadet_set_product_threads(int n) { kadet_product_threads = n; }

static int kadet_get_product_threads(void) { return kadet_product_threads; }

static atomic_int kadet_team_busy;

static int kadet_onednn_sgemm(char ta, char tb, dnnl_dim_t m, dnnl_dim_t n, dnnl_dim_t k, float alpha,
		const float *a, dnnl_dim_t lda, const float *b, dnnl_dim_t ldb, float beta, float *c, dnnl_dim_t ldc) {
	int idle = 0;
	int team = kadet_product_threads > 1 && atomic_compare_exchange_strong(&kadet_team_busy, &idle, 1);
	omp_set_num_threads(team ? kadet_product_threads : 1);
	int ok = dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == dnnl_success;
	if (team) atomic_store(&kadet_team_busy, 0);
	return ok;
}

static const char *kadet_onednn_isa(void) {
	switch (dnnl_get_effective_cpu_isa()) {
	case dnnl_cpu_isa_sse41: return "sse41";
	case dnnl_cpu_isa_avx: return "avx";
	case dnnl_cpu_isa_avx2: return "avx2";
	case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
	case dnnl_cpu_isa_avx512_core: return "avx512_core";
	case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
	case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
	case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
	default: return "other";
	}
}
*/
import "C"

import (
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// oneDNN is OpenBLAS (through netlib) with Sgemm on oneDNN.
type oneDNN struct{ netlib.Implementation }

// Sgemm is C = alpha op(A) op(B) + beta C, row major, as blas.Float32Level3 defines
// it. Calls netlib's cannot take (bad arguments, which it reports by panicking as
// every gonum BLAS does, and the empty products it answers without a kernel) go to
// it, and so does a product oneDNN declines.
func (o oneDNN) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 || k == 0 || alpha == 0 || !sgemmArgsFit(tA, tB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc) {
		o.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if C.kadet_onednn_sgemm(transChar(tA), transChar(tB), C.dnnl_dim_t(m), C.dnnl_dim_t(n), C.dnnl_dim_t(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.dnnl_dim_t(lda), (*C.float)(unsafe.Pointer(&b[0])), C.dnnl_dim_t(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.dnnl_dim_t(ldc)) == 0 {
		o.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
}

func transChar(t blas.Transpose) C.char {
	if t == blas.NoTrans {
		return 'N'
	}
	return 'T'
}

// sgemmArgsFit reports arguments of a non-empty product that gonum's BLAS accepts:
// known transpositions, leading dimensions at least the stored rows' widths, and
// slices long enough for every element they address.
func sgemmArgsFit(tA, tB blas.Transpose, m, n, k, la, lda, lb, ldb, lc, ldc int) bool {
	known := func(t blas.Transpose) bool { return t == blas.NoTrans || t == blas.Trans || t == blas.ConjTrans }
	if !known(tA) || !known(tB) || m < 0 || n < 0 || k < 0 {
		return false
	}
	rowsA, colsA := m, k
	if tA != blas.NoTrans {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if tB != blas.NoTrans {
		rowsB, colsB = n, k
	}
	return lda >= max(1, colsA) && ldb >= max(1, colsB) && ldc >= max(1, n) &&
		la >= (rowsA-1)*lda+colsA && lb >= (rowsB-1)*ldb+colsB && lc >= (m-1)*ldc+n
}

// products names the library running Sgemm when it is not OpenBLAS.
var products string

// useOneDNN puts Sgemm on oneDNN for the dense paths and Gorgonia's graphs alike, and
// back on OpenBLAS when on is false; the products keep their thread count either way.
func useOneDNN(on bool) {
	if (products != "") == on {
		return
	}
	n := blasThreads()
	var impl G.BLAS = netlib.Implementation{}
	products = ""
	if on {
		impl = oneDNN{}
		products = oneDNNName()
	}
	setBLASThreads(n)
	blas32.Use(impl)
	G.Use(impl)
}

// setBLASThreads runs products on n threads: oneDNN's when it has them (OpenBLAS then
// on one), else OpenBLAS's.
func setBLASThreads(n int) {
	if products == "" {
		C.openblas_set_num_threads(C.int(n))
		return
	}
	C.kadet_set_product_threads(C.int(n))
	C.openblas_set_num_threads(1)
}

// blasThreads is the thread count setBLASThreads last set.
func blasThreads() int {
	if products == "" {
		return openBLASThreads()
	}
	return int(C.kadet_get_product_threads())
}

func openBLASThreads() int { return int(C.openblas_get_num_threads()) }

// oneDNNName names oneDNN with the instruction set it uses on this CPU.
func oneDNNName() string { return "oneDNN (" + C.GoString(C.kadet_onednn_isa()) + ")" }

// checkOneDNN checks oneDNN's products as CheckProducts checks OpenBLAS's.
func checkOneDNN(trials int) error { return checkLevel3(oneDNNName(), oneDNN{}, trials) }
