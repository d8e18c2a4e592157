//go:build openblas

package model

// The OpenBLAS build runs Adam's update in C, eight values per instruction with AVX
// when the CPU has it: Go's compiler does not vectorise, and on the speed benchmark's
// network the scalar loop, a square root and a division per weight, took a third of a
// training step. The pure-Go update stays the reference: adam_openblas_test.go checks
// that both give the same bits, which is why the C does the same operations in the
// same order (no fused multiply-add, no approximate square root or reciprocal).

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -lm
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

// One value, as applyKeepGo computes it: the same operations in the same order, no
// fused multiply-add, IEEE square root and division, so the bits are Go's.
static inline void adam1(float *g, float *w, float *m, float *v, float b1, float b2, float step,
		float invc2, float eps, float clip, float tiny) {
	float gk = *g;
	if (clip > 0) {
		gk = gk > clip ? clip : gk;
		gk = gk < -clip ? -clip : gk;
	}
	if (gk < tiny && gk > -tiny) gk = 0;
	float mk = b1 * *m + (1 - b1) * gk;
	float vk = b2 * *v + ((1 - b2) * gk) * gk;
	if (mk < tiny && mk > -tiny) mk = 0;
	if (vk < tiny) vk = 0;
	*m = mk;
	*v = vk;
	*w -= step * mk / ((float)sqrt((double)(vk * invc2)) + eps);
}

// Eight values at a time with AVX: the same operations, lane by lane.
__attribute__((target("avx")))
static void adam_avx(float *g, float *w, float *m, float *v, ptrdiff_t n, float b1, float b2, float step,
		float invc2, float eps, float clip, float tiny) {
	const __m256 vb1 = _mm256_set1_ps(b1), vc1 = _mm256_set1_ps(1 - b1), vb2 = _mm256_set1_ps(b2),
		vc2 = _mm256_set1_ps(1 - b2), vstep = _mm256_set1_ps(step), vinv = _mm256_set1_ps(invc2),
		veps = _mm256_set1_ps(eps), vclip = _mm256_set1_ps(clip), vnclip = _mm256_set1_ps(-clip),
		vtiny = _mm256_set1_ps(tiny), vntiny = _mm256_set1_ps(-tiny), zero = _mm256_setzero_ps();
	ptrdiff_t k = 0;
	for (; k + 8 <= n; k += 8) {
		__m256 gk = _mm256_loadu_ps(g + k);
		if (clip > 0) {
			gk = _mm256_blendv_ps(gk, vclip, _mm256_cmp_ps(gk, vclip, _CMP_GT_OQ));
			gk = _mm256_blendv_ps(gk, vnclip, _mm256_cmp_ps(gk, vnclip, _CMP_LT_OQ));
		}
		__m256 small = _mm256_and_ps(_mm256_cmp_ps(gk, vtiny, _CMP_LT_OQ), _mm256_cmp_ps(gk, vntiny, _CMP_GT_OQ));
		gk = _mm256_blendv_ps(gk, zero, small);
		__m256 mk = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + k)), _mm256_mul_ps(vc1, gk));
		__m256 vk = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + k)), _mm256_mul_ps(_mm256_mul_ps(vc2, gk), gk));
		small = _mm256_and_ps(_mm256_cmp_ps(mk, vtiny, _CMP_LT_OQ), _mm256_cmp_ps(mk, vntiny, _CMP_GT_OQ));
		mk = _mm256_blendv_ps(mk, zero, small);
		vk = _mm256_blendv_ps(vk, zero, _mm256_cmp_ps(vk, vtiny, _CMP_LT_OQ));
		_mm256_storeu_ps(m + k, mk);
		_mm256_storeu_ps(v + k, vk);
		__m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vk, vinv)), veps);
		_mm256_storeu_ps(w + k, _mm256_sub_ps(_mm256_loadu_ps(w + k), _mm256_div_ps(_mm256_mul_ps(vstep, mk), den)));
	}
	for (; k < n; k++) adam1(g + k, w + k, m + k, v + k, b1, b2, step, invc2, eps, clip, tiny);
}

static void kadet_adam(float *g, float *w, float *m, float *v, ptrdiff_t n, float b1, float b2, float step,
		float invc2, float eps, float clip, float tiny) {
	if (__builtin_cpu_supports("avx")) {
		adam_avx(g, w, m, v, n, b1, b2, step, invc2, eps, clip, tiny);
		return;
	}
	for (ptrdiff_t k = 0; k < n; k++) adam1(g + k, w + k, m + k, v + k, b1, b2, step, invc2, eps, clip, tiny);
}
*/
import "C"

import "unsafe"

// applyKeep is applyKeepGo in C.
func (u update) applyKeep(g, w, m, v []float32) {
	if len(g) == 0 {
		return
	}
	w, m, v = w[:len(g)], m[:len(g)], v[:len(g)]
	C.kadet_adam((*C.float)(unsafe.Pointer(&g[0])), (*C.float)(unsafe.Pointer(&w[0])), (*C.float)(unsafe.Pointer(&m[0])),
		(*C.float)(unsafe.Pointer(&v[0])), C.ptrdiff_t(len(g)), C.float(u.b1), C.float(u.b2), C.float(u.stepSize),
		C.float(u.invC2), C.float(u.eps), C.float(u.clip), C.float(tinyMoment))
}
