package objective

import (
	"fmt"
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
		h.Set(b, 0.5)
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
	if err := g.SetBatch(b.Inputs, b.Positions, b.Parents); err != nil {
		t.Fatal(err)
	}
	obj, err := New(name, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(model.Small.BkspcTokenID)
	h.Set(b, 0.5)
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
			start := time.Now()
			if err := steps[name](); err != nil {
				t.Fatal(err)
			}
			if r >= 0 { // round -1 warms up
				times[name] = append(times[name], time.Since(start).Seconds())
			}
		}
	}
	med := func(x []float64) float64 { s := slices.Clone(x); slices.Sort(s); return s[len(s)/2] }
	mle, chi := times["mle"], times["chi2mix"]
	t.Logf("mle step: median %.3fs min %.3fs; chi2mix step: median %.3fs min %.3fs (%d rounds, %s)",
		med(mle), slices.Min(mle), med(chi), slices.Min(chi), rounds, model.BLASName())
	t.Logf("ratio chi2mix/mle: median %.3f, min %.3f (target ≤ 1.15)", med(chi)/med(mle), slices.Min(chi)/slices.Min(mle))
}
