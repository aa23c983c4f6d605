package vec

import (
	"math/rand/v2"
	"testing"
)

// TestHalfAVX512MatchesAVX2: on AVX-512 machines the 512-bit kernels of
// every row count give the AVX2 kernel's results bit for bit.
func TestHalfAVX512MatchesAVX2(t *testing.T) {
	if !HaveHalf || !HaveAVX512 {
		t.Skip("no AVX-512 half kernels (or SMTRAIN_NOSIMD/SMTRAIN_NOAVX512 set)")
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for _, rows := range []int{1, 2, 3, 4, 6} {
		c := newHalfCase(rng, rows, 77, 192)
		got := c.run()
		want := append([]float32(nil), c.y0...)
		for r := 0; r < rows; r++ {
			halfPanelsAVX2(c.k, &c.x[r*c.ldx], c.ldx, &c.w[0], &want[r*c.ldy], c.ldy, c.n/HalfPanel)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("rows %d element %d: %v with AVX-512, %v with AVX2", rows, i, got[i], want[i])
			}
		}
	}
}
