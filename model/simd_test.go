package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"smtrain/model/internal/vec"
)

// TestGELUVectorKernels: the float32 GELU kernel (AVX2 assembly where the
// CPU has it, with the scalar tail) agrees with float64 GELU and its
// derivative, for lengths that are and are not multiples of 8, on inputs
// from tiny to beyond the tanh clamp; forward and backward also agree
// with the portable scalar loops, and backward accumulates when asked.
func TestGELUVectorKernels(t *testing.T) {
	t.Logf("AVX2+FMA kernels: %v", vec.HaveAVX2)
	rng := rand.New(rand.NewPCG(61, 62))
	for _, n := range []int{1, 7, 8, 9, 64, 1029} {
		x := make([]float32, n)
		for i := range x {
			switch i % 4 {
			case 0:
				x[i] = float32(rng.NormFloat64())
			case 1:
				x[i] = float32(rng.NormFloat64() * 1e-6)
			case 2:
				x[i] = float32(rng.NormFloat64() * 8)
			default:
				x[i] = float32(rng.NormFloat64() * 3)
			}
		}
		k := newGELUKernel[float32](n)
		y := make([]float32, n)
		k.forward(x, y)
		th := append([]float32(nil), k.th...)
		ys, ths := make([]float32, n), make([]float32, n)
		geluForward32(x, ys, ths) // portable scalar reference
		dy := make([]float32, n)
		for i := range dy {
			dy[i] = float32(rng.NormFloat64())
		}
		dx := make([]float32, n)
		k.backward(x, dy, dx, false)
		acc := make([]float32, n)
		for i := range acc {
			acc[i] = 1
		}
		k.backward(x, dy, acc, true)
		for i, v := range x {
			xv := float64(v)
			u := geluS * (xv + 0.044715*xv*xv*xv)
			tt := math.Tanh(u)
			want := 0.5 * xv * (1 + tt)
			dwant := (0.5*(1+tt) + 0.5*xv*(1-tt*tt)*geluS*(1+3*0.044715*xv*xv)) * float64(dy[i])
			if d := math.Abs(float64(th[i]) - tt); d > 1e-6 {
				t.Fatalf("n=%d x=%g: tanh %g, want %g", n, v, th[i], tt)
			}
			if d := math.Abs(float64(y[i]) - want); d > 1e-6*math.Max(1, math.Abs(xv)) {
				t.Fatalf("n=%d x=%g: gelu %g, want %g", n, v, y[i], want)
			}
			if d := math.Abs(float64(y[i]) - float64(ys[i])); d > 2e-7*math.Max(1, math.Abs(xv)) {
				t.Fatalf("n=%d x=%g: gelu %g, scalar loop %g", n, v, y[i], ys[i])
			}
			// beyond the tanh clamp (|u| > 7.9) the float32 derivative is off
			// by up to ~1e-4 from float64's (tanh32 ends at 1 − 2.7e-7)
			if d := math.Abs(float64(dx[i]) - dwant); math.Abs(u) < 7 && d > 2e-5*math.Max(1, math.Abs(dwant)) {
				t.Fatalf("n=%d x=%g: gelu' dy %g, want %g", n, v, dx[i], dwant)
			}
			// the portable float32 loop's formula
			tv := th[i]
			ds := (0.5*(1+tv) + 0.5*v*(1-tv*tv)*geluS*(1+3*0.044715*v*v)) * dy[i]
			if d := math.Abs(float64(dx[i] - ds)); d > 1e-6*math.Max(1, math.Abs(float64(ds))) {
				t.Fatalf("n=%d x=%g: gelu' dy %g, scalar formula %g", n, v, dx[i], ds)
			}
			if acc[i] != 1+dx[i] {
				t.Fatalf("n=%d: accumulated %g, want 1 + %g", n, acc[i], dx[i])
			}
		}
	}
}

