package model

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
)

// tree is one row compiled as in DESIGN 3.1.
type tree struct {
	inputs, positions, parents []int32
	n, backspaces              int
}

// randomTree compiles a random action sequence with backspaces into a row
// of T inputs (stack of input indices; position = stack depth; parent =
// top of stack); the rest of the row is padding (token 0, position 0,
// parent -1).
func randomTree(rng *rand.Rand, prompt, actions int, pBk float64, vocab, T int) tree {
	tr := tree{inputs: make([]int32, T), positions: make([]int32, T), parents: make([]int32, T)}
	var stack []int
	add := func() {
		if tr.n >= T {
			return
		}
		i := tr.n
		tr.inputs[i] = int32(rng.IntN(vocab))
		tr.positions[i] = int32(len(stack))
		tr.parents[i] = -1
		if len(stack) > 0 {
			tr.parents[i] = int32(stack[len(stack)-1])
		}
		stack = append(stack, i)
		tr.n++
	}
	for i := 0; i < prompt; i++ {
		add()
	}
	for a := 0; a < actions && tr.n < T; a++ {
		if len(stack) > prompt && rng.Float64() < pBk {
			stack = stack[:len(stack)-1]
			tr.backspaces++
		} else {
			add()
		}
	}
	for i := tr.n; i < T; i++ {
		tr.parents[i] = -1
	}
	return tr
}

// path returns the ancestor path (root first) of input i.
func (tr tree) path(i int) []int {
	var p []int
	for j := i; j >= 0; j = int(tr.parents[j]) {
		p = append([]int{j}, p...)
	}
	return p
}

var cfgTest = Config{NLayer: 2, NHead: 2, NEmbd: 8, NPositions: 24, VocabSize: 13, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}

// randomParams draws every parameter from N(mean, std) with LN gains
// around 1, so gradients are far from GPT-2 init's near-linear regime.
func randomParams(t testing.TB, cfg Config, dt DType, seed uint64, std float64) *Params {
	t.Helper()
	p, err := ZeroParams(cfg, dt)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, q := range p.List {
		mean := 0.0
		if hasSuffix(q.Name, "ln_1.weight") || hasSuffix(q.Name, "ln_2.weight") || q.Name == "ln_f.weight" {
			mean = 1
		}
		for i := 0; i < q.Size(); i++ {
			v := mean + std*rng.NormFloat64()
			if q.F32 != nil {
				q.F32[i] = float32(v)
			} else {
				q.F64[i] = v
			}
		}
	}
	return p
}

type batch struct{ inputs, positions, parents, targets []int32 }

// randomBatch builds B tree rows (some padded) and next-token-like targets
// (-1 on padding and on a few random inputs).
func randomBatch(rng *rand.Rand, cfg Config, B, T int) (batch, []tree) {
	var bt batch
	var trees []tree
	for r := 0; r < B; r++ {
		tr := randomTree(rng, 2, T+4, 0.3, cfg.VocabSize, T)
		if r == B-1 && B > 1 {
			tr = randomTree(rng, 1, T/2, 0.3, cfg.VocabSize, T) // likely padded
		}
		trees = append(trees, tr)
		bt.inputs = append(bt.inputs, tr.inputs...)
		bt.positions = append(bt.positions, tr.positions...)
		bt.parents = append(bt.parents, tr.parents...)
		for i := 0; i < T; i++ {
			tg := int32(rng.IntN(cfg.VocabSize))
			if i >= tr.n || rng.Float64() < 0.15 {
				tg = -1
			}
			bt.targets = append(bt.targets, tg)
		}
	}
	return bt, trees
}

type trainer struct {
	g    *Graph
	m    *Machine
	loss *G.Node
}

// newTrainer compiles a training graph of p with a CrossEntropy loss on
// bt (in place of the logits) and sets bt as its batch.
func newTrainer(t testing.TB, p *Params, B, T int, bt batch) *trainer {
	t.Helper()
	return newCERun(t, p, B, T, bt, true)
}

