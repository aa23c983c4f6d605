package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAdamAVX2Exact: the AVX2 AdamW kernel gives the scalar loop's results
// bit for bit (same operations, same order, no fused multiply-add).
func TestAdamAVX2Exact(t *testing.T) {
	if !haveAdamAVX2 {
		t.Skip("no AVX2")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 8, 9, 64, 1000, 4099} {
		p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range p {
			p[i] = float32(rng.NormFloat64())
			g[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-6)))
			m[i] = float32(rng.NormFloat64() * 1e-3)
			v[i] = float32(rng.Float64() * 1e-4)
		}
		g[0], v[0], m[0] = 0, 0, 0 // v' = 0: sqrt 0, eps alone
		k := adamStep{b1: 0.9, b2: 0.95, stepSize: 3e-4 / (1 - 0.9*0.9), bc2: math.Sqrt(1 - 0.95*0.95), eps: 1e-8, decay: 1 - 3e-4*0.1}
		pv, mv, vv := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), v...)
		k.run32(pv, g, mv, vv)
		haveAdamAVX2 = false
		k.run32(p, g, m, v)
		haveAdamAVX2 = true
		for i := range p {
			if math.Float32bits(p[i]) != math.Float32bits(pv[i]) || math.Float32bits(m[i]) != math.Float32bits(mv[i]) || math.Float32bits(v[i]) != math.Float32bits(vv[i]) {
				t.Fatalf("n %d element %d: AVX2 p %v m %v v %v, scalar p %v m %v v %v", n, i, pv[i], mv[i], vv[i], p[i], m[i], v[i])
			}
		}
	}
}

// BenchmarkAdamRun32 times one AdamW update of n float32 parameters with
// the AVX2 kernel (avx2) and the scalar loop (scalar).
func BenchmarkAdamRun32(b *testing.B) {
	for _, n := range []int{1 << 16, 1 << 22, 1 << 27} {
		p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range g {
			g[i], v[i] = 1e-3, 1e-6
		}
		k := adamStep{b1: 0.9, b2: 0.95, stepSize: 3e-4, bc2: 0.3, eps: 1e-8, decay: 0.99997}
		have := haveAdamAVX2
		for _, avx := range []bool{false, true} {
			if avx && !have {
				continue
			}
			name := map[bool]string{false: "scalar", true: "avx2"}[avx]
			b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
				haveAdamAVX2 = avx
				defer func() { haveAdamAVX2 = have }()
				b.SetBytes(int64(n) * 4 * 7)
				for i := 0; i < b.N; i++ {
					k.run32(p, g, m, v)
				}
			})
		}
	}
}
