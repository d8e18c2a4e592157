// bf16: how much faster the dense autoencoder's products run as bfloat16 with float32
// accumulation (AVX512_BF16) than in float32, on oneDNN's matmul with its weights in
// the layout it prefers, and on the sgemm kadet calls today. The four products of a
// scoring pass (784-256-64-256-784) at batch 256 and 128, medians of 5 timings of 2,000
// passes. Timing only: kadet does not train or score in bfloat16 (see README, Speed).
// Build and run: make bench-bf16.
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x)                                                    \
	do {                                                            \
		dnnl_status_t s_ = (x);                                     \
		if (s_ != dnnl_success) {                                   \
			fprintf(stderr, "bf16: %s failed: status %d\n", #x, s_); \
			exit(1);                                                \
		}                                                           \
	} while (0)

static const int widths[] = {784, 256, 64, 256, 784};
enum { layers = 4, reps = 2000, timings = 5 };

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

// fill writes n random values in [-1, 1] as float32 or as bfloat16 (the top half).
static void fill(void *p, size_t n, int bf16) {
	for (size_t i = 0; i < n; i++) {
		float f = rand() / (float)RAND_MAX * 2 - 1;
		uint32_t u;
		memcpy(&u, &f, 4);
		if (bf16)
			((uint16_t *)p)[i] = (uint16_t)(u >> 16);
		else
			((float *)p)[i] = f;
	}
}

static double median_ms(double *t) {
	qsort(t, timings, sizeof *t, cmp);
	return t[timings / 2] * 1e3;
}

static double matmul(dnnl_engine_t eng, dnnl_stream_t st, int batch, dnnl_data_type_t in) {
	dnnl_primitive_t mm[layers];
	dnnl_memory_t src[layers], wei[layers], dst[layers];
	for (int l = 0; l < layers; l++) {
		dnnl_memory_desc_t s, w, d;
		dnnl_dims_t sd = {batch, widths[l]}, wd = {widths[l], widths[l + 1]}, dd = {batch, widths[l + 1]};
		CHECK(dnnl_memory_desc_init_by_tag(&s, 2, sd, in, dnnl_ab));
		CHECK(dnnl_memory_desc_init_by_tag(&w, 2, wd, in, dnnl_format_tag_any));
		CHECK(dnnl_memory_desc_init_by_tag(&d, 2, dd, dnnl_f32, dnnl_ab));
		dnnl_matmul_desc_t md;
		CHECK(dnnl_matmul_desc_init(&md, &s, &w, NULL, &d));
		dnnl_primitive_desc_t pd;
		CHECK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
		const dnnl_memory_desc_t *packed = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
		CHECK(dnnl_primitive_create(&mm[l], pd));
		CHECK(dnnl_memory_create(&src[l], &s, eng, DNNL_MEMORY_ALLOCATE));
		CHECK(dnnl_memory_create(&wei[l], packed, eng, DNNL_MEMORY_ALLOCATE));
		CHECK(dnnl_memory_create(&dst[l], &d, eng, DNNL_MEMORY_ALLOCATE));
		void *p;
		CHECK(dnnl_memory_get_data_handle(src[l], &p));
		fill(p, (size_t)batch * widths[l], in == dnnl_bf16);
		CHECK(dnnl_memory_get_data_handle(wei[l], &p));
		fill(p, dnnl_memory_desc_get_size(packed) / (in == dnnl_bf16 ? 2 : 4), in == dnnl_bf16);
		CHECK(dnnl_primitive_desc_destroy(pd));
	}
	double t[timings];
	for (int k = -1; k < timings; k++) { // k = -1 warms up
		double t0 = now();
		for (int r = 0; r < reps; r++)
			for (int l = 0; l < layers; l++) {
				dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src[l]}, {DNNL_ARG_WEIGHTS, wei[l]}, {DNNL_ARG_DST, dst[l]}};
				CHECK(dnnl_primitive_execute(mm[l], st, 3, args));
			}
		CHECK(dnnl_stream_wait(st));
		if (k >= 0) t[k] = (now() - t0) / reps;
	}
	for (int l = 0; l < layers; l++) {
		dnnl_primitive_destroy(mm[l]);
		dnnl_memory_destroy(src[l]);
		dnnl_memory_destroy(wei[l]);
		dnnl_memory_destroy(dst[l]);
	}
	return median_ms(t);
}

static double sgemm(int batch) {
	float *x[layers + 1], *w[layers];
	for (int l = 0; l <= layers; l++) {
		x[l] = malloc(sizeof(float) * batch * widths[l]);
		fill(x[l], (size_t)batch * widths[l], 0);
	}
	for (int l = 0; l < layers; l++) {
		w[l] = malloc(sizeof(float) * widths[l] * widths[l + 1]);
		fill(w[l], (size_t)widths[l] * widths[l + 1], 0);
	}
	double t[timings];
	for (int k = -1; k < timings; k++) {
		double t0 = now();
		for (int r = 0; r < reps; r++)
			for (int l = 0; l < layers; l++)
				CHECK(dnnl_sgemm('N', 'N', batch, widths[l + 1], widths[l], 1, x[l], widths[l], w[l], widths[l + 1], 0,
					x[l + 1], widths[l + 1]));
		if (k >= 0) t[k] = (now() - t0) / reps;
	}
	for (int l = 0; l <= layers; l++) free(x[l]);
	for (int l = 0; l < layers; l++) free(w[l]);
	return median_ms(t);
}

int main(void) {
	dnnl_engine_t eng;
	dnnl_stream_t st;
	CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
	CHECK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
	printf("%-6s %12s %14s %14s %s\n", "batch", "sgemm ms", "matmul f32 ms", "matmul bf16 ms", "bf16 vs f32 matmul, vs sgemm");
	for (int batch = 256; batch >= 128; batch /= 2) {
		double s = sgemm(batch), f = matmul(eng, st, batch, dnnl_f32), b = matmul(eng, st, batch, dnnl_bf16);
		printf("%-6d %12.3f %14.3f %14.3f %.2fx, %.2fx\n", batch, s, f, b, f / b, s / b);
	}
	return 0;
}
