package objective

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func readFloats(t *testing.T, v G.Value) []float64 {
	t.Helper()
	switch x := v.(type) {
	case *G.F64:
		return []float64{float64(*x)}
	case *G.F32:
		return []float64{float64(*x)}
	case *tensor.Dense:
		switch x.Dtype() {
		case tensor.Float64:
			return append([]float64(nil), x.Float64s()...)
		case tensor.Float32:
			var out []float64
			for _, f := range x.Float32s() {
				out = append(out, float64(f))
			}
			return out
		}
	}
	t.Fatalf("unexpected value %T", v)
	return nil
}

// TestLossNode runs the fused op under TapeMachine + G.Grad for every
// objective in float64 and float32, across two steps with different batches
// on the same graph, and with an upstream op (logits = 2·x) and a scaled
// cost (3·loss) so that dy ≠ 1 is exercised. It must match the plain
// function exactly (float64) or to float32 rounding.
func TestLossNode(t *testing.T) {
	const B, T, V = 3, 12, 10
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, name := range Names {
			t.Run(fmt.Sprintf("%s/%v", name, dt), func(t *testing.T) {
				obj := mustNew(t, name, DefaultConfig())
				g := G.NewGraph()
				x := G.NewMatrix(g, dt, G.WithShape(B*T, V), G.WithName("x"))
				var two, three *G.Node
				if dt == tensor.Float64 {
					two, three = G.NewConstant(2.0, G.WithName("two")), G.NewConstant(3.0, G.WithName("three"))
				} else {
					two, three = G.NewConstant(float32(2), G.WithName("two")), G.NewConstant(float32(3), G.WithName("three"))
				}
				logits := G.Must(G.Mul(x, two))
				h := NewHandle(tBk)
				loss, err := NewLossNode(logits, obj, h)
				if err != nil {
					t.Fatal(err)
				}
				cost := G.Must(G.Mul(loss, three))
				grads, err := G.Grad(cost, x)
				if err != nil {
					t.Fatal(err)
				}
				m := G.NewTapeMachine(g)
				defer m.Close()
				rng := rand.New(rand.NewPCG(21, uint64(len(dt.String()))))
				for step := 0; step < 3; step++ {
					b := randomBatch(rng, B, T, V)
					X := randomLogits(rng, B*T*V, 1)
					L := make([]float64, len(X))
					var xv *tensor.Dense
					if dt == tensor.Float64 {
						xv = tensor.New(tensor.WithShape(B*T, V), tensor.WithBacking(X))
						for i := range X {
							L[i] = 2 * X[i]
						}
					} else {
						x32 := make([]float32, len(X))
						for i := range X {
							x32[i] = float32(X[i])
							L[i] = float64(2 * x32[i])
						}
						xv = tensor.New(tensor.WithShape(B*T, V), tensor.WithBacking(x32))
					}
					if err := G.Let(x, xv); err != nil {
						t.Fatal(err)
					}
					lam := []float64{0.5, 0, 1}[step]
					if err := h.Set(nil, b, lam); err != nil {
						t.Fatal(err)
					}
					if err := m.RunAll(); err != nil {
						t.Fatal(err)
					}
					want, wantG := evalLoss(t, obj, L, V, b, lam)
					got := readFloats(t, loss.Value())[0]
					gotCost := readFloats(t, cost.Value())[0]
					gx := readFloats(t, grads[0].Value())
					m.Reset()
					tol := 1e-12
					if dt == tensor.Float32 {
						tol = 2e-6
					}
					if !close(got, want.Loss, tol) || !close(gotCost, 3*want.Loss, tol) {
						t.Errorf("step %d: node loss %v cost %v, plain %v", step, got, gotCost, want.Loss)
					}
					if r := h.Result(); r.Loss != want.Loss && dt == tensor.Float64 {
						t.Errorf("step %d: handle result %v, plain %v", step, r.Loss, want.Loss)
					}
					for i := range gx {
						w := 6 * wantG[i] // d(3·loss)/dx = 3·2·dloss/dlogits
						if math.Abs(gx[i]-w) > tol*math.Max(1, math.Abs(w)) {
							t.Fatalf("step %d: dcost/dx[%d] = %v, want %v", step, i, gx[i], w)
						}
					}
				}
			})
		}
	}
}

