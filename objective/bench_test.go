package objective

import (
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"smtrain/data"
)

// benchBatch is config-small sized: B=16 sequences of T=128 inputs, V=1024,
// with a 30-token prompt and ~95 agent actions (5% noise+<bkspc>) per
// sequence: about 1,500 transitions.
func benchBatch() (*data.Batch, []float32) {
	const B, T, V = 16, 128, 1024
	rng := rand.New(rand.NewPCG(1, 2))
	bl := newBuilder(B, T)
	for s := 0; s < B; s++ {
		set := data.SetD
		if s%2 == 1 {
			set = data.SetG
		}
		prompt := make([]int32, 30)
		for i := range prompt {
			prompt[i] = int32(tFirst + rng.IntN(V-tFirst))
		}
		bl.start(set, prompt...)
		for k := 0; k < 90; k++ {
			if rng.IntN(20) == 0 {
				bl.act(int32(tFirst + rng.IntN(V-tFirst)))
				bl.act(tBk)
			}
			bl.act(int32(tFirst + rng.IntN(V-tFirst)))
		}
		bl.finish(tEOS)
	}
	b := bl.batch()
	L := make([]float32, B*T*V)
	for i := range L {
		L[i] = float32(2 * rng.NormFloat64())
	}
	return b, L
}

func benchLoss(bm *testing.B, name string) {
	b, L := benchBatch()
	obj, err := New(name, DefaultConfig())
	if err != nil {
		bm.Fatal(err)
	}
	g := make([]float32, len(L))
	p := Params{BkspcID: tBk, Lambda: 0.5, Work: new(Workspace)}
	bm.ReportMetric(float64(len(b.Trans)), "transitions")
	bm.ResetTimer()
	for bm.Loop() {
		if _, err := obj.Loss32(L, 1024, b, p, g); err != nil {
			bm.Fatal(err)
		}
	}
}

// BenchmarkLoss compares the loss+gradient of MLE and chi2mix on
// (16*128, 1024) float32 logits.
func BenchmarkLoss(bm *testing.B) {
	for _, name := range []string{"mle", "chi2mix", "kl"} {
		bm.Run(name, func(bm *testing.B) { benchLoss(bm, name) })
	}
}

// TestLossRatio times the loss+gradient of mle and chi2mix interleaved
// (robust to load drift on a shared machine) and logs min and median.
// Run with SMTRAIN_STEP_RATIO=1.
func TestLossRatio(t *testing.T) {
	if testing.Short() || os.Getenv("SMTRAIN_STEP_RATIO") == "" {
		t.Skip("set SMTRAIN_STEP_RATIO=1 to measure the loss-time ratio")
	}
	b, L := benchBatch()
	g := make([]float32, len(L))
	p := Params{BkspcID: tBk, Lambda: 0.5, Work: new(Workspace)}
	objs := map[string]Objective{}
	times := map[string][]float64{}
	for _, n := range []string{"mle", "chi2mix"} {
		objs[n] = mustNew(t, n, DefaultConfig())
	}
	for r := -2; r < 60; r++ {
		order := []string{"mle", "chi2mix"}
		if r%2 != 0 {
			order[0], order[1] = order[1], order[0]
		}
		for _, n := range order {
			start, cpu0 := time.Now(), cpuTime()
			if _, err := objs[n].Loss32(L, 1024, b, p, g); err != nil {
				t.Fatal(err)
			}
			if r >= 0 {
				times[n] = append(times[n], time.Since(start).Seconds()*1e3)
				times[n+"cpu"] = append(times[n+"cpu"], (cpuTime()-cpu0).Seconds()*1e3)
			}
		}
	}
	med := func(x []float64) float64 { s := slices.Clone(x); slices.Sort(s); return s[len(s)/2] }
	m, c := times["mle"], times["chi2mix"]
	t.Logf("loss+grad (16*128, 1024) float32, %d transitions: mle min %.2f ms median %.2f ms; chi2mix min %.2f ms median %.2f ms; ratio min %.3f median %.3f",
		len(b.Trans), slices.Min(m), med(m), slices.Min(c), med(c), slices.Min(c)/slices.Min(m), med(c)/med(m))
	mc, cc := times["mlecpu"], times["chi2mixcpu"]
	t.Logf("process CPU time per call: mle median %.2f ms, chi2mix median %.2f ms, ratio %.3f", med(mc), med(cc), med(cc)/med(mc))
}
