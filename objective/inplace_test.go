package objective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"smtrain/data"
	"smtrain/model"
)

// forwardLogits returns a copy of the logits of p on batch b from a
// separate forward-only model graph (no loss node: nothing in it works in
// place), as float64.
func forwardLogits(t *testing.T, p *model.Params, b *data.Batch) []float64 {
	t.Helper()
	g, err := model.NewGraph(p, b.B, b.T)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetBatch(b.Inputs, b.Positions, b.Parents); err != nil {
		t.Fatal(err)
	}
	m, err := g.CompileForward()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Step(); err != nil {
		t.Fatal(err)
	}
	if p.DType == model.F64 {
		return slices.Clone(g.Logits64())
	}
	out := make([]float64, 0, len(g.Logits32()))
	for _, x := range g.Logits32() {
		out = append(out, float64(x))
	}
	return out
}

// surrogateGrads backpropagates a fixed dLoss/dlogits through the model:
// the graph of p with loss Σ logits ⊙ c, c a constant (N, V) input holding
// dlogits, whose gradient with respect to the logits is exactly c. It
// returns copies of the parameter gradients (as float64).
func surrogateGrads(t *testing.T, p *model.Params, b *data.Batch, dlogits []float64) [][]float64 {
	t.Helper()
	g, err := model.NewGraph(p, b.B, b.T)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetBatch(b.Inputs, b.Positions, b.Parents); err != nil {
		t.Fatal(err)
	}
	N, V := b.B*b.T, p.Cfg.VocabSize
	var cv *tensor.Dense
	var dt tensor.Dtype
	if p.DType == model.F64 {
		dt = tensor.Float64
		cv = tensor.New(tensor.WithShape(N, V), tensor.WithBacking(slices.Clone(dlogits)))
	} else {
		dt = tensor.Float32
		c32 := make([]float32, len(dlogits))
		for i, x := range dlogits {
			c32[i] = float32(x)
		}
		cv = tensor.New(tensor.WithShape(N, V), tensor.WithBacking(c32))
	}
	c := G.NewMatrix(g.G, dt, G.WithShape(N, V), G.WithName("dlogits"), G.WithValue(cv))
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(g.Logits, c))))
	m, err := g.Compile(loss)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Step(); err != nil {
		t.Fatal(err)
	}
	return copyGrads(p, m)
}

func copyGrads(p *model.Params, m *model.Machine) [][]float64 {
	var out [][]float64
	if p.DType == model.F64 {
		for _, gr := range m.Grads64() {
			out = append(out, slices.Clone(gr))
		}
		return out
	}
	for _, gr := range m.Grads() {
		g := make([]float64, len(gr))
		for i, x := range gr {
			g[i] = float64(x)
		}
		out = append(out, g)
	}
	return out
}

