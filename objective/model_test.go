package objective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"

	"smtrain/model"
)

// benchStep times one training step (forward + backward of the config-small
// model, without the optimizer, which is the same for every loss) with the
// loss node of the named objective, or the model's own cross-entropy ("ce").
func benchStep(bm *testing.B, name string) {
	b, _ := benchBatch()
	p, err := model.NewParams(model.Small, model.F32, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		bm.Fatal(err)
	}
	g, err := model.NewGraph(p, b.B, b.T)
	if err != nil {
		bm.Fatal(err)
	}
	if err := g.SetBatch(b.Inputs, b.Positions, b.Parents); err != nil {
		bm.Fatal(err)
	}
	var loss *G.Node
	if name == "ce" {
		targets := make([]int32, b.B*b.T)
		for i := range targets {
			targets[i] = -1
		}
		for _, tr := range b.Trans {
			targets[tr.State] = tr.Action // (last one wins at shared states)
		}
		loss, err = model.CrossEntropy(g.Logits, targets)
	} else {
		obj, e := New(name, DefaultConfig())
		if e != nil {
			bm.Fatal(e)
		}
		h := NewHandle(model.Small.BkspcTokenID)
		if err := h.Set(g, b, 0.5); err != nil {
			bm.Fatal(err)
		}
		loss, err = NewLossNode(g.Logits, obj, h)
	}
	if err != nil {
		bm.Fatal(err)
	}
	m, err := g.Compile(loss)
	if err != nil {
		bm.Fatal(err)
	}
	defer m.Close()
	if err := m.Step(); err != nil { // warm-up
		bm.Fatal(err)
	}
	bm.ResetTimer()
	for bm.Loop() {
		if err := m.Step(); err != nil {
			bm.Fatal(err)
		}
	}
}

// BenchmarkStep compares whole training steps (config small, B=16 T=128
// V=1024, ~1,500 transitions) under mle, chi2mix and the model's plain
// cross-entropy. Run interleaved several times: the machine is shared.
func BenchmarkStep(bm *testing.B) {
	for _, name := range []string{"ce", "mle", "chi2mix"} {
		bm.Run(name, func(bm *testing.B) { benchStep(bm, name) })
	}
}

// stepMachine builds a config-small training graph with the named loss.
func stepMachine(t testing.TB, name string) func() error {
	b, _ := benchBatch()
	p, err := model.NewParams(model.Small, model.F32, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	g, err := model.NewGraph(p, b.B, b.T)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := New(name, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(model.Small.BkspcTokenID)
	if err := h.Set(g, b, 0.5); err != nil {
		t.Fatal(err)
	}
	loss, err := NewLossNode(g.Logits, obj, h)
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Compile(loss)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m.Step
}

// TestStepRatio measures chi2mix vs mle whole training steps (config small)
// interleaved, which is robust to the load drift of a shared machine. It is
// slow: run with SMTRAIN_STEP_RATIO=1 (and -tags openblas).
func TestStepRatio(t *testing.T) {
	if testing.Short() || os.Getenv("SMTRAIN_STEP_RATIO") == "" {
		t.Skip("set SMTRAIN_STEP_RATIO=1 to measure the step-time ratio")
	}
	rounds := 8
	if s := os.Getenv("SMTRAIN_STEP_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	steps := map[string]func() error{"mle": stepMachine(t, "mle"), "chi2mix": stepMachine(t, "chi2mix")}
	times := map[string][]float64{}
	for r := -1; r < rounds; r++ {
		order := []string{"mle", "chi2mix"}
		if r%2 != 0 { // alternate who goes first
			order[0], order[1] = order[1], order[0]
		}
		for _, name := range order {
			start, cpu0 := time.Now(), cpuTime()
			if err := steps[name](); err != nil {
				t.Fatal(err)
			}
			if r >= 0 { // round -1 warms up
				times[name] = append(times[name], time.Since(start).Seconds())
				times[name+"cpu"] = append(times[name+"cpu"], (cpuTime() - cpu0).Seconds())
			}
		}
	}
	med := func(x []float64) float64 { s := slices.Clone(x); slices.Sort(s); return s[len(s)/2] }
	mle, chi := times["mle"], times["chi2mix"]
	t.Logf("mle step: median %.3fs min %.3fs; chi2mix step: median %.3fs min %.3fs (%d rounds, %s)",
		med(mle), slices.Min(mle), med(chi), slices.Min(chi), rounds, model.BLASName())
	t.Logf("ratio chi2mix/mle: median %.3f, min %.3f (target ≤ 1.15)", med(chi)/med(mle), slices.Min(chi)/slices.Min(mle))
	mc, cc := times["mlecpu"], times["chi2mixcpu"]
	t.Logf("process CPU time per step: mle median %.3fs, chi2mix median %.3fs, ratio %.3f", med(mc), med(cc), med(cc)/med(mc))
}

// TestWithModelGraph: the loss node inside the real model graph (config
// tiny, float64): its loss equals the plain function on the graph's logits,
// and parameter gradients match central finite differences through the
// whole model.
func TestWithModelGraph(t *testing.T) {
	const B, T = 2, 12
	rng := rand.New(rand.NewPCG(8, 8))
	p, err := model.NewParams(model.Tiny, model.F64, rng)
	if err != nil {
		t.Fatal(err)
	}
	V := model.Tiny.VocabSize
	b := randomBatch(rng, B, T, V)
	g, err := model.NewGraph(p, B, T)
	if err != nil {
		t.Fatal(err)
	}
	obj := mustNew(t, "chi2mix", DefaultConfig())
	h := NewHandle(model.Tiny.BkspcTokenID)
	if err := h.Set(g, b, 0.5); err != nil {
		t.Fatal(err)
	}
	loss, err := NewLossNode(g.Logits, obj, h)
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Compile(loss)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Step(); err != nil {
		t.Fatal(err)
	}
	// The loss node leaves dLoss/dlogits in the graph's logits buffer: the
	// logits come from a separate forward-only graph.
	want, _ := evalLoss(t, obj, forwardLogits(t, p, b), V, b, 0.5)
	if m.Loss() != want.Loss {
		t.Errorf("graph loss %v, plain function on its logits %v", m.Loss(), want.Loss)
	}
	grads := copyGrads(p, m)
	const hstep = 1e-5
	checked := 0
	for pi, q := range p.List {
		for k := 0; k < 3; k++ {
			j := rng.IntN(len(q.F64))
			if grads[pi][j] == 0 && k > 0 {
				continue
			}
			x := q.F64[j]
			q.F64[j] = x + hstep
			if err := m.Step(); err != nil {
				t.Fatal(err)
			}
			lp := m.Loss()
			q.F64[j] = x - hstep
			if err := m.Step(); err != nil {
				t.Fatal(err)
			}
			lm := m.Loss()
			q.F64[j] = x
			num := (lp - lm) / (2 * hstep)
			if math.Abs(num-grads[pi][j]) > 1e-6*math.Max(1, math.Abs(num)) {
				t.Errorf("%s[%d]: graph gradient %v, finite difference %v", q.Name, j, grads[pi][j], num)
			}
			checked++
		}
	}
	t.Logf("checked %d parameter entries through the model graph", checked)
}
