package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// forwardLogits runs p's forward graph on one tree batch: (B·T, V) logits
// as float64.
func forwardLogits(t *testing.T, p *Params, B, T int, inputs, positions, parents []int32) []float64 {
	t.Helper()
	g := runForward(t, p, B, T, inputs, positions, parents)
	if p.DType == F64 {
		return append([]float64(nil), g.Logits64()...)
	}
	out := make([]float64, 0, B*T*p.Cfg.VocabSize)
	for _, v := range g.Logits32() {
		out = append(out, float64(v))
	}
	return out
}

// runForward runs one forward pass of a forward-only graph of p on a
// batch and returns the graph.
func runForward(t *testing.T, p *Params, B, T int, inputs, positions, parents []int32) *Graph {
	t.Helper()
	g, err := NewGraph(p, B, T)
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.CompileForward()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := g.SetBatch(inputs, positions, parents); err != nil {
		t.Fatal(err)
	}
	if err := m.Step(); err != nil {
		t.Fatal(err)
	}
	return g
}

// growBatch: a row with a backspace branch and a plain chain, old tokens
// only.
func growBatch() (B, T int, inputs, positions, parents []int32) {
	return 2, 6,
		[]int32{3, 17, 5, 29, 8, 11, 0, 39, 38, 2, 1, 7},
		[]int32{0, 1, 2, 3, 3, 4, 0, 1, 2, 3, 4, 5},
		[]int32{-1, 0, 1, 2, 2, 4, -1, 0, 1, 2, 3, 4}
}

// TestGrowVocabKeepsOldLogits proves the growth contract: on inputs made of
// old tokens, the grown model's logits of the old tokens equal the
// original's (bit for bit in float64, to float32 rounding in float32), the
// new tokens' logits are those of their initial rows, and so every old
// token's log-probability moves by the same amount at a position (the
// log-partition change).
func TestGrowVocabKeepsOldLogits(t *testing.T) {
	for _, dt := range []DType{F64, F32} {
		t.Run(dt.String(), func(t *testing.T) {
			cfg := Config{NLayer: 2, NHead: 2, NEmbd: 16, NPositions: 12, VocabSize: 40, LayerNormEpsilon: 1e-5, BkspcTokenID: -1, EOSTokenID: 1}
			p, err := NewParams(cfg, dt, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			// Scale up so logits are far from zero and rows differ.
			for _, q := range p.List {
				for j := range q.F32 {
					q.F32[j] *= 10
				}
				for j := range q.F64 {
					q.F64[j] *= 10
				}
			}
			const newV = 47
			g, err := GrowVocab(p, newV, rand.New(rand.NewPCG(3, 4)), GrowOptions{CopyFrom: map[int]int{45: 1}})
			if err != nil {
				t.Fatal(err)
			}
			if g.Cfg.VocabSize != newV || g.Cfg.NPositions != cfg.NPositions || g.Get("wte.weight").Shape[0] != newV {
				t.Fatalf("grown config %+v", g.Cfg)
			}
			B, T, in, pos, par := growBatch()
			a := forwardLogits(t, p, B, T, in, pos, par)
			b := forwardLogits(t, g, B, T, in, pos, par)
			tol := 0.0
			if dt == F32 {
				tol = 1e-5
			}
			V := cfg.VocabSize
			worst := 0.0
			for n := 0; n < B*T; n++ {
				for v := 0; v < V; v++ {
					x, y := a[n*V+v], b[n*newV+v]
					d := math.Abs(x-y) / max(1, math.Abs(x))
					worst = max(worst, d)
					if d > tol {
						t.Fatalf("input %d token %d: logit %v before growth, %v after", n, v, x, y)
					}
				}
			}
			t.Logf("max relative difference of old-token logits: %g (tolerance %g)", worst, tol)
			// log π(old) shifts by one constant per position.
			for n := 0; n < B*T; n++ {
				la, lb := logSumExp(a[n*V:(n+1)*V]), logSumExp(b[n*newV:(n+1)*newV])
				if !(lb > la) {
					t.Fatalf("input %d: the partition function did not grow (%v -> %v)", n, la, lb)
				}
				// The new tokens take some but not most of the mass.
				newMass := 1 - math.Exp(la-lb)
				if newMass <= 0 || newMass > 0.9 {
					t.Fatalf("input %d: new tokens take %.3f of the probability", n, newMass)
				}
			}
			// The other parameters are copies, not shared.
			for i, q := range g.List {
				if q.Name == "wte.weight" {
					continue
				}
				src := p.List[i]
				if q.F32 != nil && &q.F32[0] == &src.F32[0] || q.F64 != nil && &q.F64[0] == &src.F64[0] {
					t.Fatalf("%s shares memory with the original", q.Name)
				}
			}
		})
	}
}

func logSumExp(x []float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(v - m)
	}
	return m + math.Log(s)
}