// TestLossNodeDirect: the loss node straight on an input node (dy = 1):
// the forward with gradient leaves dLoss/dlogits in the input's own buffer
// and the backward returns that tensor; evaluation mode (the forward
// alone) leaves the logits untouched.
func TestLossNodeDirect(t *testing.T) {
	const B, T, V = 2, 10, 12
	rng := rand.New(rand.NewPCG(5, 6))
	b := randomBatch(rng, B, T, V)
	L := randomLogits(rng, B*T*V, 1.5)
	obj := mustNew(t, "chi2mix", DefaultConfig())
	g := G.NewGraph()
	// The node works in place of its logits (the value of x ends up
	// holding the gradient): each graph gets its own copy of L.
	buf := slices.Clone(L)
	xv := tensor.New(tensor.WithShape(B*T, V), tensor.WithBacking(buf))
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(B*T, V), G.WithName("logits"), G.WithValue(xv))
	h := NewHandle(tBk)
	if err := h.Set(nil, b, 0.5); err != nil {
		t.Fatal(err)
	}
	loss, err := NewLossNode(x, obj, h)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(loss, x)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	want, wantG := evalLoss(t, obj, L, V, b, 0.5)
	if got := readFloats(t, loss.Value())[0]; got != want.Loss {
		t.Errorf("loss %v, plain %v", got, want.Loss)
	}
	if d, at := maxDiff(readFloats(t, grads[0].Value()), wantG); d != 0 {
		t.Errorf("grad differs by %g at %d", d, at)
	}
	if d, at := maxDiff(buf, wantG); d != 0 {
		t.Errorf("the input's buffer differs from the gradient by %g at %d", d, at)
	}
	if gv, ok := grads[0].Value().(*tensor.Dense); !ok || gv != xv {
		t.Errorf("the gradient node's value is %p, not the logits tensor %p", grads[0].Value(), xv)
	}
	if h.Result().Components["value"] != want.Components["value"] {
		t.Errorf("handle components %v, plain %v", h.Result().Components, want.Components)
	}
	m.Reset()
	// Evaluation mode: the forward alone works on a forward-only graph.
	g2 := G.NewGraph()
	buf2 := slices.Clone(L)
	x2 := G.NewMatrix(g2, tensor.Float64, G.WithShape(B*T, V), G.WithName("logits2"),
		G.WithValue(tensor.New(tensor.WithShape(B*T, V), tensor.WithBacking(buf2))))
	h2 := NewHandle(tBk)
	if err := h2.Set(nil, b, 0.5); err != nil {
		t.Fatal(err)
	}
	h2.SetGradient(false)
	l2, err := NewLossNode(x2, obj, h2)
	if err != nil {
		t.Fatal(err)
	}
	m2 := G.NewTapeMachine(g2)
	defer m2.Close()
	if err := m2.RunAll(); err != nil {
		t.Fatal(err)
	}
	if got := readFloats(t, l2.Value())[0]; got != want.Loss {
		t.Errorf("eval loss %v, plain %v", got, want.Loss)
	}
	if !slices.Equal(buf2, L) {
		t.Error("the forward-only loss modified its logits")
	}
	// Bad inputs are errors, not panics.
	if _, err := NewLossNode(G.NewVector(g2, tensor.Float64, G.WithShape(4), G.WithName("v")), obj, h2); err == nil {
		t.Error("vector logits accepted")
	}
	h3 := NewHandle(tBk)
	g3 := G.NewGraph()
	x3 := G.NewMatrix(g3, tensor.Float64, G.WithShape(B*T, V), G.WithName("logits3"),
		G.WithValue(tensor.New(tensor.WithShape(B*T, V), tensor.WithBacking(slices.Clone(L)))))
	if _, err := NewLossNode(x3, obj, h3); err != nil {
		t.Fatal(err)
	}
	m3 := G.NewTapeMachine(g3)
	defer m3.Close()
	if err := m3.RunAll(); err == nil {
		t.Error("running without a batch on the handle did not fail")
	}
}

// recGraph records the batch a Handle gives it.
type recGraph struct {
	inputs []int32
	err    error
}

func (r *recGraph) SetBatch(inputs, positions, parents []int32) error {
	if r.err != nil {
		return r.err
	}
	r.inputs = inputs
	return nil
}

// TestHandleSetGivesGraphTheBatch: Set hands the batch to the model graph
// and the loss node in one call (the graph cannot keep a stale batch), and
// a graph that refuses it leaves the handle's batch as it was.
func TestHandleSetGivesGraphTheBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	b1, b2 := randomBatch(rng, 2, 5, 9), randomBatch(rng, 2, 5, 9)
	h := NewHandle(tBk)
	g := &recGraph{}
	if err := h.Set(g, b1, 0.5); err != nil {
		t.Fatal(err)
	}
	if err := h.Set(g, b2, 0.5); err != nil {
		t.Fatal(err)
	}
	if &g.inputs[0] != &b2.Inputs[0] || h.batch != b2 {
		t.Fatal("Set did not give the graph and the loss node the same, latest batch")
	}
	g.err = errors.New("refused")
	if err := h.Set(g, b1, 0.5); err == nil || h.batch != b2 {
		t.Fatalf("a refused batch: error %v, handle batch changed: %v", err, h.batch != b2)
	}
	if err := h.Set(g, nil, 0.5); err == nil {
		t.Fatal("nil batch accepted")
	}
}