func (tr *trainer) step(t testing.TB) float64 {
	t.Helper()
	if err := tr.m.Step(); err != nil {
		t.Fatal(err)
	}
	return tr.m.Loss()
}

// TestModelGrad checks the whole model's loss gradient with respect to
// every parameter tensor (sampled entries) against central differences.
func TestModelGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	B, T := 2, 7
	p := randomParams(t, cfgTest, F64, 1, 0.3)
	bt, _ := randomBatch(rng, cfgTest, B, T)
	tr := newTrainer(t, p, B, T, bt)
	xs := make([][]float64, len(p.List))
	for i, q := range p.List {
		xs[i] = q.F64
	}
	per := 10
	if testing.Short() {
		per = 5
	}
	fdCheck(t, "model loss", rng, xs, tr.m.Grads64, func() float64 { return tr.step(t) }, per)
}

// TestFloat32MatchesFloat64 compares the float32 and float64 forward and
// backward on the same parameters.
func TestFloat32MatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	B, T := 3, 10
	p64 := randomParams(t, cfgTest, F64, 2, 0.2)
	p32, err := p64.Convert(F32)
	if err != nil {
		t.Fatal(err)
	}
	bt, _ := randomBatch(rng, cfgTest, B, T)
	a, b := newTrainer(t, p64, B, T, bt), newTrainer(t, p32, B, T, bt)
	l64, l32 := a.step(t), b.step(t)
	if e := math.Abs(l64 - l32); e > 1e-5*math.Max(1, math.Abs(l64)) {
		t.Errorf("loss float64 %.9g float32 %.9g", l64, l32)
	}
	// The training graphs' loss works in place of their logits (which then
	// hold the loss gradient): compare those, and the logits of
	// forward-only graphs.
	maxd := 0.0
	for i, v := range a.g.Logits64() {
		maxd = math.Max(maxd, math.Abs(v-float64(b.g.Logits32()[i])))
	}
	if maxd > 1e-6 {
		t.Errorf("logits gradient max diff %.3g", maxd)
	}
	maxd = 0
	f64 := forwardLogits(t, p64, B, T, bt.inputs, bt.positions, bt.parents)
	f32 := forwardLogits(t, p32, B, T, bt.inputs, bt.positions, bt.parents)
	for i, v := range f64 {
		maxd = math.Max(maxd, math.Abs(v-f32[i]))
	}
	if maxd > 1e-4 {
		t.Errorf("logits max diff %.3g", maxd)
	}
	g64, g32 := a.m.Grads64(), b.m.Grads()
	maxg := 0.0
	for i := range g64 {
		scale := 1e-3
		for _, v := range g64[i] {
			scale = math.Max(scale, math.Abs(v))
		}
		for j, v := range g64[i] {
			maxg = math.Max(maxg, math.Abs(v-float64(g32[i][j]))/scale)
		}
	}
	if maxg > 1e-3 {
		t.Errorf("gradients max rel diff %.3g", maxg)
	}
	t.Logf("float32 vs float64: loss diff %.3g, logits max diff %.3g, grads max rel diff %.3g", math.Abs(l64-l32), maxd, maxg)
}

// prefixLogits runs the model on one ancestor path as a plain causal row
// and returns the logits of its last input.
type prefixRunner struct {
	p      *Params
	graphs map[int]*Graph
	ms     map[int]*Machine
}

func (pr *prefixRunner) logits(t testing.TB, toks []int32) []float64 {
	t.Helper()
	n := len(toks)
	if pr.graphs == nil {
		pr.graphs, pr.ms = map[int]*Graph{}, map[int]*Machine{}
	}
	g, ok := pr.graphs[n]
	if !ok {
		var err error
		if g, err = NewGraph(pr.p, 1, n); err != nil {
			t.Fatal(err)
		}
		g.setTuning(testTune)
		m, err := g.CompileForward()
		if err != nil {
			t.Fatal(err)
		}
		pr.graphs[n], pr.ms[n] = g, m
	}
	pos, par := make([]int32, n), make([]int32, n)
	for i := range pos {
		pos[i], par[i] = int32(i), int32(i-1)
	}
	if err := g.SetBatch(toks, pos, par); err != nil {
		t.Fatal(err)
	}
	if err := pr.ms[n].Step(); err != nil {
		t.Fatal(err)
	}
	V := pr.p.Cfg.VocabSize
	if pr.p.DType == F32 {
		out := make([]float64, V)
		for j, v := range g.Logits32()[(n-1)*V : n*V] {
			out[j] = float64(v)
		}
		return out
	}
	return g.Logits64()[(n-1)*V : n*V]
}

