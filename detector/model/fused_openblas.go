//go:build openblas

package model

// The OpenBLAS build runs the passes between a network's products in C: Go's compiler
// does not vectorise, and with the products on AVX-512 kernels the scalar bias and
// activation pass took 28% of a batch's scoring time and the squared errors another 9%
// (BenchmarkScores256's profile). GCC compiles each loop for AVX-512, AVX2 and plain
// x86-64 and picks one when the library loads (target_clones).
//
// The element-wise passes give the Go versions' bits (fused_openblas_test.go): the
// same operations in the same order, no fused multiply-add (fp-contract=off), the
// same bit tricks for ReLU. The sums of squared errors are vector reductions, so
// their rounding differs from Go's in-order sums by a few units in the last place;
// the test bounds it.

/*
#cgo CFLAGS: -O3 -fopenmp-simd
// No fused multiply-add: it would round differently from Go.
#pragma GCC optimize("fp-contract=off")
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

static inline float bits2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t f2bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

// kind: 0 linear, 1 ReLU, 2 LeakyReLU (negative inputs times leaky).
CLONES
void kadet_bias_act(float *v, const float *b, ptrdiff_t rows, ptrdiff_t d, int kind, float leaky) {
	for (ptrdiff_t r = 0; r < rows; r++) {
		float *row = v + r * d;
		switch (kind) {
		case 0:
			for (ptrdiff_t j = 0; j < d; j++) row[j] += b[j];
			break;
		case 1:
			for (ptrdiff_t j = 0; j < d; j++) {
				uint32_t u = f2bits(row[j] + b[j]);
				row[j] = bits2f(u & ~(uint32_t)((int32_t)u >> 31)); // sign set -> +0
			}
			break;
		case 2:
			for (ptrdiff_t j = 0; j < d; j++) {
				float x = row[j] + b[j];
				row[j] = x * ((f2bits(x) >> 31) ? leaky : 1.0f);
			}
			break;
		}
	}
}

// kind: 1 ReLU, 2 LeakyReLU, 3 Tanh, 4 Sigmoid; a is the activation's output.
CLONES
void kadet_act_grad(float *g, const float *a, ptrdiff_t n, int kind, float leaky) {
	switch (kind) {
	case 1:
		for (ptrdiff_t i = 0; i < n; i++) {
			uint32_t zero = (uint32_t)((int32_t)(f2bits(a[i]) - 1) >> 31); // all ones for +0
			g[i] = bits2f(f2bits(g[i]) & ~zero);
		}
		break;
	case 2:
		for (ptrdiff_t i = 0; i < n; i++) g[i] *= (f2bits(a[i]) >> 31) ? leaky : 1.0f;
		break;
	case 3:
		for (ptrdiff_t i = 0; i < n; i++) g[i] *= 1.0f - a[i] * a[i];
		break;
	case 4:
		for (ptrdiff_t i = 0; i < n; i++) g[i] *= a[i] * (1.0f - a[i]);
		break;
	}
}

// Each row's sum of squared differences into sse (when given) and their total, the
// rows' float sums added in double in row order; with grad, also scale*(out-x).
CLONES
double kadet_row_sse(float *sse, const float *out, const float *x, ptrdiff_t rows, ptrdiff_t d,
		float *grad, float scale) {
	double all = 0;
	for (ptrdiff_t r = 0; r < rows; r++) {
		const float *o = out + r * d, *xr = x + r * d;
		float total = 0;
		if (grad) {
			float *gr = grad + r * d;
#pragma omp simd reduction(+ : total)
			for (ptrdiff_t j = 0; j < d; j++) {
				float e = o[j] - xr[j];
				total += e * e;
				gr[j] = scale * e;
			}
		} else {
#pragma omp simd reduction(+ : total)
			for (ptrdiff_t j = 0; j < d; j++) {
				float e = o[j] - xr[j];
				total += e * e;
			}
		}
		if (sse) sse[r] = total;
		all += (double)total;
	}
	return all;
}
*/
import "C"

import "unsafe"

// leakyFactor is what the Go passes multiply a negative LeakyReLU value by: 1 -
// (1-leakySlope), rounded as they round it.
var leakyFactor = func() float32 {
	one := float32(1)
	return one - one*(1-leakySlope)
}()

func fptr(s []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }

func biasActivate(kind string, v, b []float32) {
	var k C.int
	switch kind {
	case "":
		k = 0
	case ReLU:
		k = 1
	case LeakyReLU:
		k = 2
	default:
		biasActivateGo(kind, v, b)
		return
	}
	d := len(b)
	if d == 0 || len(v) < d {
		return
	}
	C.kadet_bias_act(fptr(v), fptr(b), C.ptrdiff_t(len(v)/d), C.ptrdiff_t(d), k, C.float(leakyFactor))
}

func activationGrad(kind string, g, a []float32) {
	var k C.int
	switch kind {
	case ReLU:
		k = 1
	case LeakyReLU:
		k = 2
	case Tanh:
		k = 3
	case Sigmoid:
		k = 4
	default:
		return
	}
	if len(g) == 0 {
		return
	}
	_ = a[len(g)-1]
	C.kadet_act_grad(fptr(g), fptr(a), C.ptrdiff_t(len(g)), k, C.float(leakyFactor))
}

func mseGrad(d, out, x []float32, w int) float64 {
	rows := len(out) / w
	if rows == 0 {
		return mseGradGo(d, out, x, w)
	}
	_, _ = d[rows*w-1], x[rows*w-1]
	loss := C.kadet_row_sse(nil, fptr(out), fptr(x), C.ptrdiff_t(rows), C.ptrdiff_t(w), fptr(d), C.float(2/float32(len(out))))
	return float64(loss) / float64(len(out))
}

func rowSSE(sse, out, x []float32, d int) {
	if len(sse) == 0 || d == 0 {
		return
	}
	_, _ = out[len(sse)*d-1], x[len(sse)*d-1]
	C.kadet_row_sse(fptr(sse), fptr(out), fptr(x), C.ptrdiff_t(len(sse)), C.ptrdiff_t(d), nil, 0)
}
