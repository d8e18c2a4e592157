package model

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestPlanKernels(t *testing.T) {
	ok := func() error { return nil }
	wrong := func() error { return errors.New("product 3 element 7 is 1.5, gonum's pure Go 0.5") }
	pinned := []string{"PATH=/bin", "OPENBLAS_CORETYPE=Haswell"}

	// An AVX-512 CPU with Haswell pinned: start again with SkylakeX, remembering Haswell.
	p := planKernels(pinned, true, "Haswell", ok)
	if !p.restart || !slices.Contains(p.env, "OPENBLAS_CORETYPE=SkylakeX") || !slices.Contains(p.env, "KADET_BLAS_WAS=Haswell") ||
		!slices.Contains(p.env, "KADET_BLAS_CHOSEN=SkylakeX") || slices.Contains(p.env, "OPENBLAS_CORETYPE=Haswell") {
		t.Fatalf("first start: %+v", p)
	}
	// The process it started: products right, keep them and say so.
	again := planKernels(p.env, true, "SkylakeX", ok)
	if again.restart || !strings.Contains(again.note, "SkylakeX kernels chosen by kadet for this process (the environment had OPENBLAS_CORETYPE=Haswell)") {
		t.Fatalf("checked start: %+v", again)
	}
	// Products wrong: start again with Haswell and the reason, then keep Haswell.
	refused := planKernels(p.env, true, "SkylakeX", wrong)
	if !refused.restart || !slices.Contains(refused.env, "OPENBLAS_CORETYPE=Haswell") || slices.ContainsFunc(refused.env, func(kv string) bool {
		return strings.HasPrefix(kv, "KADET_BLAS_CHOSEN=")
	}) {
		t.Fatalf("refusal: %+v", refused)
	}
	kept := planKernels(refused.env, true, "Haswell", ok)
	if kept.restart || !strings.Contains(kept.note, "kept Haswell kernels: SkylakeX refused: product 3 element 7") {
		t.Fatalf("after the refusal: %+v", kept)
	}
	// Nothing pinned before: the refusal unsets OPENBLAS_CORETYPE again.
	p = planKernels([]string{"PATH=/bin"}, true, "Zen", ok)
	refused = planKernels(p.env, true, "SkylakeX", wrong)
	if slices.ContainsFunc(refused.env, func(kv string) bool { return strings.HasPrefix(kv, "OPENBLAS_CORETYPE=") }) {
		t.Fatalf("refusal left OPENBLAS_CORETYPE set: %v", refused.env)
	}
	// Nothing to choose: no AVX-512, AVX-512 kernels already, or the user said so.
	for _, c := range []struct {
		env    []string
		avx512 bool
		loaded string
	}{
		{pinned, false, "Haswell"},
		{nil, true, "Cooperlake"},
		{append(slices.Clone(pinned), "KADET_BLAS_KERNELS=environment"), true, "Haswell"},
	} {
		if p := planKernels(c.env, c.avx512, c.loaded, ok); p.restart || p.note != "" {
			t.Errorf("%v avx512=%v %s: %+v; want nothing done", c.env, c.avx512, c.loaded, p)
		}
	}
}

func TestPlanProducts(t *testing.T) {
	checked := 0
	ok := func() error { checked++; return nil }
	wrong := func() error { checked++; return errors.New("product 3 element 7 is 1.5, gonum's pure Go 0.5") }
	for _, c := range []struct {
		name    string
		env     []string
		check   func() error
		use     bool
		note    string
		checked int
	}{
		{"products right", []string{"PATH=/bin"}, ok, true, "matrix products on oneDNN (avx2), 60 checked against gonum's pure Go", 1},
		{"a product wrong", nil, wrong, false, "matrix products kept on OpenBLAS, oneDNN (avx2) refused: product 3 element 7 is 1.5, gonum's pure Go 0.5", 1},
		{"the user keeps the environment's BLAS", []string{"KADET_BLAS_KERNELS=environment"}, ok, false, "", 0},
	} {
		checked = 0
		use, note := planProducts(c.env, "oneDNN (avx2)", c.check)
		if use != c.use || note != c.note || checked != c.checked {
			t.Errorf("%s: use %v, note %q, %d checks; want %v, %q, %d", c.name, use, note, checked, c.use, c.note, c.checked)
		}
	}
}
