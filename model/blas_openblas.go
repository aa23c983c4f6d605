//go:build openblas

package model

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

func init() {
	// Route gonum's blas32/blas64 (used by the kernels) and gorgonia/tensor
	// through OpenBLAS.
	blas32.Use(netlib.Implementation{})
	blas64.Use(netlib.Implementation{})
	G.Use(netlib.Implementation{})
}

// BLASName names the BLAS implementation compiled in.
func BLASName() string { return "OpenBLAS (netlib cgo)" }
