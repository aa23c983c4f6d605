//go:build !openblas

package model

// BLASName names the BLAS implementation compiled in.
func BLASName() string { return "gonum (pure Go)" }

// SetBLASThreads does nothing for the pure-Go BLAS (it uses goroutines).
func SetBLASThreads(n int) {}

// BLASThreads is 0 for the pure-Go BLAS (no thread pool of its own).
func BLASThreads() int { return 0 }

// BLASCore is "" for the pure-Go BLAS (no core-specific kernels).
func BLASCore() string { return "" }
