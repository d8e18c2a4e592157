//go:build !openblas

package model

// ChooseKernels does nothing: gonum's pure Go has one set of kernels.
func ChooseKernels() string { return "" }
