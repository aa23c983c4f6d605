package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// newCERun compiles a training graph of p with a CrossEntropy loss on bt,
// either on the graph's logits (in place: what newTrainer builds) or on a
// copy of them made by a gorgonia Add of zero, a node that is not a fused
// op (the old path: the loss keeps its own softmax and gradient buffers).
func newCERun(t testing.TB, p *Params, B, T int, bt batch, inPlace bool) *trainer {
	t.Helper()
	g, err := NewGraph(p, B, T)
	if err != nil {
		t.Fatal(err)
	}
	logits := g.Logits
	if !inPlace {
		N, V := B*T, p.Cfg.VocabSize
		dt := tensor.Float64
		var zero *tensor.Dense
		if p.DType == F32 {
			dt = tensor.Float32
			zero = tensor.New(tensor.WithShape(N, V), tensor.WithBacking(make([]float32, N*V)))
		} else {
			zero = tensor.New(tensor.WithShape(N, V), tensor.WithBacking(make([]float64, N*V)))
		}
		z := G.NewMatrix(g.G, dt, G.WithShape(N, V), G.WithName("zero"), G.WithValue(zero))
		logits = G.Must(G.Add(g.Logits, z))
	}
	loss, err := CrossEntropy(logits, bt.targets)
	if err != nil {
		t.Fatal(err)
	}
	if got := crossEntropyInPlace(loss); got != inPlace {
		t.Fatalf("cross entropy in place: %v, want %v", got, inPlace)
	}
	g.setTuning(testTune)
	m, err := g.Compile(loss)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := g.SetBatch(bt.inputs, bt.positions, bt.parents); err != nil {
		t.Fatal(err)
	}
	return &trainer{g: g, m: m, loss: loss}
}

func (r *trainer) grads(dt DType) [][]float64 {
	var out [][]float64
	if dt == F64 {
		for _, g := range r.m.Grads64() {
			out = append(out, slices.Clone(g))
		}
		return out
	}
	for _, g := range r.m.Grads() {
		c := make([]float64, len(g))
		for i, x := range g {
			c[i] = float64(x)
		}
		out = append(out, c)
	}
	return out
}

func (r *trainer) logits(dt DType) []float64 {
	if dt == F64 {
		return slices.Clone(r.g.Logits64())
	}
	var out []float64
	for _, x := range r.g.Logits32() {
		out = append(out, float64(x))
	}
	return out
}

// TestCrossEntropyInPlace: the loss on a model graph's logits works in
// place of them and gives the same loss and parameter gradients as the old
// path with its own buffers (on the same parameters and batch), in float32
// and float64, over steps with different targets: some ignored rows
// (negative target: their rows of the buffer still hold raw logits when
// the backward zeroes them), then every row ignored (loss 0, zero
// gradient), then all counted. After a step the logits buffer holds
// dLoss/dlogits.
func TestCrossEntropyInPlace(t *testing.T) {
	const B, T = 3, 10
	for _, dt := range []DType{F64, F32} {
		t.Run(dt.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(61, 62))
			p := randomParams(t, cfgTest, dt, 3, 0.3)
			bt, _ := randomBatch(rng, cfgTest, B, T)
			in, ref := newCERun(t, p, B, T, bt, true), newCERun(t, p, B, T, bt, false)
			none := make([]int32, B*T)
			all := make([]int32, B*T)
			for i := range none {
				none[i] = -1
				all[i] = int32(rng.IntN(cfgTest.VocabSize))
			}
			for step, tg := range [][]int32{bt.targets, none, all, bt.targets} {
				for _, r := range []*trainer{in, ref} {
					if err := SetCrossEntropyTargets(r.loss, tg); err != nil {
						t.Fatal(err)
					}
					if err := r.m.Step(); err != nil {
						t.Fatal(err)
					}
				}
				if a, b := in.m.Loss(), ref.m.Loss(); a != b {
					t.Errorf("step %d: in-place loss %v, own-buffer loss %v", step, a, b)
				}
				if step == 1 && in.m.Loss() != 0 {
					t.Errorf("every target ignored: loss %v", in.m.Loss())
				}
				gi, gr := in.grads(dt), ref.grads(dt)
				for i := range gi {
					if !slices.Equal(gi[i], gr[i]) {
						t.Errorf("step %d: %s gradient differs from the own-buffer path", step, p.List[i].Name)
					}
				}
				// The reference's logits are untouched by its loss; the
				// in-place graph's buffer is now the gradient: softmax −
				// onehot over the counted rows (/count), 0 on ignored rows.
				L, D := ref.logits(dt), in.logits(dt)
				V := cfgTest.VocabSize
				cnt := 0
				for _, x := range tg {
					if x >= 0 {
						cnt++
					}
				}
				worst := 0.0
				for r, x := range tg {
					row, d := L[r*V:(r+1)*V], D[r*V:(r+1)*V]
					if x < 0 {
						if slices.ContainsFunc(d, func(v float64) bool { return v != 0 }) {
							t.Fatalf("step %d: ignored row %d of the gradient is not zero", step, r)
						}
						continue
					}
					mx := slices.Max(row)
					s := 0.0
					for _, v := range row {
						s += math.Exp(v - mx)
					}
					for j, v := range row {
						want := math.Exp(v-mx) / s
						if j == int(x) {
							want--
						}
						want /= float64(cnt)
						worst = max(worst, math.Abs(d[j]-want))
					}
				}
				if worst > 1e-6 {
					t.Errorf("step %d: logits buffer after the step differs from dLoss/dlogits by %.3g", step, worst)
				}
			}
		})
	}
}

