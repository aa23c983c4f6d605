package vec

import (
	"math"
	"os"

	"golang.org/x/sys/cpu"
)

// HaveAVX2 says the AVX2+FMA assembly kernels (vec_amd64.s) run; without
// them the functions of this package do nothing and return 0.
// SMTRAIN_NOSIMD=1 in the environment turns them off (the tests use it to
// run the portable loops on AVX2 machines too).
var HaveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && os.Getenv("SMTRAIN_NOSIMD") == ""

// HaveAVX512 says the AVX-512 variants of some kernels run (same results
// as their AVX2 versions, bit for bit). SMTRAIN_NOSIMD=1 turns them off with
// the rest; SMTRAIN_NOAVX512=1 alone.
var HaveAVX512 = HaveAVX2 && cpu.X86.HasAVX512F && os.Getenv("SMTRAIN_NOAVX512") == ""

const geluS = 0.7978845608028654 // sqrt(2/pi)

// geluConsts are the constants of geluFwdAVX2/geluBwdAVX2, each
// broadcast to 8 lanes (the assembly addresses them as 32-byte operands):
// √(2/π), 0.044715, the tanh clamp ±7.905…, tanh32's numerator a0..a6
// and denominator b0..b3 coefficients, ½, 1, 3·0.044715, ½√(2/π).
var geluConsts = func() (k [21][8]float32) {
	v := [21]float32{
		geluS, 0.044715, 7.90531110763549805, -7.90531110763549805,
		4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
		-8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16,
		4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06,
		0.5, 1, 3 * 0.044715, 0.5 * geluS, 0, 0,
	}
	for i := range v {
		for j := range k[i] {
			k[i][j] = v[i]
		}
	}
	return k
}()

// geluFwdAVX2 computes, for i < n (n a multiple of 8), th[i] = tanh32(u)
// with u = √(2/π)(x + 0.044715x³) and y[i] = ½x(1 + th[i]), the same
// formulas as geluForward32 with fused multiply-adds.
//
//go:noescape
func geluFwdAVX2(x, y, th *float32, n int, k *[21][8]float32)

// geluBwdAVX2 computes, for i < n (n a multiple of 8),
// g = ½(1+t) + ½√(2/π)·x·(1−t²)(1 + 3·0.044715x²) with t = th[i], and
// dx[i] = g·dy[i] (acc = 0) or dx[i] += g·dy[i] (acc = 1).
//
//go:noescape
func geluBwdAVX2(x, th, dy, dx *float32, n int, acc int, k *[21][8]float32)

// GELUForward runs the vector GELU forward over the longest
// multiple-of-8 prefix of x (y and th at least as long) and returns how
// many elements it did (0 without AVX2+FMA); the caller finishes the rest.
func GELUForward(x, y, th []float32) int {
	n := len(x) &^ 7
	if !HaveAVX2 || n == 0 {
		return 0
	}
	_, _ = y[n-1], th[n-1]
	geluFwdAVX2(&x[0], &y[0], &th[0], n, &geluConsts)
	return n
}

// GELUBackward is GELUForward for the backward (dx = g·dy, or += when
// acc), given the tanh th saved by the forward.
func GELUBackward(x, th, dy, dx []float32, acc bool) int {
	n := len(x) &^ 7
	if !HaveAVX2 || n == 0 {
		return 0
	}
	_, _, _ = th[n-1], dy[n-1], dx[n-1]
	a := 0
	if acc {
		a = 1
	}
	geluBwdAVX2(&x[0], &th[0], &dy[0], &dx[0], n, a, &geluConsts)
	return n
}

// expConsts are the constants of expShiftAVX2 (as geluConsts): log2(e),
// the Cody–Waite split of ln 2, the expf polynomial c0..c5, 1, −87, and
// the float32 exponent bias 127 (as int32 bits).
var expConsts = func() (k [12][8]float32) {
	v := [11]float32{
		1.44269504088896341, 0.693359375, -2.12194440e-4,
		5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4,
		1, -87,
	}
	for i := range v {
		for j := range k[i] {
			k[i][j] = v[i]
		}
	}
	for j := range k[11] {
		k[11][j] = math.Float32frombits(127)
	}
	return k
}()

// expShiftAVX2 sets dst[i] = e^(src[i] − shift) for i < n (n a multiple
// of 8; src[i] − shift ≤ 0, results below e^-87 are 0, NaN stays NaN)
// and writes four float64 partial sums of dst to sums.
//
//go:noescape
func expShiftAVX2(dst, src *float32, n int, shift float32, sums *[4]float64, k *[12][8]float32)

// ExpShift sets dst[i] = e^(src[i] − shift) (every src[i] ≤ shift) over
// the longest multiple-of-8 prefix of src, with model.exp32's range
// reduction and polynomial, and returns its length and the float64 sum of
// those dst values (0, 0 without AVX2+FMA).
func ExpShift(dst, src []float32, shift float32) (int, float64) {
	n := len(src) &^ 7
	if !HaveAVX2 || n == 0 {
		return 0, 0
	}
	_ = dst[n-1]
	var s [4]float64
	expShiftAVX2(&dst[0], &src[0], n, shift, &s, &expConsts)
	return n, (s[0] + s[1]) + (s[2] + s[3])
}

