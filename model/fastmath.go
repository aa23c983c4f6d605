package model

import (
	"math"

	"smtrain/model/internal/vec"
)

// Float32 elementary functions for the hot loops (softmax, cross entropy;
// GELU's tanh is in geluForward32), written inline in their loops because
// the compiler does not inline a call to them. Their reference versions,
// exp32 and tanh32, are in fastmath_test.go, which checks them against
// math.Exp and math.Tanh (exp32 within 2 ulp of the float32-rounded
// math.Exp on [-87, 88], tanh32 within 5e-7 absolute) and the inlined
// loops and the AVX2 kernels against them.

// expShift32 sets dst[j] = exp32(src[j] − shift) (src[j] ≤ shift + 88)
// and returns Σ dst[j] in float64; exp32 (fastmath_test.go) is inlined by
// hand.
func expShift32(dst, src []float32, shift float32) float64 {
	dst = dst[:len(src)]
	k, sum := vec.ExpShift(dst, src, shift) // AVX2 over a multiple-of-8 prefix
	dst, src = dst[k:], src[k:]
	for j, v := range src {
		x := v - shift
		if x < -87 {
			dst[j] = 0
			continue
		}
		z := x * 1.44269504088896341
		var n int32
		if z >= 0 {
			n = int32(z + 0.5)
		} else {
			n = int32(z - 0.5)
		}
		fn := float32(n)
		r := x - fn*0.693359375 - fn*(-2.12194440e-4)
		r2 := r * r
		p := (float32(5.0000001201e-1) + float32(1.6666665459e-1)*r) +
			(float32(4.1665795894e-2)+float32(8.3334519073e-3)*r)*r2 +
			(float32(1.3981999507e-3)+float32(1.9875691500e-4)*r)*(r2*r2)
		e := (p*r2 + r + 1) * math.Float32frombits(uint32(n+127)<<23)
		dst[j] = e
		sum += float64(e)
	}
	return sum
}
