package objective

import (
	"math/rand/v2"
	"testing"

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
