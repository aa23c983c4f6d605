package vec

import (
	"math/rand/v2"
	"testing"
)

// TestGemvAVX512MatchesAVX2: on AVX-512 machines Gemv's 512-bit strips
// (every width gen_gemv512.go writes) give the AVX2 kernel's results bit
// for bit.
func TestGemvAVX512MatchesAVX2(t *testing.T) {
	if !HaveAVX512 {
		t.Skip("no AVX-512 (or SMTRAIN_NOSIMD/SMTRAIN_NOAVX512 set)")
	}
	rng := rand.New(rand.NewPCG(3, 9))
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	for _, sh := range [][2]int{{1, 8}, {3, 16}, {17, 104}, {128, 384}, {40, 136}, {33, 1224}, {5, 192}, {9, 48}, {7, 400}} {
		k, n := sh[0], sh[1]
		ld := n + 5
		w, x, y0 := randv(k*ld), randv(k), randv(n)
		y := append([]float32(nil), y0...)
		done := Gemv(x, w[2:], ld, y)
		y2 := append([]float32(nil), y0...)
		gemv1AVX2(k, &x[0], &w[2], ld, &y2[0], done/8)
		for j := range y {
			if y[j] != y2[j] {
				t.Fatalf("Gemv %dx%d column %d: %v with AVX-512, %v AVX2 alone", k, n, j, y[j], y2[j])
			}
		}
	}
}
