//go:build openblas

package model

import (
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/cpu"
)

// ChooseKernels picks OpenBLAS's kernels for this process: when the CPU has AVX-512
// and OpenBLAS loaded kernels without it (an environment that pins Haswell), it starts
// this program again with the AVX-512 ones; that process checks its products against
// gonum's pure Go and, if any is wrong, starts again with the environment's kernels.
// Then it puts the matrix products on oneDNN if oneDNN's check out too.
// KADET_BLAS_KERNELS=environment keeps the environment's OpenBLAS for everything. It
// returns a line saying what was chosen and why, or "" when there was nothing to
// choose. Call it first thing in main: it may replace the process.
func ChooseKernels() string {
	avx512 := cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512DQ
	plan := planKernels(os.Environ(), avx512, BLASKernels(), func() error { return CheckProducts(checkTrials) })
	if plan.restart {
		if self, err := os.Executable(); err == nil {
			_ = syscall.Exec(self, os.Args, plan.env) // returns only on failure
		}
	}
	use, note := planProducts(os.Environ(), oneDNNName(), func() error { return checkOneDNN(checkTrials) })
	useOneDNN(use)
	return strings.Join(slices.DeleteFunc([]string{plan.note, note}, func(s string) bool { return s == "" }), "; ")
}
