//go:build !openblas

package model

// The pure-Go build runs the passes between products in Go; the OpenBLAS build has
// vectorised ones in C (fused_openblas.go).

func biasActivate(kind string, v, b []float32)   { biasActivateGo(kind, v, b) }
func activationGrad(kind string, g, a []float32) { activationGradGo(kind, g, a) }
func mseGrad(d, out, x []float32, w int) float64 { return mseGradGo(d, out, x, w) }
func rowSSE(sse, out, x []float32, d int)        { rowSSEGo(sse, out, x, d) }
