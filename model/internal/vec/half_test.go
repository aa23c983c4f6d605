package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestHalfConversions: every half converts to float32 and back to itself
// (NaNs stay NaN), and HalfFromFloat32 rounds to the nearest half, ties
// to even, with overflow to ±Inf, on float32 values across the half range
// including its subnormals and the midpoints between halves.
func TestHalfConversions(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := HalfToFloat32(uint16(h))
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			if !math.IsNaN(float64(f)) || HalfFromFloat32(f)&0x7fff <= 0x7c00 {
				t.Fatalf("NaN %#04x -> %v -> %#04x", h, f, HalfFromFloat32(f))
			}
			continue
		}
		if g := HalfFromFloat32(f); g != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, g)
		}
	}
	// nearest: no half (of the same sign) lies closer than the chosen one
	rng := rand.New(rand.NewPCG(5, 7))
	check := func(x float32) {
		h := HalfFromFloat32(x)
		v := float64(HalfToFloat32(h))
		if math.Abs(float64(x)) >= 65520 { // at or past the rounding boundary to Inf (a tie, to the even ±Inf)
			if !math.IsInf(v, 0) || math.Signbit(v) != math.Signbit(float64(x)) {
				t.Fatalf("%v -> %v, want ±Inf", x, v)
			}
			return
		}
		d := math.Abs(float64(x) - v)
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7fff >= 0x7c00 || nb>>15 != h>>15 {
				continue
			}
			dn := math.Abs(float64(x) - float64(HalfToFloat32(nb)))
			if dn < d || (dn == d && h&1 == 1) {
				t.Fatalf("%v -> %#04x (%v), but %#04x (%v) is nearer or even", x, h, v, nb, HalfToFloat32(nb))
			}
		}
	}
	for i := 0; i < 200000; i++ {
		x := float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(44)-30))
		if rng.IntN(2) == 0 {
			x = -x
		}
		check(x)
	}
	for h := uint16(0); h < 0x7bff; h += 7 { // midpoints between neighbours
		a, b := float64(HalfToFloat32(h)), float64(HalfToFloat32(h+1))
		check(float32((a + b) / 2))
		check(-float32((a + b) / 2))
	}
	check(65519.99)
	check(65520)
	check(1e6)
}