// TestCrossEntropyInPlaceFiniteDiff: the in-place loss's parameter
// gradients against central differences (float64), with ignored rows.
func TestCrossEntropyInPlaceFiniteDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(63, 64))
	const B, T = 2, 6
	p := randomParams(t, cfgTest, F64, 4, 0.3)
	bt, _ := randomBatch(rng, cfgTest, B, T)
	r := newCERun(t, p, B, T, bt, true)
	xs := make([][]float64, len(p.List))
	for i, q := range p.List {
		xs[i] = q.F64
	}
	fdCheck(t, "in-place cross entropy", rng, xs, r.m.Grads64, func() float64 {
		if err := r.m.Step(); err != nil {
			t.Fatal(err)
		}
		return r.m.Loss()
	}, 3)
}

// TestCrossEntropyOwnBuffers: on a plain input node the loss keeps its own
// buffers and leaves the logits alone.
func TestCrossEntropyOwnBuffers(t *testing.T) {
	const N, V = 4, 7
	rng := rand.New(rand.NewPCG(65, 66))
	L := make([]float64, N*V)
	for i := range L {
		L[i] = rng.NormFloat64()
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(N, V), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(N, V), tensor.WithBacking(slices.Clone(L)))))
	loss, err := CrossEntropy(x, []int32{1, -1, 6, 0})
	if err != nil {
		t.Fatal(err)
	}
	if crossEntropyInPlace(loss) {
		t.Fatal("cross entropy on an input node works in place")
	}
	if _, err := G.Grad(loss, x); err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x.Value().Data().([]float64), L) {
		t.Error("the loss modified its input logits")
	}
}

// TestCrossEntropyInPlaceMemory: with a large vocabulary, building and
// running a training graph (NewGraph, CrossEntropy, Compile, one Step)
// allocates one (N, V) buffer, the logits: less than two in all (the old
// path allocated three). Measured as cumulative bytes allocated
// (MemStats.TotalAlloc), which the GC does not perturb.
func TestCrossEntropyInPlaceMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~100 MB")
	}
	cfg := Config{NLayer: 1, NHead: 1, NEmbd: 8, NPositions: 16, VocabSize: 200_000, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
	const B, T = 2, 16
	rng := rand.New(rand.NewPCG(67, 68))
	p, err := NewParams(cfg, F32, rng)
	if err != nil {
		t.Fatal(err)
	}
	inputs, positions, parents, targets := make([]int32, B*T), make([]int32, B*T), make([]int32, B*T), make([]int32, B*T)
	for r := 0; r < B; r++ {
		for j := 0; j < T; j++ {
			i := r*T + j
			inputs[i], positions[i], parents[i] = int32(rng.IntN(cfg.VocabSize)), int32(j), int32(j-1)
			targets[i] = int32(rng.IntN(cfg.VocabSize))
		}
	}
	nv := uint64(B * T * cfg.VocabSize * 4) // one (N, V) float32 buffer, bytes
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	newCERun(t, p, B, T, batch{inputs, positions, parents, targets}, true).step(t)
	runtime.ReadMemStats(&ms)
	got := ms.TotalAlloc - before
	// Everything but the (N, V) buffers is small next to one of them: the
	// parameters are not counted (NewParams ran before), their gradients
	// are ~V·D floats (1/4 of N·V here, wte's) per copy.
	t.Logf("graph + loss + compile + step allocated %.1f MiB; one (N, V) buffer is %.1f MiB (%s)",
		float64(got)/(1<<20), float64(nv)/(1<<20), fmt.Sprintf("%.2f buffers", float64(got)/float64(nv)))
	if got >= 2*nv {
		t.Errorf("allocated %d bytes, ≥ 2 (N, V) buffers (%d bytes each)", got, nv)
	}
}

// crossEntropyInPlace reports whether a loss node made by CrossEntropy
// works in place of its logits.
func crossEntropyInPlace(loss *G.Node) bool {
	switch op := loss.Op().(type) {
	case *fusedOp[float32]:
		if k, ok := op.k.(*crossEntropyOp[float32]); ok {
			return k.k.inPlace
		}
	case *fusedOp[float64]:
		if k, ok := op.k.(*crossEntropyOp[float64]); ok {
			return k.k.inPlace
		}
	}
	return false
}