//go:noescape
func gemm4x16AVX2(k int, x *float32, ldx int, w *float32, ldw int, y *float32, ldy int, nb int)

// Gemm4 adds x @ w to y for 4 rows and the first 16·⌊n/16⌋ columns:
// y[r, j] += Σ_i x[r·ldx + i]·w[i·ldw + j] for r < 4, i < k, j < n&^15
// (row-major, leading dimensions in elements). It returns the number of
// columns done (0 without AVX2+FMA); the caller does the rest. The sum
// over i runs in order, one fused multiply-add per term.
func Gemm4(k, n int, x []float32, ldx int, w []float32, ldw int, y []float32, ldy int) int {
	nc := n &^ 15
	if !HaveAVX2 || nc == 0 || k == 0 {
		return 0
	}
	// bounds: the last element each operand is read or written at
	_, _, _ = x[3*ldx+k-1], w[(k-1)*ldw+nc-1], y[3*ldy+nc-1]
	gemm4x16AVX2(k, &x[0], ldx, &w[0], ldw, &y[0], ldy, nc/16)
	return nc
}

//go:noescape
func dotRowsAVX2(q *float32, k *float32, ldk int, n int, hs8 int, scale float32, out *float32)

//go:noescape
func axpyRows32AVX2(p *float32, v *float32, ldv int, n int, hs8 int, out *float32)

// DotRows sets out[j] = scale · Σ_i k[j·ldk + i]·q[i] for j < n and
// i < len(q) (the attention scores of one query against n cached keys)
// and reports whether it ran: it needs AVX2+FMA and len(q) a multiple of
// 8 up to 64.
func DotRows(q, k []float32, ldk, n int, scale float32, out []float32) bool {
	hs := len(q)
	if !HaveAVX2 || hs == 0 || hs%8 != 0 || hs > 64 || n <= 0 {
		return false
	}
	_, _ = k[(n-1)*ldk+hs-1], out[n-1]
	dotRowsAVX2(&q[0], &k[0], ldk, n, hs/8, scale, &out[0])
	return true
}

// AxpyRows32 sets out[i] = Σ_j p[j]·v[j·ldv + i] for i < 32 and j < n
// (one attention head of width 32 combining n cached values; in order of
// j) and reports whether it ran (AVX2+FMA, len(out) = 32).
func AxpyRows32(p, v []float32, ldv, n int, out []float32) bool {
	if !HaveAVX2 || len(out) != 32 || n <= 0 {
		return false
	}
	_, _ = v[(n-1)*ldv+31], p[n-1]
	axpyRows32AVX2(&p[0], &v[0], ldv, n, 4, &out[0])
	return true
}

//go:noescape
func sumF64AVX2(x *float32, n8 int, shift float32, sq int, out *[4]float64)

//go:noescape
func lnNormAVX2(x, w, b, y *float32, n8 int, m, rs float32)

//go:noescape
func lnBwdSumsAVX2(x, dy, w, pw, pb *float32, n8 int, m, rs float32, out *[2]float32)

//go:noescape
func lnBwdDxAVX2(x, dy, w, dx *float32, n8 int, m, rs, sdn, sdnn float32, acc int)

// LNForwardRow normalises one layer-norm row when its width is a multiple
// of 8 (and reports whether it ran): mean = Σx/d and var = Σ(x−m)²/d in
// float64 (m = float32(mean)), rs = float32(1/√(var+eps)), y = (x−m)·rs·w + b.
func LNForwardRow(x, w, b, y []float32, eps float64) (m, rs float32, ok bool) {
	d := len(x)
	if !HaveAVX2 || d == 0 || d%8 != 0 {
		return 0, 0, false
	}
	_, _, _ = w[d-1], b[d-1], y[d-1]
	var s [4]float64
	sumF64AVX2(&x[0], d/8, 0, 0, &s)
	m = float32(((s[0] + s[1]) + (s[2] + s[3])) / float64(d))
	sumF64AVX2(&x[0], d/8, m, 1, &s)
	rs = float32(1 / math.Sqrt(((s[0]+s[1])+(s[2]+s[3]))/float64(d)+eps))
	lnNormAVX2(&x[0], &w[0], &b[0], &y[0], d/8, m, rs)
	return m, rs, true
}

// LNBackwardRow is one layer-norm row's backward (width a multiple of 8;
// reports whether it ran): with nj = (x−m)·rs and dn = w·dy it adds nj·dy
// to pw and dy to pb, and sets (acc: adds) dx = (dn − mean(dn) −
// nj·mean(dn·nj))·rs.
func LNBackwardRow(x, dy, w, dx, pw, pb []float32, m, rs float32, acc bool) bool {
	d := len(x)
	if !HaveAVX2 || d == 0 || d%8 != 0 {
		return false
	}
	_, _, _, _, _ = dy[d-1], w[d-1], dx[d-1], pw[d-1], pb[d-1]
	var s [2]float32
	lnBwdSumsAVX2(&x[0], &dy[0], &w[0], &pw[0], &pb[0], d/8, m, rs, &s)
	a := 0
	if acc {
		a = 1
	}
	lnBwdDxAVX2(&x[0], &dy[0], &w[0], &dx[0], d/8, m, rs, s[0]/float32(d), s[1]/float32(d), a)
	return true
}