// TestAttentionRowKernels: the decoder's per-head score and combine
// kernels equal plain float64 loops (strided rows, n not a multiple of
// anything, head widths 8…64 for the scores, 32 for the combine).
func TestAttentionRowKernels(t *testing.T) {
	if !vec.HaveAVX2 {
		t.Skip("no AVX2+FMA: the decoder uses BLAS gemv")
	}
	rng := rand.New(rand.NewPCG(71, 72))
	for _, hs := range []int{8, 16, 32, 40, 64} {
		const ld, n = 100, 37
		k := make([]float32, n*ld)
		for i := range k {
			k[i] = float32(rng.NormFloat64())
		}
		q := make([]float32, hs)
		for i := range q {
			q[i] = float32(rng.NormFloat64())
		}
		out := make([]float32, n)
		if !vec.DotRows(q, k[3:], ld, n, 0.25, out) {
			t.Fatalf("hs %d: DotRows did not run", hs)
		}
		for j := 0; j < n; j++ {
			var want float64
			for i := 0; i < hs; i++ {
				want += float64(k[3+j*ld+i]) * float64(q[i])
			}
			want *= 0.25
			if math.Abs(float64(out[j])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("hs %d row %d: %v, want %v", hs, j, out[j], want)
			}
		}
		if hs != 32 {
			if vec.AxpyRows32(out, k[3:], ld, n, make([]float32, hs)) {
				t.Fatalf("AxpyRows32 ran with width %d", hs)
			}
			continue
		}
		comb := make([]float32, 32)
		if !vec.AxpyRows32(out, k[5:], ld, n, comb) {
			t.Fatal("AxpyRows32 did not run")
		}
		for i := 0; i < 32; i++ {
			var want float64
			for j := 0; j < n; j++ {
				want += float64(out[j]) * float64(k[5+j*ld+i])
			}
			if math.Abs(float64(comb[i])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("combine lane %d: %v, want %v", i, comb[i], want)
			}
		}
	}
}

// TestLayerNormFloat32: the float32 layer norm (vector rows where the
// width is a multiple of 8, scalar otherwise) agrees with the float64
// kernel on y, dx, dw and db, accumulating and not.
func TestLayerNormFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(81, 82))
	for _, d := range []int{8, 64, 40, 13} {
		const n = 9
		x, w, b, dy := randSlice(rng, n*d, 2), randSlice(rng, d, 1), randSlice(rng, d, 1), randSlice(rng, n*d, 1)
		for i := range x {
			x[i] += 0.5
		}
		k64 := newLayerNormKernel[float64](n, d, 1e-5)
		y64 := make([]float64, n*d)
		k64.forward(x, w, b, y64)
		dx64, dw64, db64 := make([]float64, n*d), make([]float64, d), make([]float64, d)
		k64.backward(x, w, dy, dx64, dw64, db64, false)
		for _, acc := range []bool{false, true} {
			k32 := newLayerNormKernel[float32](n, d, 1e-5)
			y32 := make([]float32, n*d)
			k32.forward(to32(x), to32(w), to32(b), y32)
			dx32, dw32, db32 := make([]float32, n*d), make([]float32, d), make([]float32, d)
			base := float32(0)
			if acc {
				base = 1
				for i := range dx32 {
					dx32[i] = 1
				}
				for i := range dw32 {
					dw32[i], db32[i] = 1, 1
				}
			}
			k32.backward(to32(x), to32(w), to32(dy), dx32, dw32, db32, acc)
			for _, c := range []struct {
				name string
				got  []float32
				want []float64
			}{{"y", y32, y64}, {"dx", dx32, dx64}, {"dw", dw32, dw64}, {"db", db32, db64}} {
				for i, v := range c.got {
					if c.name != "y" {
						v -= base
					}
					if math.Abs(float64(v)-c.want[i]) > 2e-5*math.Max(1, math.Abs(c.want[i])) {
						t.Fatalf("d=%d acc=%v %s[%d] = %v, float64 %v", d, acc, c.name, i, v, c.want[i])
					}
				}
			}
		}
	}
}