// TestTreeAttentionMatchesPrefix is the DESIGN 3.1 contract: the logits at
// every input index equal the logits of running the model on that index's
// prefix (its ancestor path) alone; padding stays finite.
func TestTreeAttentionMatchesPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	B, T := 4, 16
	p := randomParams(t, cfgTest, F64, 3, 0.3)
	g, err := NewGraph(p, B, T)
	if err != nil {
		t.Fatal(err)
	}
	g.setTuning(testTune)
	m, err := g.CompileForward()
	if err != nil {
		t.Fatal(err)
	}
	pr := &prefixRunner{p: p}
	V := cfgTest.VocabSize
	for trial := 0; trial < 2; trial++ {
		bt, trees := randomBatch(rng, cfgTest, B, T)
		bks, pads := 0, 0
		for _, tr := range trees {
			bks += tr.backspaces
			pads += T - tr.n
		}
		if bks < 3 || pads == 0 {
			t.Fatalf("weak test data: %d backspaces, %d padding inputs", bks, pads)
		}
		if err := g.SetBatch(bt.inputs, bt.positions, bt.parents); err != nil {
			t.Fatal(err)
		}
		if err := m.Step(); err != nil {
			t.Fatal(err)
		}
		all := g.Logits64()
		worst := 0.0
		for b, tr := range trees {
			for i := 0; i < T; i++ {
				got := all[(b*T+i)*V : (b*T+i+1)*V]
				if i >= tr.n {
					for _, v := range got {
						if math.IsNaN(v) || math.IsInf(v, 0) {
							t.Fatalf("row %d padding index %d: non-finite logits", b, i)
						}
					}
					continue
				}
				path := tr.path(i)
				toks := make([]int32, len(path))
				for k, j := range path {
					toks[k] = tr.inputs[j]
					if tr.positions[j] != int32(k) {
						t.Fatalf("tree compiler: position %d at depth %d", tr.positions[j], k)
					}
				}
				want := pr.logits(t, toks)
				for j := range want {
					worst = math.Max(worst, math.Abs(got[j]-want[j]))
				}
			}
		}
		if worst > 1e-9 {
			t.Errorf("trial %d: tree logits differ from prefix logits by %.3g", trial, worst)
		}
		t.Logf("trial %d: %d backspaces, %d padding inputs, max |tree − prefix| = %.3g", trial, bks, pads, worst)
	}
}