//go:noescape
func maxAVX2(x *float32, n8 int) float32

//go:noescape
func scaleAVX2(dst, src *float32, n8 int, a float32, acc int)

// Max returns the largest of the first 8·⌊len(x)/8⌋ elements and that
// count (0 without AVX2+FMA or with fewer than 8 elements). With a NaN
// among them the result may or may not be NaN.
func Max(x []float32) (float32, int) {
	n := len(x) &^ 7
	if !HaveAVX2 || n == 0 {
		return 0, 0
	}
	return maxAVX2(&x[0], n/8), n
}

// Scale sets dst[i] = a·src[i] (or adds it, acc) over the longest
// multiple-of-8 prefix of src and returns its length (0 without AVX2+FMA).
func Scale(dst, src []float32, a float32, acc bool) int {
	n := len(src) &^ 7
	if !HaveAVX2 || n == 0 {
		return 0
	}
	_ = dst[n-1]
	c := 0
	if acc {
		c = 1
	}
	scaleAVX2(&dst[0], &src[0], n/8, a, c)
	return n
}

//go:noescape
func gemv1AVX2(k int, x *float32, w *float32, ldw int, y *float32, n8 int)

//go:noescape
func gemv1AVX512(k int, x *float32, w *float32, ldw int, y *float32, n16 int)

//go:noescape
func dotAccAVX2(x *float32, w *float32, ldw int, n int, k8 int, y *float32)

//go:noescape
func dotAcc8AVX512(x *float32, w *float32, ldw int, n8 int, k16 int, y *float32)

// Gemv adds x @ w to y for one row over the first 8·⌊len(y)/8⌋ columns:
// y[j] += Σ_i x[i]·w[i·ldw + j] for i < len(x) (row-major w, leading
// dimension ldw in elements). It returns the number of columns done (0
// without AVX2+FMA); the caller does the rest. Each column's sum starts
// at 0, runs over i in order with one fused multiply-add per term and is
// then added to y[j], whichever columns a call covers, so splitting the
// columns between calls does not change any result.
func Gemv(x, w []float32, ldw int, y []float32) int {
	n := len(y) &^ 7
	if !HaveAVX2 || n == 0 || len(x) == 0 {
		return 0
	}
	_ = w[(len(x)-1)*ldw+n-1] // the last element read
	if HaveAVX512 {
		n16 := n &^ 15
		if n16 > 0 {
			gemv1AVX512(len(x), &x[0], &w[0], ldw, &y[0], n16/16)
		}
		if n16 < n {
			gemv1AVX2(len(x), &x[0], &w[n16], ldw, &y[n16], 1)
		}
		return n
	}
	gemv1AVX2(len(x), &x[0], &w[0], ldw, &y[0], n/8)
	return n
}

// DotAcc adds w x to y: y[j] += Σ_i w[j·ldw + i]·x[i] for j < len(y),
// i < len(x) (rows of w against x; w row-major with leading dimension
// ldw). It reports whether it ran: it needs AVX2+FMA and len(x) a
// multiple of 8. A row's result does not depend on how the rows are split
// between calls, nor on whether AVX-512 runs (dotAcc8AVX512, 8 rows at a
// time when len(x) is a multiple of 16).
func DotAcc(x, w []float32, ldw int, y []float32) bool {
	n, k := len(y), len(x)
	if !HaveAVX2 || n == 0 || k == 0 || k%8 != 0 {
		return false
	}
	_ = w[(n-1)*ldw+k-1]
	d := 0
	if HaveAVX512 && k%16 == 0 && n >= 8 {
		// 8 rows at a time, the same arithmetic
		d = n &^ 7
		dotAcc8AVX512(&x[0], &w[0], ldw, d/8, k/16, &y[0])
	}
	if d < n {
		dotAccAVX2(&x[0], &w[d*ldw], ldw, n-d, k/8, &y[d])
	}
	return true
}

//go:noescape
func gemm8x32AVX512(k int, x *float32, ldx int, w *float32, ldw int, y *float32, ldy int, nb int)

// Gemm8 is Gemm4 for 8 rows and the first 32·⌊n/32⌋ columns, with
// AVX-512 (weights read once per 8 rows). It returns the number of
// columns done (0 without AVX-512); the arithmetic per element is Gemm4's.
func Gemm8(k, n int, x []float32, ldx int, w []float32, ldw int, y []float32, ldy int) int {
	nc := n &^ 31
	if !HaveAVX512 || nc == 0 || k == 0 {
		return 0
	}
	_, _, _ = x[7*ldx+k-1], w[(k-1)*ldw+nc-1], y[7*ldy+nc-1]
	gemm8x32AVX512(k, &x[0], ldx, &w[0], ldw, &y[0], ldy, nc/32)
	return nc
}
