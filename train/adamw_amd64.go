package train

import (
	"os"

	"golang.org/x/sys/cpu"
)

// haveAdamAVX2: the AVX2 AdamW kernel runs (SMTRAIN_NOSIMD turns it off,
// as it does the model's kernels).
var haveAdamAVX2 = cpu.X86.HasAVX2 && os.Getenv("SMTRAIN_NOSIMD") == ""

//go:noescape
func adamAVX2(pp, gp, mp, vp *float32, n int, c *[8]float32)

// adamVec32 updates the longest multiple-of-8 prefix of p, g, m, v (equal
// lengths) with the AVX2 kernel, bit for bit as run32's loop would, and
// returns its length (0 without AVX2).
func adamVec32(p, g, m, v []float32, c *[8]float32) int {
	n := len(p) &^ 7
	if !haveAdamAVX2 || n == 0 {
		return 0
	}
	_, _, _ = g[n-1], m[n-1], v[n-1]
	adamAVX2(&p[0], &g[0], &m[0], &v[0], n, c)
	return n
}