// TestPaddingHasNoEffect changes the tokens and positions of padding
// inputs: the loss and every gradient must stay exactly the same.
func TestPaddingHasNoEffect(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	B, T := 3, 12
	p := randomParams(t, cfgTest, F64, 4, 0.3)
	bt, trees := randomBatch(rng, cfgTest, B, T)
	a := newTrainer(t, p, B, T, bt)
	la := a.step(t)
	ga := cloneGrads(a.m.Grads64())
	changed := 0
	for b, tr := range trees {
		for i := tr.n; i < T; i++ {
			bt.inputs[b*T+i] = int32(rng.IntN(cfgTest.VocabSize))
			bt.positions[b*T+i] = int32(rng.IntN(cfgTest.NPositions))
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("no padding in the batch")
	}
	if err := a.g.SetBatch(bt.inputs, bt.positions, bt.parents); err != nil {
		t.Fatal(err)
	}
	lb := a.step(t)
	if la != lb {
		t.Errorf("loss changed with padding content: %v vs %v", la, lb)
	}
	for i, g := range a.m.Grads64() {
		for j := range g {
			if g[j] != ga[i][j] {
				t.Fatalf("gradient of %s[%d] changed with padding content", p.List[i].Name, j)
			}
		}
	}
}

func cloneGrads[T Float](g [][]T) [][]T {
	c := make([][]T, len(g))
	for i := range g {
		c[i] = append([]T(nil), g[i]...)
	}
	return c
}

// TestGraphReuse: two Steps with different batches on one graph give the
// same results as fresh graphs; parameter updates made in place are seen.
func TestGraphReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	B, T := 2, 9
	p := randomParams(t, cfgTest, F32, 5, 0.2)
	b1, _ := randomBatch(rng, cfgTest, B, T)
	b2, _ := randomBatch(rng, cfgTest, B, T)
	a := newTrainer(t, p, B, T, b1)
	l1 := a.step(t)
	g1 := cloneGrads(a.m.Grads())
	if err := a.g.SetBatch(b2.inputs, b2.positions, b2.parents); err != nil {
		t.Fatal(err)
	}
	if err := SetCrossEntropyTargets(a.loss, b2.targets); err != nil {
		t.Fatal(err)
	}
	l2 := a.step(t)
	g2 := cloneGrads(a.m.Grads())
	f1 := newTrainer(t, p, B, T, b1)
	f2 := newTrainer(t, p, B, T, b2)
	if l := f1.step(t); l != l1 {
		t.Errorf("batch 1: loss %v, fresh graph %v", l1, l)
	}
	// Graphs of one Params share its gradient buffers: read f1's before
	// f2 steps.
	fg1 := cloneGrads(f1.m.Grads())
	if l := f2.step(t); l != l2 {
		t.Errorf("batch 2: loss %v, fresh graph %v", l2, l)
	}
	if &f1.m.Grads()[0][0] != &f2.m.Grads()[0][0] {
		t.Error("two graphs of one Params keep separate gradient buffers")
	}
	if l1 == l2 {
		t.Error("different batches gave the same loss")
	}
	for i := range g1 {
		for j := range g1[i] {
			if g1[i][j] != fg1[i][j] || g2[i][j] != f2.m.Grads()[i][j] {
				t.Fatalf("%s[%d]: gradients differ from a fresh graph", p.List[i].Name, j)
			}
		}
	}
	// An in-place parameter update is seen by the next step.
	p.Get("ln_f.bias").F32[0] += 0.5
	if l := a.step(t); l == l2 {
		t.Error("in-place parameter update not seen by the graph")
	}
}

