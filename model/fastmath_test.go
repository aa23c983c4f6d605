package model

import (
	"math"
	"testing"

	"smtrain/model/internal/vec"
)

func TestExp32(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x < 88.72; x += 0.00731 {
		want := float32(math.Exp(float64(x)))
		got := exp32(x)
		ulp := float64(math.Nextafter32(want, float32(math.Inf(1))) - want)
		e := math.Abs(float64(got-want)) / ulp
		worst = math.Max(worst, e)
	}
	if worst > 2 {
		t.Errorf("exp32: max error %.2f ulp", worst)
	}
	if exp32(-100) != 0 || !math.IsInf(float64(exp32(100)), 1) || exp32(0) != 1 {
		t.Error("exp32 edge cases")
	}
	t.Logf("exp32 max error %.2f ulp", worst)
}

func TestTanh32(t *testing.T) {
	worst := 0.0
	for x := -12.0; x < 12; x += 0.000917 {
		e := math.Abs(float64(tanh32(float32(x))) - math.Tanh(float64(float32(x))))
		worst = math.Max(worst, e)
	}
	if worst > 5e-7 {
		t.Errorf("tanh32: max abs error %.3g", worst)
	}
	t.Logf("tanh32 max abs error %.3g", worst)
}

func TestGELUForward32(t *testing.T) {
	n := 4001
	x, y, th := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(i-n/2) / 200 // [-10, 10]
	}
	geluForward32(x, y, th)
	worst := 0.0
	for i, v := range x {
		xv := float64(v)
		want := 0.5 * xv * (1 + math.Tanh(geluS*(xv+0.044715*xv*xv*xv)))
		worst = math.Max(worst, math.Abs(float64(y[i])-want)/math.Max(1, math.Abs(want)))
		if th[i] != tanh32(float32(geluS*(v+0.044715*v*v*v))) {
			t.Fatalf("x=%v: saved tanh %v differs from tanh32", v, th[i])
		}
	}
	if worst > 3e-6 { // tanh32 error near -1 times |x| ≤ 10
		t.Errorf("gelu float32 max error %.3g", worst)
	}
	t.Logf("gelu float32 max error %.3g", worst)
}

// TestExpShift32: the row exp used by softmax/cross entropy (AVX2 over
// multiples of 8 where the CPU has it, exp32 on the rest) agrees with
// exp32 to 2 ulp-ish (4e-7 relative), is exactly 0 below e^-87 and NaN for
// NaN, and its float64 sum matches the sum of its outputs.
func TestExpShift32(t *testing.T) {
	t.Logf("AVX2+FMA kernels: %v", vec.HaveAVX2)
	for _, n := range []int{3000, 3001, 7, 13} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(i)*(150/float32(n)) - 140 // [-140, 10]
		}
		dst := make([]float32, len(src))
		sum := expShift32(dst, src, 10)
		var want, got float64
		for i, v := range src {
			w := exp32(v - 10)
			if v-10 < -87 {
				if dst[i] != 0 {
					t.Fatalf("n=%d x=%v: %v, want 0 below -87", n, v-10, dst[i])
				}
			} else if math.Abs(float64(dst[i]-w)) > 4e-7*float64(w) {
				t.Fatalf("n=%d x=%v: %v, exp32 gives %v", n, v-10, dst[i], w)
			}
			want += float64(w)
			got += float64(dst[i])
		}
		if math.Abs(sum-got) > 1e-12*got || math.Abs(sum-want) > 4e-7*want {
			t.Errorf("n=%d: sum %v, sum of outputs %v, of exp32 %v", n, sum, got, want)
		}
	}
	src := []float32{0, -1, float32(math.NaN()), -2, -3, -4, -5, -6, -7}
	dst := make([]float32, len(src))
	if s := expShift32(dst, src, 0); !math.IsNaN(float64(dst[2])) || !math.IsNaN(s) {
		t.Errorf("NaN input gave %v, sum %v", dst[2], s)
	}
}

// The reference float32 elementary functions: the hot loops inline them
// by hand (expShift32, geluForward32) and the AVX2 kernels vectorise them;
// the tests below check both against these.

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
