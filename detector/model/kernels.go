package model

import (
	"fmt"
	"slices"
	"strings"
)

// Environment of the kernel choice. OpenBLAS reads OPENBLAS_CORETYPE when the library
// loads, before any Go code runs, so choosing other kernels means starting the process
// again with it set: for this process and its re-executions alone, never for the
// environment it came from.
const (
	// EnvKernels is "auto" (the default: AVX-512 kernels where the CPU has them and the
	// environment pinned older ones, matrix products on oneDNN where it checks out) or
	// "environment" (OpenBLAS as the environment says).
	EnvKernels = "KADET_BLAS_KERNELS"
	envChosen  = "KADET_BLAS_CHOSEN"  // the kernels kadet chose, in the process it started
	envWas     = "KADET_BLAS_WAS"     // OPENBLAS_CORETYPE before kadet changed it ("-": unset)
	envRefused = "KADET_BLAS_REFUSED" // why kadet's choice was refused
)

// avx512Kernels are OpenBLAS's kernel sets that use AVX-512.
var avx512Kernels = []string{"SkylakeX", "Cooperlake", "SapphireRapids"}

// preferredKernels is the AVX-512 set kadet chooses: the fastest of them on the dense
// models' products (docs/speed.md, `make bench-kernels`).
const preferredKernels = "SkylakeX"

// checkTrials is how many random products a chosen kernel set must get right before it
// is used: about 60 ms at start.
const checkTrials = 60

// kernelPlan is what ChooseKernels does: start again under env (restart), or go on,
// with a note saying what was chosen and why.
type kernelPlan struct {
	restart bool
	env     []string
	note    string
}

// planKernels decides from the environment, whether the CPU has AVX-512, the kernels
// OpenBLAS loaded and, in a process kadet started with its choice, whether that
// choice's products are right. It is pure, so each path is tested without starting
// processes.
func planKernels(env []string, avx512 bool, loaded string, check func() error) kernelPlan {
	get := func(k string) string { return envValue(env, k) }
	if get(EnvKernels) == "environment" {
		return kernelPlan{}
	}
	if why := get(envRefused); why != "" {
		return kernelPlan{note: fmt.Sprintf("kept %s kernels: %s", loaded, why)}
	}
	if chosen := get(envChosen); chosen != "" {
		was := get(envWas)
		if err := check(); err != nil {
			next := setEnv(env, envRefused, fmt.Sprintf("%s refused: %v", chosen, err))
			next = unsetEnv(next, envChosen)
			if was == "-" {
				next = unsetEnv(next, "OPENBLAS_CORETYPE")
			} else {
				next = setEnv(next, "OPENBLAS_CORETYPE", was)
			}
			return kernelPlan{restart: true, env: next, note: fmt.Sprintf("%s kernels refused: %v", chosen, err)}
		}
		from := "OPENBLAS_CORETYPE=" + was
		if was == "-" {
			from = "no OPENBLAS_CORETYPE"
		}
		return kernelPlan{note: fmt.Sprintf("%s kernels chosen by kadet for this process (the environment had %s); %d products checked against gonum's pure Go",
			loaded, from, checkTrials)}
	}
	if !avx512 || slices.Contains(avx512Kernels, loaded) {
		return kernelPlan{}
	}
	was := get("OPENBLAS_CORETYPE")
	if was == "" {
		was = "-"
	}
	next := setEnv(env, "OPENBLAS_CORETYPE", preferredKernels)
	next = setEnv(next, envChosen, preferredKernels)
	return kernelPlan{restart: true, env: setEnv(next, envWas, was)}
}

// planProducts decides whether the products go to the faster library the build links
// besides OpenBLAS (oneDNN), named lib: unless the environment keeps its BLAS, when
// its products check out against gonum's pure Go. The note says which and why.
func planProducts(env []string, lib string, check func() error) (use bool, note string) {
	if envValue(env, EnvKernels) == "environment" {
		return false, ""
	}
	if err := check(); err != nil {
		return false, fmt.Sprintf("matrix products kept on OpenBLAS, %s refused: %v", lib, err)
	}
	return true, fmt.Sprintf("matrix products on %s, %d checked against gonum's pure Go", lib, checkTrials)
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func setEnv(env []string, key, value string) []string {
	return append(unsetEnv(env, key), key+"="+value)
}

func unsetEnv(env []string, key string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}
