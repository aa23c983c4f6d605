package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"smtrain/internal/parallel"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// dotK is a test-only fused op: loss = Σ x ⊙ R for a fixed random R, so
// that the gradient reaching the op under test is a dense random tensor.
type dotK struct {
	shape tensor.Shape
	r     []float64
}

func (k *dotK) kind() string             { return "testdot" }
func (k *dotK) inShapes() []tensor.Shape { return []tensor.Shape{k.shape} }
func (k *dotK) outShape() tensor.Shape   { return tensor.ScalarShape() }
func (k *dotK) diffWRT() []bool          { return []bool{true} }
func (k *dotK) fwd(in [][]float64, out []float64) error {
	var s float64
	for i, v := range in[0] {
		s += v * k.r[i]
	}
	out[0] = s
	return nil
}
func (k *dotK) bwd(in [][]float64, out, dout []float64, din [][]float64) {
	for i, r := range k.r {
		din[0][i] = r * dout[0]
	}
}

func randSlice(rng *rand.Rand, n int, std float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = rng.NormFloat64() * std
	}
	return s
}

// relErr is |a−b| / max(|a|, |b|, floor).
func relErr(a, b, floor float64) float64 {
	d := math.Max(math.Max(math.Abs(a), math.Abs(b)), floor)
	return math.Abs(a-b) / d
}

// fdCheck compares the analytic gradients of run's loss with respect to
// each of xs with central finite differences, perturbing at most maxPer
// entries per tensor (all if maxPer ≤ 0). It returns the max relative error.
func fdCheck(t reporter, name string, rng *rand.Rand, xs [][]float64, grads func() [][]float64, run func() float64, maxPer int) float64 {
	t.Helper()
	run()
	run() // a second step: stale or accumulated gradient state would show
	gs := grads()
	an := make([][]float64, len(gs))
	for i, g := range gs {
		an[i] = append([]float64(nil), g...)
	}
	const h = 1e-5
	worst := 0.0
	for i, x := range xs {
		if an[i] == nil {
			t.Fatalf("%s: no gradient for input %d", name, i)
		}
		idx := make([]int, 0, len(x))
		if maxPer <= 0 || maxPer >= len(x) {
			for j := range x {
				idx = append(idx, j)
			}
		} else {
			for j := 0; j < maxPer; j++ {
				idx = append(idx, rng.IntN(len(x)))
			}
		}
		for _, j := range idx {
			old := x[j]
			x[j] = old + h
			lp := run()
			x[j] = old - h
			lm := run()
			x[j] = old
			fd := (lp - lm) / (2 * h)
			e := relErr(an[i][j], fd, 1e-3)
			if e > worst {
				worst = e
			}
			if e > 1e-6 {
				t.Errorf("%s: input %d entry %d: analytic %.10g, finite difference %.10g (rel err %.2g)", name, i, j, an[i][j], fd, e)
			}
		}
	}
	t.Logf("%s: max rel error %.3g", name, worst)
	return worst
}

// checkOp builds loss = Σ op(inputs) ⊙ R (or the op's own scalar output),
// and checks its gradients with respect to every differentiable input.
func checkOp(t reporter, name string, rng *rand.Rand, k opKernel[float64], xs [][]float64) {
	t.Helper()
	g := G.NewGraph()
	var nodes G.Nodes
	for i, s := range k.inShapes() {
		v := tensor.New(tensor.WithShape(s...), tensor.WithBacking(xs[i]))
		nodes = append(nodes, G.NewTensor(g, tensor.Float64, len(s), G.WithShape(s...), G.WithName(name+"_in"+string(rune('a'+i))), G.WithValue(v)))
	}
	if tk, ok := k.(tunable); ok {
		tk.setTuning(testTune)
	}
	out, err := G.ApplyOp(newFusedOp[float64](k), nodes...)
	if err != nil {
		t.Fatal(err)
	}
	loss := out
	if len(k.outShape()) > 0 {
		loss, err = G.ApplyOp(newFusedOp[float64](&dotK{shape: k.outShape(), r: randSlice(rng, shapeSize(k.outShape()), 1)}), out)
		if err != nil {
			t.Fatal(err)
		}
	}
	var wrt G.Nodes
	var wrtXs [][]float64
	for i, d := range k.diffWRT() {
		if d {
			wrt, wrtXs = append(wrt, nodes[i]), append(wrtXs, xs[i])
		}
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	run := func() float64 {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return float64(*loss.Value().(*G.F64))
	}
	gr := func() [][]float64 {
		var r [][]float64
		for _, n := range grads {
			r = append(r, denseData[float64](n.Value()))
		}
		return r
	}
	fdCheck(t, name, rng, wrtXs, gr, run, 0)
}

func TestLayerNormGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, d := 7, 6
	checkOp(t, "layernorm", rng, newLayerNormOp[float64](n, d, 1e-5),
		[][]float64{randSlice(rng, n*d, 1), randSlice(rng, d, 1), randSlice(rng, d, 1)})
}

