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
