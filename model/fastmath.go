package model

import (
	"math"

	"smtrain/model/internal/vec"
)

// Float32 elementary functions for the hot loops (GELU, softmax, cross
// entropy). Accuracy (tested in fastmath_test.go): exp32 within 2 ulp of
// the float32-rounded math.Exp on [-87, 88]; tanh32 within 5e-7 absolute.

// exp32 is e^x in float32: Cody–Waite range reduction x = n·ln2 + r,
// |r| ≤ ln2/2, and the Cephes expf polynomial. It returns 0 below -87
// (e^-87 ≈ 1.6e-38, the edge of the normal range) and +Inf above 88.72.
func exp32(x float32) float32 {
	if x > 88.72283 {
		return float32(math.Inf(1))
	}
	if x < -87 {
		return 0
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
	e := p*r2 + r + 1
	if n > 127 { // 2^128 is not a float32: scale in two steps
		return e * 2 * math.Float32frombits(uint32(n+126)<<23)
	}
	return e * math.Float32frombits(uint32(n+127)<<23)
}

// tanh32 is tanh in float32: a [13/6] rational approximation on
// |x| ≤ 7.9053 (Eigen's fast tanh coefficients), ±1 beyond, with the
// polynomials evaluated by Estrin's scheme (shorter dependency chains).
func tanh32(x float32) float32 {
	const clamp = 7.90531110763549805
	if x > clamp {
		x = clamp
	} else if x < -clamp {
		x = -clamp
	}
	x2 := x * x
	x4 := x2 * x2
	x8 := x4 * x4
	p01 := float32(4.89352455891786e-03) + float32(6.37261928875436e-04)*x2
	p23 := float32(1.48572235717979e-05) + float32(5.12229709037114e-08)*x2
	p45 := float32(-8.60467152213735e-11) + float32(2.00018790482477e-13)*x2
	p := (p01 + p23*x4) + (p45+float32(-2.76076847742355e-16)*x4)*x8
	q01 := float32(4.89352518554385e-03) + float32(2.26843463243900e-03)*x2
	q23 := float32(1.18534705686654e-04) + float32(1.19825839466702e-06)*x2
	q := q01 + q23*x4
	return x * p / q
}

// expShift32 sets dst[j] = exp32(src[j] − shift) (src[j] ≤ shift + 88)
// and returns Σ dst[j] in float64; exp32 is inlined by hand.
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

// expT is e^x: exp32 for float32, math.Exp for float64.
func expT[T Float](x T) T {
	if isF32[T]() {
		return T(exp32(float32(x)))
	}
	return T(math.Exp(float64(x)))
}