// TestGELULinearGrad checks the MLP's fused gelu+c_proj, which recomputes
// gelu(f) in its backward from scratch buffers another layer's op may have
// overwritten in between (simulated by scribbling on them).
func TestGELULinearGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	n, c, oc := 5, 8, 6
	gl, dgl, th := make([]float64, n*c), make([]float64, n*c), make([]float64, n*c)
	op := newGELULinearOp[float64](n, c, oc, gl, dgl, th)
	checkOp(t, "gelu+linear", rng, &scribble{opKernel: op, bufs: [][]float64{gl, dgl, th}},
		[][]float64{randSlice(rng, n*c, 2), randSlice(rng, c*oc, 1), randSlice(rng, oc, 1), randSlice(rng, n*oc, 1)})
}

// scribble overwrites shared scratch buffers after every forward, as the
// next layer's op would.
type scribble struct {
	opKernel[float64]
	bufs [][]float64
}

func (s *scribble) fwd(in [][]float64, out []float64) error {
	err := s.opKernel.fwd(in, out)
	for _, b := range s.bufs {
		for i := range b {
			b[i] = 1e3
		}
	}
	return err
}

func TestLinearGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n, c, oc := 6, 5, 7
	checkOp(t, "linear+bias+residual", rng, newLinearOp[float64]("lin", n, c, oc, false, true, true),
		[][]float64{randSlice(rng, n*c, 1), randSlice(rng, c*oc, 1), randSlice(rng, oc, 1), randSlice(rng, n*oc, 1)})
	checkOp(t, "linear+bias", rng, newLinearOp[float64]("lin", n, c, oc, false, true, false),
		[][]float64{randSlice(rng, n*c, 1), randSlice(rng, c*oc, 1), randSlice(rng, oc, 1)})
	checkOp(t, "linear transposed (lm head)", rng, newLinearOp[float64]("head", n, c, oc, true, false, false),
		[][]float64{randSlice(rng, n*c, 1), randSlice(rng, oc*c, 1)})
}

func TestEmbeddingGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	b, tt, d, v, p := 2, 5, 4, 6, 7
	bs := newBatchState(b, tt)
	inp, pos, par := make([]int32, b*tt), make([]int32, b*tt), make([]int32, b*tt)
	for i := range inp {
		inp[i] = int32(rng.IntN(v))
		pos[i] = int32(rng.IntN(p))
		par[i] = int32(i%tt) - 1
	}
	inp[1], inp[3] = 2, 2 // repeated token: gradients must add
	if err := bs.set(inp, pos, par, v, p); err != nil {
		t.Fatal(err)
	}
	checkOp(t, "embedding", rng, &embedOp[float64]{n: b * tt, d: d, v: v, p: p, bs: bs, k: embedKernel[float64]{d: d}},
		[][]float64{randSlice(rng, v*d, 1), randSlice(rng, p*d, 1)})
}

func TestAttentionGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	b, tt, h, d := 3, 9, 2, 6
	inp, pos, par := make([]int32, b*tt), make([]int32, b*tt), make([]int32, b*tt)
	for r := 0; r < b; r++ {
		tr := randomTree(rng, 2, 12, 0.35, 5, tt)
		copy(inp[r*tt:], tr.inputs)
		copy(pos[r*tt:], tr.positions)
		copy(par[r*tt:], tr.parents)
		if r == 2 { // a row ending in padding
			for i := tt - 3; i < tt; i++ {
				inp[r*tt+i], pos[r*tt+i], par[r*tt+i] = 0, 0, -1
			}
		}
	}
	bs := newBatchState(b, tt)
	if err := bs.set(inp, pos, par, 5, 64); err != nil {
		t.Fatal(err)
	}
	// the mask must differ from the causal one somewhere for the test to
	// exercise tree attention
	causal := true
	for r := 0; r < b; r++ {
		for i := 1; i < tt; i++ {
			if par[r*tt+i] != int32(i-1) {
				causal = false
			}
		}
	}
	if causal {
		t.Fatal("random trees happened to be causal chains; change the seed")
	}
	checkOp(t, "attention", rng, newAttentionOp[float64](bs, h, d), [][]float64{randSlice(rng, b*tt*3*d, 1)})
}

func TestCrossEntropyGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	n, v := 6, 5
	k := &crossEntropyOp[float64]{n: n, v: v, targets: make([]int32, n), k: newCrossEntropyKernel[float64](n, v)}
	if err := k.setTargets([]int32{1, -1, 4, 0, -1, 2}); err != nil {
		t.Fatal(err)
	}
	x := randSlice(rng, n*v, 3)
	x[3] = 30 // one dominant logit
	checkOp(t, "crossentropy", rng, k, [][]float64{x})
	if err := k.setTargets([]int32{0, 0, 0, 0, 0, 5}); err == nil {
		t.Error("target outside the vocabulary accepted")
	}
}

func TestCrossEntropyValueAndIgnored(t *testing.T) {
	kern := newCrossEntropyKernel[float64](2, 3)
	logits := []float64{1, 2, 3, 1000, 1000, 1000}
	l, c := kern.forward(logits, []int32{2, 0})
	want := ((math.Log(math.Exp(1)+math.Exp(2)+math.Exp(3)) - 3) + math.Log(3)) / 2
	if c != 2 || math.Abs(l-want) > 1e-12 {
		t.Errorf("loss %v count %d, want %v 2", l, c, want)
	}
	l, c = kern.forward(logits, []int32{-1, -1})
	if l != 0 || c != 0 || math.IsNaN(l) {
		t.Errorf("all ignored: loss %v count %d, want 0 0", l, c)
	}
	d := []float64{1, 2, 3, 4, 5, 6}
	kern.backward(logits, []int32{-1, -1}, 1, d, false)
	for _, v := range d {
		if v != 0 {
			t.Fatalf("all ignored: nonzero gradient %v", d)
		}
	}
}

// TestFDCheckDetectsBug makes sure the harness can fail: a GELU whose
// backward is off by 1% in one entry must be reported.
func TestFDCheckDetectsBug(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	r := &recorder{}
	n, c, oc := 3, 4, 2
	op := newGELULinearOp[float64](n, c, oc, make([]float64, n*c), make([]float64, n*c), make([]float64, n*c))
	checkOp(r, "bad gelu", rng, &badGELU{op}, [][]float64{randSlice(rng, n*c, 1), randSlice(rng, c*oc, 1), randSlice(rng, oc, 1), randSlice(rng, n*oc, 1)})
	if r.errors == 0 || r.fatal {
		t.Errorf("finite-difference check did not detect a wrong backward (errors %d, fatal %v)", r.errors, r.fatal)
	}
}

type badGELU struct{ *geluLinearOp[float64] }

func (b *badGELU) bwd(in [][]float64, out, dout []float64, din [][]float64) {
	b.geluLinearOp.bwd(in, out, dout, din)
	din[0][0] *= 1.01
}

// reporter is the part of testing.TB the harness uses.
type reporter interface {
	Helper()
	Errorf(string, ...any)
	Fatalf(string, ...any)
	Fatal(...any)
	Logf(string, ...any)
}

type recorder struct {
	errors int
	fatal  bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.errors++ }
func (r *recorder) Fatalf(string, ...any) { r.fatal = true }
func (r *recorder) Fatal(...any)          { r.fatal = true }
func (r *recorder) Logf(string, ...any)   {}