// TestGrowVocabRows checks the initial rows: the mean of the old rows (or
// the copied row) plus noise of the documented scale, deterministic given
// the random source.
func TestGrowVocabRows(t *testing.T) {
	cfg := Config{NLayer: 1, NHead: 1, NEmbd: 8, NPositions: 4, VocabSize: 300, LayerNormEpsilon: 1e-5, BkspcTokenID: -1, EOSTokenID: 0}
	p, err := NewParams(cfg, F64, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	D, V := cfg.NEmbd, cfg.VocabSize
	old := p.Get("wte.weight").F64
	mean := make([]float64, D)
	for i := 0; i < V; i++ {
		for j := 0; j < D; j++ {
			mean[j] += old[i*D+j] / float64(V)
		}
	}
	// Without noise the rows are exactly the mean / the copied row.
	g, err := GrowVocab(p, V+3, rand.New(rand.NewPCG(1, 1)), GrowOptions{NoiseScale: -1, CopyFrom: map[int]int{V + 2: 7}})
	if err != nil {
		t.Fatal(err)
	}
	w := g.Get("wte.weight").F64
	for j := 0; j < D; j++ {
		if math.Abs(w[V*D+j]-mean[j]) > 1e-15 || math.Abs(w[(V+1)*D+j]-mean[j]) > 1e-15 || w[(V+2)*D+j] != old[7*D+j] {
			t.Fatalf("coordinate %d: rows %v %v %v, want mean %v and row 7 %v", j, w[V*D+j], w[(V+1)*D+j], w[(V+2)*D+j], mean[j], old[7*D+j])
		}
	}
	// With noise: the deviation from the mean has std ≈ 0.01 · 0.02
	// (NewParams draws wte from N(0, 0.02)).
	const extra = 2000
	g, err = GrowVocab(p, V+extra, rand.New(rand.NewPCG(9, 9)), GrowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w = g.Get("wte.weight").F64
	ss := 0.0
	for i := V; i < V+extra; i++ {
		for j := 0; j < D; j++ {
			d := w[i*D+j] - mean[j]
			ss += d * d
		}
	}
	sd := math.Sqrt(ss / float64(extra*D))
	if sd < 0.8*DefaultGrowNoise*0.02 || sd > 1.2*DefaultGrowNoise*0.02 {
		t.Fatalf("noise std %g, want about %g", sd, DefaultGrowNoise*0.02)
	}
	g2, _ := GrowVocab(p, V+extra, rand.New(rand.NewPCG(9, 9)), GrowOptions{})
	for i, v := range g2.Get("wte.weight").F64 {
		if v != w[i] {
			t.Fatal("not deterministic for the same random source")
		}
	}
	// Errors.
	if _, err := GrowVocab(p, V-1, rand.New(rand.NewPCG(1, 1)), GrowOptions{}); err == nil {
		t.Fatal("shrinking accepted")
	}
	if _, err := GrowVocab(p, V+1, rand.New(rand.NewPCG(1, 1)), GrowOptions{CopyFrom: map[int]int{V + 1: 0}}); err == nil {
		t.Fatal("copy into a row outside the grown vocabulary accepted")
	}
	if _, err := GrowVocab(p, V+1, nil, GrowOptions{}); err == nil {
		t.Fatal("nil rng accepted")
	}
}
