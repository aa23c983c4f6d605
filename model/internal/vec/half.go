package vec

import "math"

// HalfPanel is the width in columns of the panels of a packed
// half-precision matrix (PackHalf).
const HalfPanel = 64

// HalfFromFloat32 converts x to IEEE 754 binary16 bits, rounding to
// nearest even (as VCVTPS2PH, numpy and ggml do): values beyond the range
// become ±Inf, values below half the smallest subnormal ±0, NaN stays NaN.
func HalfFromFloat32(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15: // beyond the largest exponent
		return sign | 0x7c00
	case exp-127 >= -14: // normal half
		h := uint32(exp-127+15)<<10 | man>>13
		// round to nearest even on the 13 dropped bits; a carry into
		// the exponent is the correct result (up to Inf)
		if rest := man & 0x1fff; rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	case exp-127 >= -25: // subnormal half (or rounds up to the smallest)
		full := man | 0x800000 // 24-bit significand
		shift := uint32(-14-(exp-127)) + 13
		m := full >> shift
		rest, half := full&(1<<shift-1), uint32(1)<<(shift-1)
		if rest > half || (rest == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	return sign
}

// HalfToFloat32 converts IEEE 754 binary16 bits to float32 exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0: // zero or subnormal: man · 2^-24
		return math.Float32frombits(sign | math.Float32bits(float32(man)*(1.0/(1<<24))))
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// HalfPackedLen is the length of a (k, n) matrix packed by PackHalf: n
// rounded up to whole panels.
func HalfPackedLen(k, n int) int { return (n + HalfPanel - 1) / HalfPanel * HalfPanel * k }

// PackHalf writes the (k, n) matrix W in half precision to dst
// (HalfPackedLen(k, n) long) in column panels: panel p holds columns
// [64p, 64p+64) of rows 0..k-1, row after row (64 halves each), the
// columns past n zero. w is W row-major (k, n), or with trans Wᵀ
// row-major (n, k): W[i][j] = w[j·k + i] (the tied LM head).
//
// A product then reads its weights as one contiguous stream per panel, and
// a column range of whole panels as one contiguous slice.
func PackHalf(dst []uint16, w []float32, k, n int, trans bool) {
	_ = dst[HalfPackedLen(k, n)-1]
	var col [HalfPanel]float32 // a panel row of Wᵀ, gathered
	for p0 := 0; p0 < n; p0 += HalfPanel {
		pw := min(HalfPanel, n-p0)
		out := dst[p0*k : (p0+HalfPanel)*k]
		for i := 0; i < k; i++ {
			var src []float32
			if trans {
				for j := range pw {
					col[j] = w[(p0+j)*k+i]
				}
				src = col[:pw]
			} else {
				src = w[i*n+p0 : i*n+p0+pw]
			}
			o := out[i*HalfPanel : (i+1)*HalfPanel]
			for j := HalfFromFloat32s(o, src); j < pw; j++ {
				o[j] = HalfFromFloat32(src[j])
			}
			clear(o[pw:])
		}
	}
}

// GemmHalfGo is the portable product of a packed half matrix: y[r·ldy + j]
// += Σ_i x[r·ldx + i]·W[i][j] for r < rows, i < k and columns c0 ≤ j < c1
// of the matrix packed in w (PackHalf, its first panel at w[0]). Each
// column's sum starts at 0 and runs over i in order, then is added to y,
// as the assembly kernels do (which fuse each multiply-add).
func GemmHalfGo(rows, k int, x []float32, ldx int, w []uint16, y []float32, ldy int, c0, c1 int) {
	var acc [HalfPanel]float32
	for p0 := c0 / HalfPanel * HalfPanel; p0 < c1; p0 += HalfPanel {
		lo, hi := max(c0, p0)-p0, min(c1, p0+HalfPanel)-p0
		pan := w[p0*k : (p0+HalfPanel)*k]
		for r := 0; r < rows; r++ {
			a := acc[lo:hi]
			clear(a)
			xr := x[r*ldx : r*ldx+k]
			for i, xi := range xr {
				wr := pan[i*HalfPanel+lo : i*HalfPanel+hi]
				for j, h := range wr {
					a[j] += xi * HalfToFloat32(h)
				}
			}
			yr := y[r*ldy+p0+lo : r*ldy+p0+hi]
			for j, v := range a {
				yr[j] += v
			}
		}
	}
}