// TestHalfFromFloat32s: the bulk conversion gives HalfFromFloat32's
// halves (NaN for NaN) on every half's value, the midpoints between
// neighbouring halves, values past the range and random ones, on lengths
// with and without a tail.
func TestHalfFromFloat32s(t *testing.T) {
	var src []float32
	for h := 0; h < 1<<16; h++ {
		src = append(src, HalfToFloat32(uint16(h)))
		if h&0x7fff < 0x7bff {
			a, b := HalfToFloat32(uint16(h)), HalfToFloat32(uint16(h+1))
			src = append(src, (a+b)/2, math.Nextafter32((a+b)/2, b), math.Nextafter32((a+b)/2, a))
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10000; i++ {
		src = append(src, float32(math.Ldexp(rng.NormFloat64(), rng.IntN(60)-35)))
	}
	src = append(src, 65520, -65520, 1e30, float32(math.Inf(-1)), 3)
	dst := make([]uint16, len(src))
	n := HalfFromFloat32s(dst, src)
	if HaveHalf && n != len(src)&^7 {
		t.Fatalf("converted %d of %d", n, len(src))
	}
	for i, x := range src[:n] {
		want := HalfFromFloat32(x)
		if math.IsNaN(float64(x)) {
			if g := dst[i]; g&0x7c00 != 0x7c00 || g&0x3ff == 0 || g>>15 != want>>15 {
				t.Fatalf("NaN %#08x -> %#04x", math.Float32bits(x), g)
			}
			continue
		}
		if dst[i] != want {
			t.Fatalf("%v (%#08x): %#04x, HalfFromFloat32 %#04x", x, math.Float32bits(x), dst[i], want)
		}
	}
}

// TestPackHalf: PackHalf puts W[i][j] at panel j/64, row i, column j%64,
// zero past n, the same from W and (trans) from Wᵀ.
func TestPackHalf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range [][2]int{{1, 1}, {3, 64}, {5, 70}, {17, 200}, {2, 128}} {
		k, n := sh[0], sh[1]
		w, wt := make([]float32, k*n), make([]float32, n*k)
		for i := 0; i < k; i++ {
			for j := 0; j < n; j++ {
				w[i*n+j] = float32(rng.NormFloat64())
				wt[j*k+i] = w[i*n+j]
			}
		}
		a, b := make([]uint16, HalfPackedLen(k, n)), make([]uint16, HalfPackedLen(k, n))
		for i := range a {
			a[i], b[i] = 0xffff, 0xffff // the padding must be written
		}
		PackHalf(a, w, k, n, false)
		PackHalf(b, wt, k, n, true)
		for p := 0; p < len(a)/(HalfPanel*k); p++ {
			for i := 0; i < k; i++ {
				for c := 0; c < HalfPanel; c++ {
					var want uint16
					if j := p*HalfPanel + c; j < n {
						want = HalfFromFloat32(w[i*n+j])
					}
					o := (p*k+i)*HalfPanel + c
					if a[o] != want || b[o] != want {
						t.Fatalf("k=%d n=%d panel %d row %d col %d: %#04x and %#04x (trans), want %#04x", k, n, p, i, c, a[o], b[o], want)
					}
				}
			}
		}
	}
}

// halfCase is a random product for the GemmHalf tests: x (rows, k) with
// leading dimension k+3, W (k, n) packed, y (rows, n) with leading
// dimension n+5 holding random starting values.
type halfCase struct {
	rows, k, n, ldx, ldy int
	x, y0                []float32
	w                    []uint16
}

func newHalfCase(rng *rand.Rand, rows, k, n int) halfCase {
	c := halfCase{rows: rows, k: k, n: n, ldx: k + 3, ldy: n + 5}
	c.x, c.y0 = make([]float32, rows*c.ldx), make([]float32, rows*c.ldy)
	for i := range c.x {
		c.x[i] = float32(rng.NormFloat64())
	}
	for i := range c.y0 {
		c.y0[i] = float32(rng.NormFloat64())
	}
	w := make([]float32, k*n)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	c.w = make([]uint16, HalfPackedLen(k, n))
	PackHalf(c.w, w, k, n, false)
	return c
}

// run returns y after GemmHalf and GemmHalfGo on the columns it left.
func (c halfCase) run() []float32 {
	y := append([]float32(nil), c.y0...)
	d := GemmHalf(c.rows, c.k, c.x, c.ldx, c.w, y, c.ldy, c.n)
	GemmHalfGo(c.rows, c.k, c.x, c.ldx, c.w, y, c.ldy, d, c.n)
	return y
}

// TestGemmHalfMatchesGo: GemmHalf (assembly where it runs, the portable
// loop on its tail) agrees with the portable loop on every column, within
// the rounding of k float32 multiply-adds (fused or not), for row counts
// that exercise every kernel and widths with and without a partial panel.
func TestGemmHalfMatchesGo(t *testing.T) {
	t.Logf("half kernels: %v (AVX-512 %v)", HaveHalf, HaveAVX512)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, sh := range [][3]int{{1, 1, 1}, {1, 8, 64}, {2, 33, 130}, {3, 64, 200}, {4, 100, 128}, {5, 17, 256}, {9, 768, 70}, {1, 3072, 64}} {
		c := newHalfCase(rng, sh[0], sh[1], sh[2])
		got := c.run()
		want := append([]float32(nil), c.y0...)
		GemmHalfGo(c.rows, c.k, c.x, c.ldx, c.w, want, c.ldy, 0, c.n)
		for r := 0; r < c.rows; r++ {
			for j := 0; j < c.ldy; j++ {
				g, w := got[r*c.ldy+j], want[r*c.ldy+j]
				if j >= c.n {
					if g != c.y0[r*c.ldy+j] {
						t.Fatalf("%v: row %d column %d past n written", sh, r, j)
					}
					continue
				}
				var sabs float64 // Σ|x w|: the scale of the rounding errors
				for i := 0; i < c.k; i++ {
					sabs += math.Abs(float64(c.x[r*c.ldx+i]) * float64(HalfToFloat32(c.w[(j/HalfPanel*c.k+i)*HalfPanel+j%HalfPanel])))
				}
				tol := 2*float64(c.k)*0x1p-24*sabs + 0x1p-24*math.Abs(float64(c.y0[r*c.ldy+j]))
				if d := math.Abs(float64(g) - float64(w)); d > tol {
					t.Fatalf("%v: row %d column %d: %v, portable %v (diff %g > %g)", sh, r, j, g, w, d, tol)
				}
			}
		}
	}
}

// TestGemmHalfSplitsAgree: a product's columns do not depend on the row
// grouping (rows one by one or all at once) nor on how its whole panels
// are split between calls.
func TestGemmHalfSplitsAgree(t *testing.T) {
	if !HaveHalf {
		t.Skip("no half kernels (or SMTRAIN_NOSIMD set)")
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, rows := range []int{1, 2, 3, 4, 7} {
		c := newHalfCase(rng, rows, 96, 320)
		all := c.run()
		one := append([]float32(nil), c.y0...)
		for r := 0; r < rows; r++ {
			GemmHalf(1, c.k, c.x[r*c.ldx:], c.ldx, c.w, one[r*c.ldy:], c.ldy, c.n)
		}
		split := append([]float32(nil), c.y0...)
		GemmHalf(rows, c.k, c.x, c.ldx, c.w, split, c.ldy, 128)
		GemmHalf(rows, c.k, c.x, c.ldx, c.w[128*c.k:], split[128:], c.ldy, c.n-128)
		for i := range all {
			if all[i] != one[i] || all[i] != split[i] {
				t.Fatalf("rows %d element %d: %v at once, %v row by row, %v split", rows, i, all[i], one[i], split[i])
			}
		}
	}
}