// TestCrossEntropyFloat32: the float32 cross entropy (vector max, exp and
// scaling where the CPU has them) agrees with the float64 kernel on the
// loss and dlogits, accumulating and not, with ignored rows.
func TestCrossEntropyFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(91, 92))
	for _, v := range []int{300, 13, 64} {
		const n = 7
		lg := randSlice(rng, n*v, 3)
		tg := make([]int32, n)
		for i := range tg {
			tg[i] = int32(rng.IntN(v))
		}
		tg[2] = -1
		k64 := newCrossEntropyKernel[float64](n, v)
		l64, _ := k64.forward(lg, tg)
		d64 := make([]float64, n*v)
		k64.backward(lg, tg, 0.7, d64, false)
		for _, acc := range []bool{false, true} {
			k32 := newCrossEntropyKernel[float32](n, v)
			l32, _ := k32.forward(to32(lg), tg)
			if math.Abs(l32-l64) > 1e-6*math.Abs(l64) {
				t.Fatalf("V=%d: loss %v, float64 %v", v, l32, l64)
			}
			d32 := make([]float32, n*v)
			if acc {
				for i := range d32 {
					d32[i] = 1
				}
			}
			k32.backward(to32(lg), tg, 0.7, d32, acc)
			for i, x := range d32 {
				if acc {
					x--
				}
				if math.Abs(float64(x)-d64[i]) > 1e-6 {
					t.Fatalf("V=%d acc=%v: dlogits[%d] = %v, float64 %v", v, acc, i, x, d64[i])
				}
			}
		}
	}
	if m, n := vec.Max([]float32{1, 5, -2, 3, 4, 9, 0, 2, 11}); n > 0 && (n != 8 || m != 9) {
		t.Errorf("Max of the first 8 = %v over %d", m, n)
	}
}

// TestGemvKernels: the one-row linear kernels (vec.Gemv for W (C, OC),
// vec.DotAcc for W (OC, C)) add to y what a float64 loop gives, over
// strided weights and widths that exercise every strip and tail, and give
// bit-identical columns/rows however the output is split between calls
// (the decoder splits it across cores).
func TestGemvKernels(t *testing.T) {
	if !vec.HaveAVX2 {
		t.Skip("no AVX2+FMA: the decoder uses BLAS gemv")
	}
	rng := rand.New(rand.NewPCG(81, 82))
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	// 1224 columns pass through every AVX-512 strip width once (384, 256,
	// 192, 128, 96, 64, 48, 32, 16) and the AVX2 tail
	for _, sh := range [][2]int{{1, 8}, {3, 16}, {17, 104}, {128, 384}, {40, 136}, {64, 7}, {33, 1224}, {5, 192}, {9, 48}} {
		k, n := sh[0], sh[1]
		ld := n + 5
		w, x, y0 := randv(k*ld), randv(k), randv(n)
		y := append([]float32(nil), y0...)
		done := vec.Gemv(x, w[2:], ld, y)
		if done != n&^7 {
			t.Fatalf("Gemv %dx%d did %d columns, want %d", k, n, done, n&^7)
		}
		for j := 0; j < n; j++ {
			want := float64(y0[j])
			if j < done {
				for i := 0; i < k; i++ {
					want += float64(x[i]) * float64(w[2+i*ld+j])
				}
			}
			if math.Abs(float64(y[j])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("Gemv %dx%d column %d: %v, want %v", k, n, j, y[j], want)
			}
		}
		// the same columns in pieces of 8, 16 and 24: bit-identical (the
		// AVX-512 strips against the AVX2 kernel: vec's
		// TestGemvAVX512MatchesAVX2)
		ys := append([]float32(nil), y0...)
		for lo, step := 0, 8; lo < done; lo, step = lo+step, 8+(step%24) {
			hi := min(lo+step, done)
			vec.Gemv(x, w[2+lo:], ld, ys[lo:hi])
		}
		for j := 0; j < done; j++ {
			if ys[j] != y[j] {
				t.Fatalf("Gemv %dx%d column %d: %v split, %v whole", k, n, j, ys[j], y[j])
			}
		}
	}
	for _, sh := range [][2]int{{8, 1}, {16, 3}, {24, 9}, {128, 1024}, {136, 13}} {
		k, n := sh[0], sh[1]
		ld := k + 3
		w, x, y0 := randv(n*ld), randv(k), randv(n)
		y := append([]float32(nil), y0...)
		if !vec.DotAcc(x, w[1:], ld, y) {
			t.Fatalf("DotAcc %dx%d did not run", n, k)
		}
		for j := 0; j < n; j++ {
			want := float64(y0[j])
			for i := 0; i < k; i++ {
				want += float64(x[i]) * float64(w[1+j*ld+i])
			}
			if math.Abs(float64(y[j])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("DotAcc %dx%d row %d: %v, want %v", n, k, j, y[j], want)
			}
		}
		ys := append([]float32(nil), y0...)
		for lo, step := 0, 1; lo < n; lo, step = lo+step, 1+(step+2)%7 {
			hi := min(lo+step, n)
			vec.DotAcc(x, w[1+lo*ld:], ld, ys[lo:hi])
		}
		for j := 0; j < n; j++ {
			if ys[j] != y[j] {
				t.Fatalf("DotAcc %dx%d row %d: %v split, %v whole", n, k, j, ys[j], y[j])
			}
		}
	}
	if vec.DotAcc(make([]float32, 12), make([]float32, 24), 12, make([]float32, 2)) {
		t.Fatal("DotAcc ran with a width not a multiple of 8")
	}
}

