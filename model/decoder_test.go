package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDecoderMatchesFullForward drives a decoder through random prefills,
// batched pushes and pops across slots and compares the logits at the top
// of every slot with a full forward of its current prefix.
func TestDecoderMatchesFullForward(t *testing.T) { decoderMatchesFullForward(t, 3, testTune) }

// TestDecoderBatchSizes reruns it at batch 1 and 8 on a config whose
// heads are 32 wide (the decoder's vector attention kernels and the
// batched 4-row linear kernel run), at batch 8 on cfgTest, and at batch 1
// with three heads.
func TestDecoderBatchSizes(t *testing.T) {
	for _, nseq := range []int{1, 8} {
		t.Run(fmt.Sprintf("cfgTest/nseq=%d", nseq), func(t *testing.T) { decoderMatchesFullForward(t, nseq, nil) })
	}
	old := cfgTest
	cfgTest = Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 24, VocabSize: 50, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
	defer func() { cfgTest = old }()
	for _, nseq := range []int{1, 8} {
		t.Run(fmt.Sprintf("hs32/nseq=%d", nseq), func(t *testing.T) { decoderMatchesFullForward(t, nseq, nil) })
	}
	// three heads and an odd vocabulary
	cfgTest = Config{NLayer: 2, NHead: 3, NEmbd: 24, NPositions: 24, VocabSize: 51, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
	t.Run("H3/nseq=1", func(t *testing.T) { decoderMatchesFullForward(t, 1, nil) })
}

// decoderMatchesFullForward runs it with nseq slots, the decoder's
// kernels tuned by tune (nil: defaults).
func decoderMatchesFullForward(t *testing.T, nseq int, tune *tuning) {
	decoderMatchesFullForwardIn(t, nseq, tune, WeightsF32)
}

// decoderMatchesFullForwardIn runs it with the decoder's products in
// weight format weights. For WeightsF16 the parameters' matrices are
// rounded to half precision first, so that the full forward sees the
// decoder's weights: only the float32 arithmetic differs.
func decoderMatchesFullForwardIn(t *testing.T, nseq int, tune *tuning, weights string) {
	rng := rand.New(rand.NewPCG(41, 42))
	p := randomParams(t, cfgTest, F32, 8, 0.3)
	if weights == WeightsF16 {
		roundMatricesToHalf(p)
	}
	const maxLen = 14
	w, err := NewDecoderWeights(p, weights)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoderWith(w, nseq, maxLen)
	if err != nil {
		t.Fatal(err)
	}
	d.setTuning(tune)
	pr := &prefixRunner{p: p}
	stacks := make([][]int32, nseq)
	V := cfgTest.VocabSize
	worst := 0.0
	check := func(step int) {
		for s := 0; s < nseq; s++ {
			if d.Len(s) != len(stacks[s]) {
				t.Fatalf("step %d slot %d: Len %d, want %d", step, s, d.Len(s), len(stacks[s]))
			}
			got := d.Logits(s)
			if len(stacks[s]) == 0 {
				if got != nil {
					t.Fatalf("step %d: empty slot %d has logits", step, s)
				}
				continue
			}
			if len(got) != V {
				t.Fatalf("step %d slot %d: %d logits", step, s, len(got))
			}
			want := pr.logits(t, stacks[s])
			for j := range want {
				worst = math.Max(worst, math.Abs(float64(got[j])-want[j]))
			}
		}
	}
	pushes, pops, batched := 0, 0, 0
	steps := 200
	for step := 0; step < steps; step++ {
		switch r := rng.Float64(); {
		case r < 0.08 || step < nseq: // prefill (also empty prompts)
			s := rng.IntN(nseq)
			if step < nseq {
				s = step
			}
			n := rng.IntN(5)
			toks := make([]int32, n)
			for i := range toks {
				toks[i] = int32(rng.IntN(V))
			}
			if err := d.Prefill(s, toks); err != nil {
				t.Fatal(err)
			}
			stacks[s] = toks
		case r < 0.35: // pop
			s := rng.IntN(nseq)
			err := d.Pop(s)
			if len(stacks[s]) == 0 {
				if err == nil {
					t.Fatal("pop of empty slot accepted")
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			stacks[s] = stacks[s][:len(stacks[s])-1]
			pops++
		default: // batched push over a random subset of non-full slots
			var seqs []int
			var toks []int32
			for s := 0; s < nseq; s++ {
				if len(stacks[s]) < maxLen && rng.Float64() < 0.6 {
					seqs = append(seqs, s)
					toks = append(toks, int32(rng.IntN(V)))
				}
			}
			if len(seqs) == 0 {
				continue
			}
			if err := d.Push(seqs, toks); err != nil {
				t.Fatal(err)
			}
			for i, s := range seqs {
				stacks[s] = append(stacks[s], toks[i])
			}
			pushes++
			if len(seqs) > 1 {
				batched++
			}
		}
		check(step)
	}
	if pops < 10 || (nseq > 1 && batched < 10) {
		t.Fatalf("weak test: %d pops, %d batched pushes", pops, batched)
	}
	if worst > 1e-4 {
		t.Errorf("decoder logits differ from the full forward by %.3g", worst)
	}
	t.Logf("%d pushes (%d batched), %d pops: max |decoder − full forward| = %.3g", pushes, batched, pops, worst)
}

func TestDecoderErrors(t *testing.T) {
	p := randomParams(t, cfgTest, F32, 9, 0.1)
	d, err := NewDecoder(p, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Pop(0); err == nil {
		t.Error("pop of empty slot accepted")
	}
	if err := d.Prefill(0, []int32{1, 2, 3, 4}); err == nil {
		t.Error("prompt longer than the capacity accepted")
	}
	if err := d.Prefill(0, []int32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := d.Push([]int{0}, []int32{1}); err == nil {
		t.Error("push past maxLen accepted")
	}
	if err := d.Push([]int{1, 1}, []int32{1, 2}); err == nil {
		t.Error("same slot twice accepted")
	}
	if err := d.Push([]int{1}, []int32{13}); err == nil {
		t.Error("token outside the vocabulary accepted")
	}
	if err := d.Push([]int{2}, []int32{1}); err == nil {
		t.Error("slot outside range accepted")
	}
	if err := d.Push([]int{1}, []int32{1, 2}); err == nil {
		t.Error("length mismatch accepted")
	}
	d.Reset(0)
	if d.Len(0) != 0 || d.Logits(0) != nil {
		t.Error("Reset did not empty the slot")
	}
	// capacity is capped at n_positions
	d2, err := NewDecoder(p, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Cap() != cfgTest.NPositions {
		t.Errorf("capacity %d, want n_positions %d", d2.Cap(), cfgTest.NPositions)
	}
	for i := 0; i < cfgTest.NPositions; i++ {
		if err := d2.Push([]int{0}, []int32{1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d2.Push([]int{0}, []int32{1}); err == nil {
		t.Error("push past n_positions accepted")
	}
	p64 := randomParams(t, cfgTest, F64, 9, 0.1)
	if _, err := NewDecoder(p64, 1, 4); err == nil {
		t.Error("float64 params accepted")
	}
}

// TestDecoderSeesNewParamsAfterPrefill: after the parameters change, a
// Prefill (or Reset) makes the next steps use them (no step keeps a copy
// of any weight): logits equal a new decoder's, bit for bit.
func TestDecoderSeesNewParamsAfterPrefill(t *testing.T) {
	cfg := Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 40, VocabSize: 70, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
	p, err := NewParams(cfg, F32, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(p, 1, cfg.NPositions)
	if err != nil {
		t.Fatal(err)
	}
	steps := func(d *Decoder) []float32 {
		if err := d.Prefill(0, []int32{3, 4, 5}); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []int32{6, 7, 8} {
			if err := d.Push([]int{0}, []int32{tok}); err != nil {
				t.Fatal(err)
			}
		}
		return append([]float32(nil), d.Logits(0)...)
	}
	before := steps(d)
	for _, q := range p.List { // new weights, c_attn's among them
		for j := range q.F32 {
			q.F32[j] *= 1.5
		}
	}
	after := steps(d)
	d2, err := NewDecoder(p, 1, cfg.NPositions)
	if err != nil {
		t.Fatal(err)
	}
	if fresh := steps(d2); fmt.Sprint(after) != fmt.Sprint(fresh) || fmt.Sprint(after) == fmt.Sprint(before) {
		t.Fatal("after a Prefill the decoder does not give a new decoder's logits for the changed parameters")
	}
}

// TestDecoderUsesDecodeTuning: a new decoder's kernels dispatch with
// decodeTuning (small column-split products stay on the caller's core),
// not the training default.
func TestDecoderUsesDecodeTuning(t *testing.T) {
	p := randomParams(t, cfgTest, F32, 7, 0.2)
	d, err := NewDecoder(p, 2, 16)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*tuning{"emb": d.emb.tune, "ln": d.ln.tune, "gelu": d.gelu.tune, "attn": d.attn.tune,
		"c_attn": d.cAttn.tune, "c_proj": d.cProj.tune, "c_fc": d.cFc.tune, "mlp c_proj": d.fProj.tune, "head": d.head.tune,
		"f16 products": d.hl.tune} {
		if got != &decodeTuning {
			t.Errorf("%s: tuning %p, want decodeTuning", name, got)
		}
	}
	if decodeTuning.colGrainMACs <= defaultTuning.colGrainMACs {
		t.Errorf("decodeTuning.colGrainMACs %d should exceed the training default %d", decodeTuning.colGrainMACs, defaultTuning.colGrainMACs)
	}
}
