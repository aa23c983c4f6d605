package decode

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"syscall"
	"testing"

	"smtrain/model"
)

// recorder wraps a Stepper, adds bias to the <bkspc> logit (so a randomly
// initialised model backspaces often) and records, per slot, the raw
// logits behind every choice.
type recorder struct {
	Stepper
	bias float32
	seen [][][]float32 // per slot, per Logits call: a copy of the raw logits
	buf  []float32
}

func (r *recorder) Logits(seq int) []float32 {
	l := r.Stepper.Logits(seq)
	for len(r.seen) <= seq {
		r.seen = append(r.seen, nil)
	}
	r.seen[seq] = append(r.seen[seq], append([]float32(nil), l...))
	r.buf = append(r.buf[:0], l...)
	r.buf[BkspcID] += r.bias
	return r.buf
}

func randomModel(t testing.TB, cfg model.Config, seed uint64) *model.Params {
	t.Helper()
	p, err := model.NewParams(cfg, model.F32, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// treeBatch lays out prompt + actions as DESIGN 3.1's trie: inputs,
// positions, parents, and for every action the index of its state.
func treeBatch(prompt, actions []int32, stop []int32) (inputs, pos, parents, state []int32) {
	var stack []int32
	for i, t := range prompt {
		inputs = append(inputs, t)
		pos = append(pos, int32(i))
		parents = append(parents, int32(i-1))
		stack = append(stack, int32(i))
	}
	for _, a := range actions {
		top := stack[len(stack)-1]
		state = append(state, top)
		switch {
		case a == BkspcID:
			stack = stack[:len(stack)-1]
		case containsID(stop, a):
		default:
			idx := int32(len(inputs))
			inputs = append(inputs, a)
			pos = append(pos, int32(len(stack)))
			parents = append(parents, top)
			stack = append(stack, idx)
		}
	}
	return
}

// TestSamplerMatchesTreeForward decodes with the real KV-cache decoder
// (pushes, pops, batched steps) and checks that the logits behind every
// action equal the training graph's tree-attention forward of the whole
// action sequence at that action's state (DESIGN 3.1: the trained policy
// is the sampled policy), and a fresh full-prefix Prefill.
func TestSamplerMatchesTreeForward(t *testing.T) {
	cfg := model.Tiny
	p := randomModel(t, cfg, 5)
	d, err := model.NewDecoder(p, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Stepper: d, bias: 5}
	o := ModelOptions(cfg)
	o.MaxNewTokens = 24
	o.Seed = 77
	prompts := [][]int32{{5, 40, 41}, {5}, {5, 90, 91, 92, 93}, {5, 7}}
	res, st, err := RunBatch(context.Background(), rec, prompts, 0, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pops == 0 || st.Steps >= st.Pushes {
		t.Fatalf("test does not exercise pops (%d) or batched pushes (%d steps, %d pushes)", st.Pops, st.Steps, st.Pushes)
	}
	ref, err := model.NewDecoder(p, 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	worst, worstPrefill := 0.0, 0.0
	for i, r := range res {
		if len(rec.seen[i]) != len(r.Actions) {
			t.Fatalf("sample %d: %d logits reads for %d actions", i, len(rec.seen[i]), len(r.Actions))
		}
		in, pos, par, state := treeBatch(r.Prompt, r.Actions, o.StopTokens)
		g, err := model.NewGraph(p, 1, len(in))
		if err != nil {
			t.Fatal(err)
		}
		m, err := g.CompileForward()
		if err != nil {
			t.Fatal(err)
		}
		if err := g.SetBatch(in, pos, par); err != nil {
			t.Fatal(err)
		}
		if err := m.Step(); err != nil {
			t.Fatal(err)
		}
		all := g.Logits32() // (T, V)
		V := cfg.VocabSize
		for k, s := range state {
			want := all[int(s)*V : int(s+1)*V]
			for j, x := range rec.seen[i][k] {
				worst = math.Max(worst, math.Abs(float64(x-want[j])))
			}
		}
		// Fresh prefill of the final prefix gives the last state's logits.
		final := append(append([]int32(nil), r.Prompt...), r.Tokens...)
		if r.Stop == StopToken {
			if err := ref.Prefill(0, final); err != nil {
				t.Fatal(err)
			}
			last := rec.seen[i][len(r.Actions)-1]
			for j, x := range ref.Logits(0) {
				worstPrefill = math.Max(worstPrefill, math.Abs(float64(x-last[j])))
			}
		}
		m.Close()
	}
	t.Logf("max |logit diff| vs tree forward %.2g, vs prefill %.2g; %d pops, %d pushes in %d steps", worst, worstPrefill, st.Pops, st.Pushes, st.Steps)
	if worst > 1e-4 || worstPrefill > 1e-4 {
		t.Fatalf("decoder logits differ from the tree forward by %.3g (prefill %.3g)", worst, worstPrefill)
	}
}

// TestModelDeterminismAcrossWorkers: with the real decoder, a fixed batch
// layout gives bit-identical samples for 1 and 2 workers and repeated runs.
func TestModelDeterminismAcrossWorkers(t *testing.T) {
	cfg := model.Tiny
	p := randomModel(t, cfg, 6)
	o := ModelOptions(cfg)
	o.MaxNewTokens = 20
	o.TopK = 50
	o.Seed = 11
	o.BatchSize = 3
	prompts := make([][]int32, 7)
	for i := range prompts {
		prompts[i] = []int32{5, int32(10 + i)}
	}
	var base []Result
	for _, w := range []int{1, 2, 1} {
		o.Workers = w
		res, _, err := Generate(context.Background(), ModelFactory(p), prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		if base == nil {
			base = res
			continue
		}
		for i := range res {
			if !reflect.DeepEqual(res[i].Actions, base[i].Actions) {
				t.Fatalf("workers=%d sample %d: %v != %v", w, i, res[i].Actions, base[i].Actions)
			}
		}
	}
}

// benchDecode measures decode throughput of config small (random init):
// batch samples of 128 new tokens after a 16-token prompt, no stop token.
// tok/s counts generated tokens over prefill + decode time, as
// bench/torch_peer.py does; ns/push is the time per incremental step.
func benchDecode(b *testing.B, batch int, greedy bool) {
	cfg := model.Small
	p := randomModel(b, cfg, 1)
	o := ModelOptions(cfg)
	o.MaxNewTokens = 128
	o.StopTokens = nil
	o.Greedy = greedy
	o.Workers = 1
	o.BatchSize = batch
	prompts := make([][]int32, batch)
	for i := range prompts {
		prompts[i] = make([]int32, 16)
		for j := range prompts[i] {
			prompts[i][j] = int32(7 + (i*31+j*17)%1000)
		}
	}
	d, err := model.NewDecoder(p, batch, 16+128)
	if err != nil {
		b.Fatal(err)
	}
	f := func(int, int) (Stepper, error) { return d, nil }
	var pushes, generated int
	var decode, total float64
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o.Seed = uint64(i)
		res, st, err := Generate(context.Background(), f, prompts, o)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			generated += len(r.Tokens)
		}
		pushes += st.Pushes
		decode += st.Decode.Seconds()
		total += (st.Prefill + st.Decode).Seconds()
	}
	b.StopTimer()
	cpu := cpuSeconds() - cpu0
	b.ReportMetric(float64(generated)/total, "tok/s")
	b.ReportMetric(decode*1e9/float64(pushes), "ns/push")
	// CPU time (all threads) per generated token: robust to other load.
	b.ReportMetric(cpu*1e9/float64(generated), "cpu-ns/tok")
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func BenchmarkDecodeSmallBatch1(b *testing.B)       { benchDecode(b, 1, false) }
func BenchmarkDecodeSmallBatch8(b *testing.B)       { benchDecode(b, 8, false) }
func BenchmarkDecodeSmallBatch1Greedy(b *testing.B) { benchDecode(b, 1, true) }
func BenchmarkDecodeSmallBatch8Greedy(b *testing.B) { benchDecode(b, 8, true) }

// benchStep times the decoder alone (no sampler): one batched push of
// batch tokens at depth 16..143, then pops back, per 128 steps.
func benchStep(b *testing.B, batch int) {
	p := randomModel(b, model.Small, 1)
	d, err := model.NewDecoder(p, batch, 16+128)
	if err != nil {
		b.Fatal(err)
	}
	seqs := make([]int, batch)
	toks := make([]int32, batch)
	prompt := make([]int32, 16)
	for i := range seqs {
		seqs[i] = i
		toks[i] = int32(10 + i)
		if err := d.Prefill(i, prompt); err != nil {
			b.Fatal(err)
		}
	}
	var cpu float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0 := cpuSeconds()
		for s := 0; s < 127; s++ {
			if err := d.Push(seqs, toks); err != nil {
				b.Fatal(err)
			}
		}
		cpu += cpuSeconds() - c0
		b.StopTimer()
		for s := 0; s < 127; s++ {
			for _, q := range seqs {
				_ = d.Pop(q)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*127*batch), "ns/tok")
	b.ReportMetric(cpu*1e9/float64(b.N*127*batch), "cpu-ns/tok")
}

func BenchmarkDecoderStepSmallBatch1(b *testing.B) { benchStep(b, 1) }
func BenchmarkDecoderStepSmallBatch8(b *testing.B) { benchStep(b, 8) }