// TestLossNodeInPlaceModelGraph: the loss node inside the real model graph
// writes dLoss/dlogits over the logits. Its loss and parameter gradients
// must equal those obtained with no aliasing at all: the objective on a
// separate copy of the logits (from a forward-only graph) with its own
// gradient buffer, then that gradient backpropagated through the same
// model by a surrogate loss Σ logits ⊙ dlogits. Several objectives, both
// dtypes, two steps with different batches on the same graph, and a scaled
// cost (dy ≠ 1, scaled in place).
func TestLossNodeInPlaceModelGraph(t *testing.T) {
	const B, T = 2, 12
	cases := []struct {
		name  string
		scale float64 // cost = scale·loss (1: the loss node itself)
	}{{"mle", 1}, {"bc", 1}, {"chi2mix", 1}, {"chi2mix", 3}, {"kl", 1}}
	for _, dtype := range []model.DType{model.F32, model.F64} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/x%g/%v", tc.name, tc.scale, dtype), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(31, uint64(len(tc.name))))
				p, err := model.NewParams(model.Tiny, dtype, rng)
				if err != nil {
					t.Fatal(err)
				}
				V := model.Tiny.VocabSize
				obj := mustNew(t, tc.name, DefaultConfig())
				g, err := model.NewGraph(p, B, T)
				if err != nil {
					t.Fatal(err)
				}
				h := NewHandle(model.Tiny.BkspcTokenID)
				loss, err := NewLossNode(g.Logits, obj, h)
				if err != nil {
					t.Fatal(err)
				}
				cost := loss
				if tc.scale != 1 {
					var k *G.Node
					if dtype == model.F64 {
						k = G.NewConstant(tc.scale)
					} else {
						k = G.NewConstant(float32(tc.scale))
					}
					cost = G.Must(G.Mul(loss, k))
				}
				m, err := g.Compile(cost)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				for step, lam := range []float64{0.5, 0.25} {
					b := randomBatch(rng, B, T, V)
					if err := h.Set(g, b, lam); err != nil {
						t.Fatal(err)
					}
					if err := m.Step(); err != nil {
						t.Fatal(err)
					}
					gotLoss := readFloats(t, loss.Value())[0]
					got := copyGrads(p, m)

					// Independent: logits copy, own gradient buffer.
					L := forwardLogits(t, p, b)
					ref := Params{BkspcID: model.Tiny.BkspcTokenID, Lambda: lam}
					var want Result
					wantG := make([]float64, len(L))
					if dtype == model.F64 {
						want, err = obj.Loss(L, V, b, ref, wantG)
					} else {
						L32 := make([]float32, len(L))
						for i, x := range L {
							L32[i] = float32(x)
						}
						g32 := make([]float32, len(L))
						want, err = obj.Loss32(L32, V, b, ref, g32)
						for i, x := range g32 {
							wantG[i] = float64(x)
						}
					}
					if err != nil {
						t.Fatal(err)
					}
					wantLoss := want.Loss
					for i := range wantG {
						wantG[i] *= tc.scale
						if dtype == model.F32 { // the op scales in the logits' dtype
							wantG[i] = float64(float32(wantG[i]))
						}
					}
					if dtype == model.F32 { // the node's value is a float32
						wantLoss = float64(float32(wantLoss))
					}
					if gotLoss != wantLoss {
						t.Errorf("step %d: graph loss %v, objective on a copy of the logits %v", step, gotLoss, wantLoss)
					}
					// After the step the logits buffer holds the gradient.
					var inBuf []float64
					if dtype == model.F64 {
						inBuf = g.Logits64()
					} else {
						for _, x := range g.Logits32() {
							inBuf = append(inBuf, float64(x))
						}
					}
					if d, at := maxDiff(inBuf, wantG); d != 0 {
						t.Errorf("step %d: logits buffer after the step differs from dy·dLoss/dlogits by %g at %d", step, d, at)
					}
					wantP := surrogateGrads(t, p, b, wantG)
					tol := 1e-12
					if dtype == model.F32 {
						tol = 1e-5
					}
					worst := 0.0
					for pi := range got {
						scale := 0.0
						for _, w := range wantP[pi] {
							scale = math.Max(scale, math.Abs(w))
						}
						d, at := maxDiff(got[pi], wantP[pi])
						worst = math.Max(worst, d/math.Max(scale, 1e-30))
						if d > tol*math.Max(scale, 1e-3) {
							t.Errorf("step %d: %s gradient differs by %g at %d (max |g| %g)", step, p.List[pi].Name, d, at, scale)
						}
					}
					t.Logf("step %d: loss %.6f, worst relative parameter-gradient difference %.3g", step, gotLoss, worst)
				}
			})
		}
	}
}

// TestLossAliasedGrad: the plain function with grad == logits (float64 and
// float32) gives the same result and gradient as with a separate buffer,
// for every objective, including rows where <bkspc> is masked.
func TestLossAliasedGrad(t *testing.T) {
	const B, T, V = 3, 12, 10
	rng := rand.New(rand.NewPCG(51, 52))
	for _, name := range Names {
		obj := mustNew(t, name, DefaultConfig())
		b := randomBatch(rng, B, T, V)
		L := randomLogits(rng, B*T*V, 2)
		p := Params{BkspcID: tBk, Lambda: 0.5}
		want, wantG := evalLoss(t, obj, slices.Clone(L), V, b, 0.5)
		al := slices.Clone(L)
		got, err := obj.Loss(al, V, b, p, al)
		if err != nil {
			t.Fatal(err)
		}
		if got.Loss != want.Loss {
			t.Errorf("%s: aliased loss %v, separate %v", name, got.Loss, want.Loss)
		}
		if d, at := maxDiff(al, wantG); d != 0 {
			t.Errorf("%s: aliased gradient differs by %g at %d", name, d, at)
		}
		L32 := make([]float32, len(L))
		for i, x := range L {
			L32[i] = float32(x)
		}
		g32 := make([]float32, len(L))
		want32, err := obj.Loss32(slices.Clone(L32), V, b, p, g32)
		if err != nil {
			t.Fatal(err)
		}
		got32, err := obj.Loss32(L32, V, b, p, L32)
		if err != nil {
			t.Fatal(err)
		}
		if got32.Loss != want32.Loss || !slices.Equal(L32, g32) {
			t.Errorf("%s: float32 aliased loss %v (separate %v) or gradient differs", name, got32.Loss, want32.Loss)
		}
	}
}
