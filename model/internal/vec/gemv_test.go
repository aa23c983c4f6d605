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

// TestDotAccAVX512MatchesAVX2: on AVX-512 machines DotAcc's 8-row kernel
// gives the AVX2 kernel's results bit for bit (row counts with and without
// a tail of fewer than 8, widths that are and are not multiples of 16).
func TestDotAccAVX512MatchesAVX2(t *testing.T) {
	if !HaveAVX512 {
		t.Skip("no AVX-512 (or SMTRAIN_NOSIMD/SMTRAIN_NOAVX512 set)")
	}
	rng := rand.New(rand.NewPCG(5, 11))
	for _, sh := range [][2]int{{8, 16}, {9, 32}, {17, 768}, {64, 48}, {7, 64}, {24, 40}} {
		n, k := sh[0], sh[1]
		ld := k + 3
		w, x, y0 := make([]float32, n*ld), make([]float32, k), make([]float32, n)
		for _, v := range [][]float32{w, x, y0} {
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		}
		y := append([]float32(nil), y0...)
		if !DotAcc(x, w, ld, y) {
			t.Fatal("DotAcc did not run")
		}
		y2 := append([]float32(nil), y0...)
		dotAccAVX2(&x[0], &w[0], ld, n, k/8, &y2[0])
		for j := range y {
			if y[j] != y2[j] {
				t.Fatalf("DotAcc %dx%d row %d: %v, %v with AVX2 alone", n, k, j, y[j], y2[j])
			}
		}
	}
}