// TestKernelsAccumulate: with acc the kernels add their gradient to what the
// buffers hold (llm.c style); without, they overwrite it. Both must agree.
func TestKernelsAccumulate(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	type grads = [][]float64
	check := func(name string, sizes []int, bwd func(g grads, acc bool)) {
		t.Helper()
		fresh := make(grads, len(sizes))
		pre := make(grads, len(sizes))
		acc := make(grads, len(sizes))
		for i, n := range sizes {
			fresh[i] = randSlice(rng, n, 5) // garbage that must be overwritten
			pre[i] = randSlice(rng, n, 1)
			acc[i] = append([]float64(nil), pre[i]...)
		}
		bwd(fresh, false)
		bwd(acc, true)
		for i := range sizes {
			for j := range acc[i] {
				if math.Abs(acc[i][j]-(pre[i][j]+fresh[i][j])) > 1e-12 {
					t.Fatalf("%s: gradient %d[%d]: accumulated %v, want %v + %v", name, i, j, acc[i][j], pre[i][j], fresh[i][j])
				}
			}
		}
	}
	n, d, oc := 6, 5, 7
	x, w, dy := randSlice(rng, n*d, 1), randSlice(rng, d*oc, 1), randSlice(rng, n*oc, 1)
	lin := &linearKernel[float64]{c: d, oc: oc, tune: testTune}
	check("linear", []int{n * d, d * oc, oc}, func(g grads, acc bool) { lin.backward(x, w, dy, g[0], g[1], g[2], acc) })
	linT := &linearKernel[float64]{c: d, oc: oc, transW: true, tune: testTune}
	check("linear transposed", []int{n * d, d * oc}, func(g grads, acc bool) { linT.backward(x, w, dy, g[0], g[1], nil, acc) })
	ln := newLayerNormKernel[float64](n, d, 1e-5)
	ln.tune = testTune
	lw, lb := randSlice(rng, d, 1), randSlice(rng, d, 1)
	ln.forward(x, lw, lb, make([]float64, n*d))
	dyd := randSlice(rng, n*d, 1)
	check("layernorm", []int{n * d, d, d}, func(g grads, acc bool) { ln.backward(x, lw, dyd, g[0], g[1], g[2], acc) })
	ge := newGELUKernel[float64](n * d)
	ge.tune = testTune
	ge.forward(x, make([]float64, n*d))
	check("gelu", []int{n * d}, func(g grads, acc bool) { ge.backward(x, dyd, g[0], acc) })
	bs := newBatchState(2, 3)
	if err := bs.set([]int32{1, 2, 1, 0, 3, 3}, []int32{0, 1, 2, 0, 1, 1}, []int32{-1, 0, 1, -1, 0, 0}, 4, 3); err != nil {
		t.Fatal(err)
	}
	at := newAttentionKernel[float64](2, 3, 2, 4, bs.mask)
	qkv := randSlice(rng, 6*12, 1)
	at.forward(qkv, make([]float64, 6*4))
	dat := randSlice(rng, 6*4, 1)
	check("attention", []int{6 * 12}, func(g grads, acc bool) { at.backward(qkv, dat, g[0], acc) })
	em := &embedKernel[float64]{d: 4, tune: testTune}
	check("embedding", []int{4 * 4, 3 * 4}, func(g grads, acc bool) { em.backward(bs.tok, bs.pos, dat, g[0], g[1], acc) })
	ce := newCrossEntropyKernel[float64](3, 4)
	ce.tune = testTune
	lg := randSlice(rng, 12, 1)
	tg := []int32{2, -1, 0}
	ce.forward(lg, tg)
	check("cross entropy", []int{12}, func(g grads, acc bool) { ce.backward(lg, tg, 0.7, g[0], acc) })
}

// testTune is the tuning the test helpers give the graphs, decoders and
// kernels they build (nil: defaultTuning); only TestChunked sets it, for
// the duration of its subtests.
var testTune *tuning