func TestSetBatchErrors(t *testing.T) {
	p := randomParams(t, cfgTest, F32, 6, 0.1)
	g, err := NewGraph(p, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	ok := []int32{0, 1, 2, 3}
	par := []int32{-1, 0, 1, 1}
	cases := []struct {
		name              string
		inp, pos, parents []int32
	}{
		{"short", ok[:3], ok[:3], par[:3]},
		{"token", []int32{0, 13, 1, 1}, ok, par},
		{"negative token", []int32{0, -1, 1, 1}, ok, par},
		{"position", ok, []int32{0, 1, 24, 3}, par},
		{"parent self", ok, ok, []int32{-1, 1, 1, 1}},
		{"parent later", ok, ok, []int32{-1, 2, 1, 1}},
		{"parent < -1", ok, ok, []int32{-2, 0, 1, 1}},
	}
	for _, c := range cases {
		if err := g.SetBatch(c.inp, c.pos, c.parents); err == nil {
			t.Errorf("%s: bad batch accepted", c.name)
		}
	}
	if err := g.SetBatch(ok, ok, par); err != nil {
		t.Errorf("good batch rejected: %v", err)
	}
}

// TestOpsDoNotAllocate runs every fused, backward and reader op of a
// compiled float32 graph again on its last inputs and counts allocations.
func TestOpsDoNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	B, T := 2, 8
	p := randomParams(t, cfgTest, F32, 7, 0.1)
	bt, _ := randomBatch(rng, cfgTest, B, T)
	a := newTrainer(t, p, B, T, bt)
	a.step(t)
	checked := 0
	for _, n := range a.g.G.AllNodes() {
		switch n.Op().(type) {
		case *fusedOp[float32], *bwdOp[float32], *readOp[float32]:
		default:
			continue
		}
		var vals []G.Value
		it := a.g.G.From(n.ID())
		for it.Next() {
			vals = append(vals, it.Node().(*G.Node).Value())
		}
		op := n.Op()
		allocs := testing.AllocsPerRun(5, func() {
			if _, err := op.Do(vals...); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v: %v allocations per call", op, allocs)
		}
		checked++
	}
	if checked < 20 {
		t.Errorf("only %d ops found", checked)
	}
}

func TestNewParams(t *testing.T) {
	p, err := NewParams(Small, F32, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	D, V, P, L := Small.NEmbd, Small.VocabSize, Small.NPositions, Small.NLayer
	want := V*D + P*D + L*(12*D*D+13*D) + 2*D
	if p.NumParams() != want {
		t.Errorf("NumParams %d, want %d", p.NumParams(), want)
	}
	std := func(s []float32) float64 {
		var a, b float64
		for _, v := range s {
			a += float64(v)
			b += float64(v) * float64(v)
		}
		n := float64(len(s))
		return math.Sqrt(b/n - (a/n)*(a/n))
	}
	if s := std(p.Get("wte.weight").F32); math.Abs(s-0.02) > 0.001 {
		t.Errorf("wte std %v", s)
	}
	if s, w := std(p.Get("h.1.mlp.c_proj.weight").F32), 0.02/math.Sqrt(8); math.Abs(s-w) > 0.0005 {
		t.Errorf("c_proj std %v, want %v", s, w)
	}
	if p.Get("h.0.ln_1.weight").F32[3] != 1 || p.Get("h.0.attn.c_attn.bias").F32[5] != 0 {
		t.Error("layer norm gain / bias init wrong")
	}
	if s := p.Get("h.2.attn.c_attn.weight").Shape; s[0] != D || s[1] != 3*D {
		t.Errorf("c_attn shape %v", s)
	}
	if p.Get("nope") != nil {
		t.Error("Get of unknown name")
	}
}

// TestLargerConfig reruns the model-level tests on a deeper, wider config
// (3 layers, 4 heads, D=32, V=50).
func TestLargerConfig(t *testing.T) {
	old := cfgTest
	cfgTest = Config{NLayer: 3, NHead: 4, NEmbd: 32, NPositions: 64, VocabSize: 50, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
	defer func() { cfgTest = old }()
	t.Run("grad", TestModelGrad)
	t.Run("float32", TestFloat32MatchesFloat64)
	t.Run("tree", TestTreeAttentionMatchesPrefix)
	t.Run("padding", TestPaddingHasNoEffect)
	t.Run("reuse", TestGraphReuse)
	t.Run("decoder", TestDecoderMatchesFullForward)
}

// TestForwardGraphAllocatesNoGradients: a forward-only graph (evaluation,
// noise) never allocates input-gradient buffers; a training graph of the
// same Params at another batch shape writes the Params' shared ones.
func TestForwardGraphAllocatesNoGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	p := randomParams(t, cfgTest, F32, 6, 0.2)
	bt, _ := randomBatch(rng, cfgTest, 2, 8)
	g := runForward(t, p, 2, 8, bt.inputs, bt.positions, bt.parents)
	ops := 0
	for _, n := range g.G.AllNodes() {
		if op, ok := n.Op().(*fusedOp[float32]); ok {
			ops++
			for i, d := range op.din {
				if d != nil {
					t.Errorf("%v: input %d has a gradient buffer in a forward-only graph", op, i)
				}
			}
		}
	}
	if ops < 5 {
		t.Fatalf("only %d fused ops found", ops)
	}
	a := newTrainer(t, p, 3, 5, func() batch { b, _ := randomBatch(rng, cfgTest, 3, 5); return b }())
	a.step(t)
	if &a.m.Grads()[0][0] != &paramGrad[float32](p, 0)[0] {
		t.Error("a training graph's gradients are not the Params' store")
	}
}
