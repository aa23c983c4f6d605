package decode

import (
	"context"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Vocabulary of the tests: 0 <pad>, 1 <eos>, 2 <bkspc>, 3..7 ordinary.
// fixedLogits ranks 3 > 5 > 4 > 1 > 2(bkspc) > 7 > 6.
var fixedLogits = []float32{-1, 1.0, 0.5, 3.0, 2.0, 2.5, -1.0, 0.0}

func testOptions() Options {
	o := DefaultOptions()
	o.StopTokens = []int32{EOSID}
	o.Banned = []int32{PadID}
	return o
}

// kept returns the ids with positive probability.
func kept(p []float64) []int32 {
	var k []int32
	for a, x := range p {
		if x > 0 {
			k = append(k, int32(a))
		}
	}
	return k
}

// softmaxOver is an independent reference: softmax(L/T) restricted to ids.
func softmaxOver(l []float32, t float64, ids []int32) []float64 {
	p := make([]float64, len(l))
	s := 0.0
	for _, a := range ids {
		p[a] = math.Exp(float64(l[a]) / t)
		s += p[a]
	}
	for _, a := range ids {
		p[a] /= s
	}
	return p
}

func TestFilterTables(t *testing.T) {
	cases := []struct {
		name  string
		topK  int
		topP  float64
		bkInK bool
		bkInP bool
		floor bool // state at the prompt floor (<bkspc> illegal)
		want  []int32
	}{
		{name: "none", want: []int32{1, 2, 3, 4, 5, 6, 7}},
		{name: "none at floor", floor: true, want: []int32{1, 3, 4, 5, 6, 7}},
		{name: "k2 keeps bkspc", topK: 2, want: []int32{2, 3, 5}},
		{name: "k2 bkspc filterable", topK: 2, bkInK: true, want: []int32{3, 5}},
		{name: "k2 at floor", topK: 2, floor: true, want: []int32{3, 5}},
		{name: "k1", topK: 1, bkInK: true, want: []int32{3}},
		{name: "k6 bkspc ranked inside", topK: 6, bkInK: true, want: []int32{1, 2, 3, 4, 5, 7}},
		{name: "k larger than vocab", topK: 50, want: []int32{1, 2, 3, 4, 5, 6, 7}},
		// p: 3 .4426, 5 .2684, 4 .1628, 1 .0599, 2 .0363, 7 .0220, 6 .0081
		{name: "p0.4", topP: 0.4, want: []int32{2, 3}},
		{name: "p0.5 keeps bkspc", topP: 0.5, want: []int32{2, 3, 5}},
		{name: "p0.5 bkspc filterable", topP: 0.5, bkInP: true, want: []int32{3, 5}},
		{name: "p0.9", topP: 0.9, want: []int32{1, 2, 3, 4, 5}},
		{name: "p0.9 bkspc filterable", topP: 0.9, bkInP: true, want: []int32{1, 3, 4, 5}},
		{name: "p0.95 bkspc reached", topP: 0.95, bkInP: true, want: []int32{1, 2, 3, 4, 5}},
		// after top-3 (+bkspc): 3 .4863, 5 .2949, 4 .1789, 2 .0399
		{name: "k3 p0.8", topK: 3, topP: 0.8, want: []int32{2, 3, 4, 5}},
		{name: "k3 p0.75 both filterable", topK: 3, topP: 0.75, bkInK: true, bkInP: true, want: []int32{3, 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := testOptions()
			o.TopK, o.TopP, o.BkspcInTopK, o.BkspcInTopP = c.topK, c.topP, c.bkInK, c.bkInP
			p, err := Distribution(fixedLogits, o, !c.floor)
			if err != nil {
				t.Fatal(err)
			}
			got := kept(p)
			if !slices.Equal(got, c.want) {
				t.Fatalf("kept %v, want %v (p=%.4f)", got, c.want, p)
			}
			// The kept actions carry softmax(L/T) renormalised over the kept set.
			ref := softmaxOver(fixedLogits, 1, c.want)
			for a := range p {
				if math.Abs(p[a]-ref[a]) > 1e-12 {
					t.Fatalf("p[%d] = %v, want %v", a, p[a], ref[a])
				}
			}
		})
	}
}

func TestDistributionTemperatureAndGreedy(t *testing.T) {
	o := testOptions()
	o.Temperature = 2.5
	p, err := Distribution(fixedLogits, o, true)
	if err != nil {
		t.Fatal(err)
	}
	ref := softmaxOver(fixedLogits, 2.5, []int32{1, 2, 3, 4, 5, 6, 7})
	for a := range p {
		if math.Abs(p[a]-ref[a]) > 1e-12 {
			t.Fatalf("T=2.5: p[%d] = %v, want %v", a, p[a], ref[a])
		}
	}
	// Large logits must not overflow (stable softmax in float64).
	big := []float32{0, 1e30, -1e30, 1e30 - 1e24, 3e29, 0, 0, 0}
	p, err = Distribution(big, o, true)
	if err != nil {
		t.Fatal(err)
	}
	for a, x := range p {
		if math.IsNaN(x) || x < 0 || x > 1 {
			t.Fatalf("p[%d] = %v with huge logits", a, x)
		}
	}
	o.Greedy = true
	p, _ = Distribution(fixedLogits, o, true)
	if !slices.Equal(kept(p), []int32{3}) {
		t.Fatalf("greedy kept %v, want [3]", kept(p))
	}
	tie := []float32{0, 1, 9, 4, 4, 0, 0, 0}
	p, _ = Distribution(tie, o, false) // bkspc (9) illegal at the floor; tie 3/4 -> 3
	if !slices.Equal(kept(p), []int32{3}) {
		t.Fatalf("greedy tie kept %v, want [3]", kept(p))
	}
	if _, err := Distribution([]float32{0, float32(math.NaN())}, testOptions(), true); err == nil {
		t.Fatal("NaN logit accepted")
	}
}

// chi2 is Pearson's statistic of counts against probabilities p (cells
// with p = 0 must have no counts, else +Inf).
func chi2(counts []int, p []float64, n int) float64 {
	s := 0.0
	for a, c := range counts {
		e := p[a] * float64(n)
		if e == 0 {
			if c != 0 {
				return math.Inf(1)
			}
			continue
		}
		s += (float64(c) - e) * (float64(c) - e) / e
	}
	return s
}

// TestSamplingFrequenciesChiSquare samples the first action of many
// samples through Generate and compares the frequencies with softmax(L/T)
// over the legal actions (pad banned, bkspc masked at the floor): 6 cells,
// 5 degrees of freedom, critical value 20.52 at the 0.999 level.
func TestSamplingFrequenciesChiSquare(t *testing.T) {
	const n = 20000
	const temp = 0.7
	f := fakeFactory(func([]int32) []float32 { return fixedLogits })
	o := testOptions()
	o.Temperature = temp
	o.MaxNewTokens = 1
	o.Seed = 42
	o.BatchSize = 64
	prompts := make([][]int32, n)
	for i := range prompts {
		prompts[i] = []int32{3}
	}
	res, _, err := Generate(context.Background(), f, prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, len(fixedLogits))
	for _, r := range res {
		counts[r.Actions[0]]++
	}
	legal := []int32{1, 3, 4, 5, 6, 7}
	want := softmaxOver(fixedLogits, temp, legal)
	if s := chi2(counts, want, n); s > 20.52 {
		t.Fatalf("chi2 = %.2f > 20.52; counts %v, want p %.4f", s, counts, want)
	}
	// Power check: the same counts are far from the T=1 distribution.
	if s := chi2(counts, softmaxOver(fixedLogits, 1, legal), n); s < 100 {
		t.Fatalf("chi2 against the wrong temperature only %.2f: the test has no power", s)
	}
}

// TestSamplingWithBkspcChiSquare checks the filtered distribution above
// the floor: top-k 2 keeps {3, 5} and <bkspc>.
func TestSamplingWithBkspcChiSquare(t *testing.T) {
	const n = 20000
	o := testOptions()
	o.TopK = 2
	var c chooser
	rng := NewRand(7, 0)
	counts := make([]int, len(fixedLogits))
	for i := 0; i < n; i++ {
		a, err := c.choose(fixedLogits, &o, stateMask(&o, len(fixedLogits), true, -1), rng)
		if err != nil {
			t.Fatal(err)
		}
		counts[a]++
	}
	want := softmaxOver(fixedLogits, 1, []int32{2, 3, 5})
	if s := chi2(counts, want, n); s > 13.82 { // 2 dof, 0.999
		t.Fatalf("chi2 = %.2f > 13.82; counts %v, want %.4f", s, counts, want)
	}
}

// preferBkspc always prefers <bkspc> strongly, then token 3.
func preferBkspc([]int32) []float32 { return []float32{0, -5, 8, 4, 0, 0, 0, 0} }

func TestPromptProtection(t *testing.T) {
	o := testOptions()
	o.MaxNewTokens = 5
	o.MaxActions = 40
	prompts := [][]int32{{4, 5, 6}, {7}, {4, 4}}
	for _, greedy := range []bool{false, true} {
		o.Greedy = greedy
		o.RetryBlock = RetryOff
		res, st, err := Generate(context.Background(), fakeFactory(preferBkspc), prompts, o)
		if err != nil {
			t.Fatalf("greedy=%v: %v", greedy, err) // the fake fails a pop into the prompt
		}
		for _, r := range res {
			depth := 0
			for i, a := range r.Actions {
				if a == BkspcID {
					if depth == 0 {
						t.Fatalf("greedy=%v sample %d: <bkspc> at the floor (action %d of %v)", greedy, r.Index, i, r.Actions)
					}
					depth--
				} else {
					depth++
				}
			}
			if r.Actions[0] == BkspcID {
				t.Fatalf("first action is <bkspc>")
			}
		}
		if st.Pops == 0 {
			t.Fatalf("greedy=%v: the bkspc-loving model never popped", greedy)
		}
	}
	p, err := Distribution(preferBkspc(nil), o, false)
	if err != nil {
		t.Fatal(err)
	}
	if p[BkspcID] != 0 {
		t.Fatalf("p(<bkspc>) at the floor = %v", p[BkspcID])
	}
}

// xThenBkspc: at a state whose last token is x=3, <bkspc> is best; elsewhere
// x is best, then <eos>, then 4.
func xThenBkspc(prefix []int32) []float32 {
	if prefix[len(prefix)-1] == 3 {
		return []float32{0, 0, 6, 1, 1, 1, 1, 1}
	}
	return []float32{0, 4, 0, 5, 3, 0, 0, 0}
}

func TestActionCapEndsBackspaceLoop(t *testing.T) {
	o := testOptions()
	o.MaxNewTokens = 10
	o.Greedy = true
	o.RetryBlock = RetryOff
	prompts := [][]int32{{4}, {5}}
	res, st, err := Generate(context.Background(), fakeFactory(xThenBkspc), prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.HitCap || r.Stop != StopActionCap || r.NumActions != 40 || len(r.Actions) != 40 || r.NumBkspc != 20 {
			t.Fatalf("greedy loop: hit=%v stop=%s actions=%d bkspc=%d", r.HitCap, r.Stop, r.NumActions, r.NumBkspc)
		}
		for i, a := range r.Actions {
			if want := []int32{3, BkspcID}[i%2]; a != want {
				t.Fatalf("action %d = %d, want %d", i, a, want)
			}
		}
		if r.RetryBlock {
			t.Fatal("result says retry block was on")
		}
	}
	if st.HitCap != 2 {
		t.Fatalf("stats.HitCap = %d, want 2", st.HitCap)
	}
	// Sampling at T=1 also ends, at the cap or earlier.
	o.Greedy = false
	o.MaxActions = 25
	res, _, err = Generate(context.Background(), fakeFactory(xThenBkspc), prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.NumActions > 25 || (r.HitCap && r.NumActions != 25) {
			t.Fatalf("sampling: %d actions, hit=%v", r.NumActions, r.HitCap)
		}
	}
}

func TestRetryBlockBreaksGreedyLoop(t *testing.T) {
	o := testOptions()
	o.MaxNewTokens = 10
	o.Greedy = true // RetryAuto: on for greedy
	res, st, err := Generate(context.Background(), fakeFactory(xThenBkspc), [][]int32{{4}}, o)
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if !r.RetryBlock {
		t.Fatal("retry block not reported on for greedy")
	}
	// x, ⌫, then x is blocked at the floor: <eos> (the next best) stops.
	if !slices.Equal(r.Actions, []int32{3, BkspcID, EOSID}) || r.Stop != StopToken || r.StopTokenID != EOSID || r.HitCap || st.HitCap != 0 {
		t.Fatalf("actions %v stop %s hit %v", r.Actions, r.Stop, r.HitCap)
	}
	if len(r.Tokens) != 0 {
		t.Fatalf("tokens %v, want none", r.Tokens)
	}
	// The block lasts one choice only: after a different token, x is legal again.
	o.RetryBlock = RetryOn
	o.Greedy = false
	o.Temperature = 1
	o.Seed = 3
	res, _, err = Generate(context.Background(), fakeFactory(xThenBkspc), make2(200), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		for i := 1; i+1 < len(r.Actions); i++ {
			if r.Actions[i] == BkspcID && r.Actions[i-1] == r.Actions[i+1] {
				t.Fatalf("sample %d: token %d retried right after its deletion: %v", r.Index, r.Actions[i+1], r.Actions)
			}
		}
	}
}

func make2(n int) [][]int32 {
	p := make([][]int32, n)
	for i := range p {
		p[i] = []int32{4, int32(i % 5)}
	}
	return p
}

func TestDeterminismAcrossBatchingAndWorkers(t *testing.T) {
	const v = 40
	fn := hashLogits(v, 3)
	prompts := make([][]int32, 23)
	for i := range prompts {
		prompts[i] = []int32{int32(3 + i%7), int32(10 + i%3)}
	}
	o := testOptions()
	o.MaxNewTokens = 30
	o.TopK = 12
	o.TopP = 0.95
	o.Seed = 1234
	run := func(bs, workers int, seed uint64) []Result {
		o := o
		o.BatchSize, o.Workers, o.Seed = bs, workers, seed
		res, _, err := Generate(context.Background(), fakeFactory(fn), prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	key := func(rs []Result) [][]int32 {
		var k [][]int32
		for _, r := range rs {
			k = append(k, r.Actions)
		}
		return k
	}
	base := key(run(4, 1, 1234))
	for _, c := range [][2]int{{4, 3}, {1, 1}, {1, 4}, {7, 2}, {23, 1}} {
		if got := key(run(c[0], c[1], 1234)); !reflect.DeepEqual(got, base) {
			t.Fatalf("batch %d workers %d differs from batch 4 workers 1", c[0], c[1])
		}
	}
	if got := key(run(4, 1, 1235)); reflect.DeepEqual(got, base) {
		t.Fatal("another seed gave the same samples")
	}
	bk := 0
	for _, a := range base {
		for _, x := range a {
			if x == BkspcID {
				bk++
			}
		}
	}
	if bk == 0 {
		t.Fatal("no backspace sampled: the test does not exercise pops")
	}
}

func TestCacheUseAndReplay(t *testing.T) {
	const v = 30
	var fk *fakeModel
	f := func(nseq, maxLen int) (Stepper, error) {
		fk = newFake(nseq, maxLen, hashLogits(v, 3))
		return fk, nil
	}
	prompts := make([][]int32, 8)
	for i := range prompts {
		prompts[i] = []int32{5, int32(6 + i)}
	}
	o := testOptions()
	o.MaxNewTokens = 20
	o.Seed = 9
	o.Workers = 1
	res, st, err := Generate(context.Background(), f, prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	if fk.forwards != st.PrefillTokens+st.Pushes {
		t.Fatalf("forward evaluations %d != prefill %d + pushes %d (a pop ran the model?)", fk.forwards, st.PrefillTokens, st.Pushes)
	}
	if fk.maxBatch < 2 || fk.pushCalls != st.Steps {
		t.Fatalf("pushes not batched: max batch %d, calls %d, steps %d", fk.maxBatch, fk.pushCalls, st.Steps)
	}
	pushes, pops := 0, 0
	for _, r := range res {
		toks, ok := Replay(r.Actions, BkspcID, o.StopTokens)
		if !ok || !slices.Equal(toks, r.Tokens) {
			t.Fatalf("sample %d: replay %v (ok %v) != tokens %v", r.Index, toks, ok, r.Tokens)
		}
		if len(r.Tokens) > o.MaxNewTokens || r.NumActions > 4*o.MaxNewTokens {
			t.Fatalf("sample %d over limits: %d tokens %d actions", r.Index, len(r.Tokens), r.NumActions)
		}
		if r.Stop == StopMaxNewTokens && len(r.Tokens) != o.MaxNewTokens {
			t.Fatalf("max_new_tokens stop with %d tokens", len(r.Tokens))
		}
		pushes += r.NumPushes
		pops += r.NumBkspc
	}
	if pushes != st.Pushes || pops != st.Pops || pops == 0 {
		t.Fatalf("pushes %d/%d pops %d/%d", pushes, st.Pushes, pops, st.Pops)
	}
}

// counting never stops: token 3 is always best and no stop token.
func counting([]int32) []float32 { return []float32{0, -9, -9, 5, 0, 0, 0, 0} }

func TestLengthLimits(t *testing.T) {
	o := testOptions()
	o.Greedy = true
	o.MaxNewTokens = 5
	res, st, err := Generate(context.Background(), fakeFactory(counting), [][]int32{{4, 4, 4}}, o)
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.Stop != StopMaxNewTokens || len(r.Tokens) != 5 || r.NumPushes != 4 || st.Pushes != 4 || r.HitCap {
		t.Fatalf("max new: stop %s tokens %d pushes %d", r.Stop, len(r.Tokens), r.NumPushes)
	}
	o.ContextLen = 6
	res, _, err = Generate(context.Background(), fakeFactory(counting), [][]int32{{4, 4, 4}}, o)
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0]; r.Stop != StopContextFull || len(r.Tokens) != 3 {
		t.Fatalf("context: stop %s tokens %d", r.Stop, len(r.Tokens))
	}
	if _, _, err := Generate(context.Background(), fakeFactory(counting), [][]int32{{4, 4, 4, 4, 4, 4}}, o); err == nil {
		t.Fatal("prompt filling the context accepted")
	}
	if _, _, err := Generate(context.Background(), fakeFactory(counting), [][]int32{{}}, o); err == nil {
		t.Fatal("empty prompt accepted")
	}
}

func TestStopStringsAndText(t *testing.T) {
	letters := "_EBabcdefghijklmnopqrstuvwxyz"
	detok := func(ids []int32) string {
		var b strings.Builder
		for _, id := range ids {
			b.WriteByte(letters[id])
		}
		return b.String()
	}
	// Always continue with the next letter: a b c d ...
	next := func(prefix []int32) []float32 {
		l := make([]float32, len(letters))
		l[min(prefix[len(prefix)-1]+1, int32(len(letters)-1))] = 10
		return l
	}
	o := testOptions()
	o.Greedy = true
	o.MaxNewTokens = 20
	o.Detokenize = detok
	o.StopStrings = []string{"zz", "ef"}
	res, _, err := Generate(context.Background(), fakeFactory(next), [][]int32{{3}}, o)
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.Stop != StopString || r.StopText != "ef" || r.Text != "bcdef" {
		t.Fatalf("stop %s %q text %q", r.Stop, r.StopText, r.Text)
	}
	if got := RenderActions([]int32{3, 4, 5, BkspcID, 6, EOSID}, BkspcID, detok); got != "ab~~c~~dE" {
		t.Fatalf("render %q", got)
	}
	if got := RenderActions([]int32{3, 4, BkspcID, BkspcID, 5}, BkspcID, detok); got != "~~ab~~c" {
		t.Fatalf("render %q", got)
	}
}

func TestOptionErrors(t *testing.T) {
	bad := []func(*Options){
		func(o *Options) { o.Temperature = 0 },
		func(o *Options) { o.Temperature = math.NaN() },
		func(o *Options) { o.Temperature = 1e-300 },
		func(o *Options) { o.TopP = 1.5 },
		func(o *Options) { o.TopK = -1 },
		func(o *Options) { o.MaxNewTokens = 0 },
		func(o *Options) { o.StopStrings = []string{"x"} },
		func(o *Options) { o.StopTokens = []int32{BkspcID} },
	}
	for i, mod := range bad {
		o := DefaultOptions()
		mod(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("case %d: invalid options accepted", i)
		}
	}
	o := DefaultOptions()
	o.Greedy, o.Temperature = true, 0
	if err := o.Validate(); err != nil {
		t.Errorf("greedy with T=0 rejected: %v", err)
	}
	if err := (&Options{}).Validate(); err == nil {
		t.Error("zero Options accepted")
	}
}

func TestContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := testOptions()
	if _, _, err := Generate(ctx, fakeFactory(counting), [][]int32{{4}}, o); err == nil {
		t.Fatal("cancelled context ignored")
	}
}

// refKept is a naive reference of the kept set: rank all legal actions
// (score desc, id asc), cut at k, then at the nucleus p, with <bkspc>
// exempt from each cut unless its option allows it.
func refKept(l []float32, temp float64, topK int, topP float64, bkInK, bkInP bool, bk int32, legal []bool) map[int32]bool {
	var ids []int32
	for a := range l {
		if legal[a] {
			ids = append(ids, int32(a))
		}
	}
	slices.SortFunc(ids, func(a, b int32) int {
		if l[a] != l[b] {
			if l[a] > l[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	kept := map[int32]bool{}
	for i, a := range ids {
		if topK == 0 || i < topK || (a == bk && !bkInK) {
			kept[a] = true
		}
	}
	if topP > 0 && topP < 1 {
		s := 0.0
		for a := range kept {
			s += math.Exp(float64(l[a]) / temp)
		}
		cum, cut := 0.0, false
		for _, a := range ids {
			if !kept[a] {
				continue
			}
			if cut {
				if !(a == bk && !bkInP) {
					delete(kept, a)
				}
				continue
			}
			cum += math.Exp(float64(l[a])/temp) / s
			if cum >= topP {
				cut = true
			}
		}
	}
	return kept
}

func TestFilterMatchesNaiveReference(t *testing.T) {
	rng := NewRand(99, 0)
	for trial := 0; trial < 3000; trial++ {
		v := 3 + rng.IntN(40)
		l := make([]float32, v)
		for i := range l {
			l[i] = float32(rng.IntN(7)) / 2 // many ties
		}
		o := testOptions()
		o.Banned = nil
		o.Temperature = 0.5 + rng.Float64()
		o.TopK = rng.IntN(v + 2)
		if rng.IntN(2) == 0 {
			o.TopP = rng.Float64()
		}
		o.BkspcInTopK, o.BkspcInTopP = rng.IntN(2) == 0, rng.IntN(2) == 0
		above := rng.IntN(3) > 0
		p, err := Distribution(l, o, above)
		if err != nil {
			t.Fatal(err)
		}
		legal := make([]bool, v)
		for i := range legal {
			legal[i] = above || int32(i) != BkspcID
		}
		want := refKept(l, o.Temperature, o.TopK, o.TopP, o.BkspcInTopK, o.BkspcInTopP, BkspcID, legal)
		for a := range p {
			if (p[a] > 0) != want[int32(a)] {
				t.Fatalf("trial %d (V %d, k %d, p %.3f, bkK %v bkP %v, above %v): kept %v, want %v; logits %v",
					trial, v, o.TopK, o.TopP, o.BkspcInTopK, o.BkspcInTopP, above, kept(p), want, l)
			}
		}
	}
}