// TestChunked reruns the gradient, tree, reuse and decoder tests with every
// loop split into as many chunks as there are workers, so the multi-chunk
// paths (per-chunk partial sums, column splits) are checked on tiny shapes.
func TestChunked(t *testing.T) {
	if parallel.MaxChunks() < 2 {
		t.Skip("needs GOMAXPROCS ≥ 2")
	}
	chunked := defaultTuning
	chunked.grainElems, chunked.colGrainMACs = 1, 1
	if parallel.NumChunks(10, chunked.grainRows(8)) < 2 {
		t.Fatal("loops are not split")
	}
	defer func() { testTune = nil }()
	run := func(name string, tune *tuning, f func(*testing.T)) {
		testTune = tune
		t.Run(name, f)
	}
	for _, c := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"layernorm", TestLayerNormGrad}, {"gelu+linear", TestGELULinearGrad}, {"linear", TestLinearGrad},
		{"embedding", TestEmbeddingGrad}, {"attention", TestAttentionGrad}, {"crossentropy", TestCrossEntropyGrad},
		{"model", TestModelGrad}, {"tree", TestTreeAttentionMatchesPrefix}, {"reuse", TestGraphReuse},
		{"accumulate", TestKernelsAccumulate}, {"decoder", TestDecoderMatchesFullForward},
	} {
		run(c.name, &chunked, c.f)
	}
	// the row/column-split linear backward (instead of dx ∥ dW on two workers)
	noTaskSplit := chunked
	noTaskSplit.taskSplitBackward = false
	run("linear/no-task-split", &noTaskSplit, TestLinearGrad)
	run("model/no-task-split", &noTaskSplit, TestModelGrad)
	run("accumulate/no-task-split", &noTaskSplit, TestKernelsAccumulate)
}

// TestSetTuningReachesKernels: a Graph's and a Decoder's setTuning reach
// every kernel that reads a tuning (else tests passing their own would
// silently run the defaults).
func TestSetTuningReachesKernels(t *testing.T) {
	p := randomParams(t, cfgTest, F32, 7, 0.2)
	g, err := NewGraph(p, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CrossEntropy(g.Logits, []int32{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	tune := defaultTuning
	g.setTuning(&tune)
	kinds := map[string]bool{}
	for _, n := range g.G.AllNodes() {
		op, ok := n.Op().(*fusedOp[float32])
		if !ok {
			continue
		}
		var got *tuning
		switch o := op.k.(type) {
		case *embedOp[float32]:
			got = o.k.tune
		case *layerNormOp[float32]:
			got = o.k.tune
		case *linearOp[float32]:
			got = o.k.tune
		case *geluLinearOp[float32]:
			got = o.lin.tune
			if o.gelu.tune != got {
				t.Errorf("graph op %s: gelu and linear tunings differ", op.k.kind())
			}
		case *crossEntropyOp[float32]:
			got = o.k.tune
		default:
			continue
		}
		kinds[op.k.kind()] = true
		if got != &tune {
			t.Errorf("graph op %s: kernel tuning not set", op.k.kind())
		}
	}
	if len(kinds) < 5 {
		t.Errorf("checked only the op kinds %v", kinds)
	}
	d, err := NewDecoder(p, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	d.setTuning(&tune)
	for i, got := range []*tuning{d.emb.tune, d.ln.tune, d.gelu.tune, d.attn.tune, d.cAttn.tune, d.cProj.tune, d.cFc.tune, d.fProj.tune, d.head.tune} {
		if got != &tune {
			t.Errorf("decoder kernel %d: tuning not set", i)
		}
	}
}

// TestAttentionGradLongRows checks the attention op by finite differences
// on rows longer than a row block (attnBlock), where the forward and
// backward products skip the blocks right of the diagonal.
func TestAttentionGradLongRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	b, tt, h, d := 2, attnBlock+24, 2, 4
	inp, pos, par := make([]int32, b*tt), make([]int32, b*tt), make([]int32, b*tt)
	for r := 0; r < b; r++ {
		tr := randomTree(rng, 30, 60, 0.1, 5, tt)
		if len(tr.inputs) != tt {
			t.Fatalf("tree of %d inputs, want %d", len(tr.inputs), tt)
		}
		copy(inp[r*tt:], tr.inputs)
		copy(pos[r*tt:], tr.positions)
		copy(par[r*tt:], tr.parents)
	}
	long := 0
	for i := tt - 1; i >= 0; i-- {
		if par[i] >= 0 {
			long = i + 1
			break
		}
	}
	if long <= attnBlock+8 {
		t.Fatalf("row 0 has %d inputs, want more than %d", long, attnBlock+8)
	}
	bs := newBatchState(b, tt)
	if err := bs.set(inp, pos, par, 5, 256); err != nil {
		t.Fatal(err)
	}
	checkOp(t, "attention", rng, newAttentionOp[float64](bs, h, d), [][]float64{randSlice(rng, b*tt*3*d, 1)})
}
