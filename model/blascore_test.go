package model

import "testing"

func TestCoreFix(t *testing.T) {
	for _, c := range []struct {
		core         string
		avx512, avx2 bool
		want         string
	}{
		{"Prescott", true, true, "SkylakeX"},
		{"Prescott", false, true, "Haswell"},
		{"Prescott", false, false, ""}, // an old CPU: Prescott is right
		{"Sandybridge", false, true, "Haswell"},
		{"SkylakeX", true, true, ""},
		{"Haswell", true, true, ""}, // AVX2 kernels: good enough, left alone
		{"Zen", false, true, ""},
		{"", true, true, ""}, // not OpenBLAS
	} {
		if got := coreFix(c.core, c.avx512, c.avx2); got != c.want {
			t.Errorf("coreFix(%q, %v, %v) = %q, want %q", c.core, c.avx512, c.avx2, got, c.want)
		}
	}
}
