package gguf

import "math"

// maxHalf is the largest finite IEEE 754 binary16 value.
const maxHalf = 65504.0

// HalfFromFloat32 converts x to IEEE 754 binary16 bits, rounding to nearest
// even (as ggml's and numpy's conversions do): values beyond the range
// become ±Inf, values below the smallest subnormal ±0, NaN stays NaN.
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
		e := uint32(exp-127+15) << 10
		m := man >> 13
		h := e | m
		// round to nearest even on the 13 dropped bits; a carry into
		// the exponent is the correct result (up to Inf)
		rest := man & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && m&1 == 1) {
			h++
		}
		return sign | uint16(h)
	case exp-127 >= -25: // subnormal half (or rounds up to the smallest)
		full := man | 0x800000 // 24-bit significand
		shift := uint32(-14-(exp-127)) + 13
		m := full >> shift
		rest := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || (rest == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	return sign
}
