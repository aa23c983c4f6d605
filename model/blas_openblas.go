//go:build openblas

package model

/*
#cgo LDFLAGS: -lopenblas
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
extern char* openblas_get_corename(void);
*/
import "C"

import (
	"os"

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
	// The kernels split matrix work across GOMAXPROCS goroutines; OpenBLAS
	// threads on top of them oversubscribe the cores. Keep one OpenBLAS
	// thread unless the user chose otherwise.
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" && os.Getenv("OMP_NUM_THREADS") == "" {
		SetBLASThreads(1)
	}
}

// BLASName names the BLAS implementation compiled in.
func BLASName() string { return "OpenBLAS (netlib cgo, " + BLASCore() + " kernels)" }

// SetBLASThreads sets the number of OpenBLAS threads (n ≥ 1). The kernels
// split their matrix work across GOMAXPROCS goroutines themselves, so one
// OpenBLAS thread (OPENBLAS_NUM_THREADS=1) is usually best.
func SetBLASThreads(n int) {
	if n >= 1 {
		C.openblas_set_num_threads(C.int(n))
	}
}

// BLASThreads is the number of OpenBLAS threads.
func BLASThreads() int { return int(C.openblas_get_num_threads()) }

// BLASCore is the CPU core type OpenBLAS chose its kernels for (its
// openblas_get_corename; OPENBLAS_CORETYPE overrides its detection).
func BLASCore() string { return C.GoString(C.openblas_get_corename()) }
