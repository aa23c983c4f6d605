package vec

// HaveHalf says the half-precision product kernels (half_amd64.s) run:
// AVX2+FMA (HaveAVX2, so SMTRAIN_NOSIMD=1 turns them off too) and F16C's
// conversions; the 1- to 4-row AVX-512 kernels where HaveAVX512.
var HaveHalf = HaveAVX2 && cpuidF16C()

func cpuidF16C() bool

//go:noescape
func halfFromF32F16C(dst *uint16, src *float32, n8 int)

// HalfFromFloat32s sets dst[i] = HalfFromFloat32(src[i]) over the longest
// multiple-of-8 prefix of src and returns its length (0 without the
// kernels); the caller converts the rest. Only a NaN's payload may differ
// from HalfFromFloat32's (it stays a NaN of the same sign).
func HalfFromFloat32s(dst []uint16, src []float32) int {
	n := len(src) &^ 7
	if !HaveHalf || n == 0 {
		return 0
	}
	_ = dst[n-1]
	halfFromF32F16C(&dst[0], &src[0], n/8)
	return n
}

//go:noescape
func halfPanelsAVX512R1(k int, x *float32, ldx int, w *uint16, y *float32, ldy int, np int)

//go:noescape
func halfPanelsAVX512R2(k int, x *float32, ldx int, w *uint16, y *float32, ldy int, np int)

//go:noescape
func halfPanelsAVX512R3(k int, x *float32, ldx int, w *uint16, y *float32, ldy int, np int)

//go:noescape
func halfPanelsAVX512R4(k int, x *float32, ldx int, w *uint16, y *float32, ldy int, np int)

//go:noescape
func halfPanelsAVX2(k int, x *float32, ldx int, w *uint16, y *float32, ldy int, np int)

// GemmHalf adds x @ W to y for rows rows of x (leading dimension ldx, k
// wide) over the whole panels of the first n columns: y[r·ldy + j] +=
// Σ_i x[r·ldx + i]·W[i][j] for j < 64·⌊n/64⌋, W packed by PackHalf with
// its first panel at w[0]. It returns the number of columns done (0
// without the kernels); the caller does the rest (GemmHalfGo). The
// arithmetic is GemmHalfGo's with one fused multiply-add per term, the
// same for every row count and vector width, and a column's result does
// not depend on how the columns are split between calls.
func GemmHalf(rows, k int, x []float32, ldx int, w []uint16, y []float32, ldy int, n int) int {
	np := n / HalfPanel
	if !HaveHalf || np == 0 || k == 0 || rows <= 0 {
		return 0
	}
	// bounds: the last element each operand is read or written at
	_, _, _ = x[(rows-1)*ldx+k-1], w[np*HalfPanel*k-1], y[(rows-1)*ldy+np*HalfPanel-1]
	for r := 0; r < rows; {
		xr, yr := &x[r*ldx], &y[r*ldy]
		m := 1
		switch {
		case !HaveAVX512:
			halfPanelsAVX2(k, xr, ldx, &w[0], yr, ldy, np)
		case rows-r >= 4:
			m = 4
			halfPanelsAVX512R4(k, xr, ldx, &w[0], yr, ldy, np)
		case rows-r == 3:
			m = 3
			halfPanelsAVX512R3(k, xr, ldx, &w[0], yr, ldy, np)
		case rows-r == 2:
			m = 2
			halfPanelsAVX512R2(k, xr, ldx, &w[0], yr, ldy, np)
		default:
			halfPanelsAVX512R1(k, xr, ldx, &w[0], yr, ldy, np)
		}
		r += m
	}
	return np * HalfPanel
}
