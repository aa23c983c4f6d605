//go:build !openblas

package model

// BLASName names the BLAS implementation compiled in.
func BLASName() string { return "gonum (pure Go)" }