// TestGemm8Kernel: the 8-row AVX-512 kernel adds what a float64 loop
// gives and agrees bit for bit with the 4-row AVX2 kernel on each half of
// its rows (the linear forward mixes them by rows and columns).
func TestGemm8Kernel(t *testing.T) {
	if !vec.HaveAVX512 {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(91, 92))
	for _, sh := range [][2]int{{1, 32}, {7, 64}, {128, 96}, {40, 200}} {
		k, n := sh[0], sh[1]
		ldx, ldw, ldy := k+3, n+5, n+1
		x, w, y0 := make([]float32, 8*ldx), make([]float32, k*ldw), make([]float32, 8*ldy)
		for _, v := range [][]float32{x, w, y0} {
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		}
		y8, y4 := append([]float32(nil), y0...), append([]float32(nil), y0...)
		d := vec.Gemm8(k, n, x, ldx, w[1:], ldw, y8, ldy)
		if d != n&^31 {
			t.Fatalf("%dx%d: Gemm8 did %d columns", k, n, d)
		}
		if vec.Gemm4(k, d, x, ldx, w[1:], ldw, y4, ldy) != d || vec.Gemm4(k, d, x[4*ldx:], ldx, w[1:], ldw, y4[4*ldy:], ldy) != d {
			t.Fatal("Gemm4 did not run")
		}
		for r := 0; r < 8; r++ {
			for j := 0; j < n; j++ {
				want := float64(y0[r*ldy+j])
				if j < d {
					for i := 0; i < k; i++ {
						want += float64(x[r*ldx+i]) * float64(w[1+i*ldw+j])
					}
				}
				got := y8[r*ldy+j]
				if math.Abs(float64(got)-want) > 1e-5*math.Max(1, math.Abs(want)) {
					t.Fatalf("%dx%d row %d col %d: %v, want %v", k, n, r, j, got, want)
				}
				if got != y4[r*ldy+j] {
					t.Fatalf("%dx%d row %d col %d: Gemm8 %v, Gemm4 %v", k, n, r, j, got, y4[r*ldy+j])
				}
			}
		}
	}
}
