package model

import (
	"math"
	"testing"
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

func TestExpShift32(t *testing.T) {
	src := make([]float32, 3000)
	for i := range src {
		src[i] = float32(i)*0.05 - 140 // [-140, 10]
	}
	dst := make([]float32, len(src))
	sum := expShift32(dst, src, 10)
	var want float64
	for i, v := range src {
		if dst[i] != exp32(v-10) {
			t.Fatalf("x=%v: %v, exp32 gives %v", v-10, dst[i], exp32(v-10))
		}
		want += float64(exp32(v - 10))
	}
	if sum != want {
		t.Errorf("sum %v, want %v", sum, want)
	}
}
