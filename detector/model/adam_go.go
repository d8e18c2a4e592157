//go:build !openblas

package model

// applyKeep is the pure-Go update (the OpenBLAS build has a vectorised one in C).
func (u update) applyKeep(g, w, m, v []float32) { u.applyKeepGo(g, w, m, v) }
