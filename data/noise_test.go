package data

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// checkFreq fails when the observed shares of counts differ from want (a
// distribution over the same keys) by more than tol.
func checkFreq(t *testing.T, what string, counts map[int32]int, want map[int32]float64, tol float64) {
	t.Helper()
	n := 0
	for _, c := range counts {
		n += c
	}
	for k := range counts {
		if _, ok := want[k]; !ok {
			t.Fatalf("%s: drew %d, which has no probability", what, k)
		}
	}
	for k, p := range want {
		got := float64(counts[k]) / float64(n)
		if math.Abs(got-p) > tol {
			t.Fatalf("%s: token %d drawn with frequency %.4f, want %.4f (±%.3f)", what, k, got, p, tol)
		}
	}
}

func TestTokenDistDrawExcludes(t *testing.T) {
	d := &TokenDist{Toks: []int32{10, 11, 12, 13}, W: []float64{1, 2, 3, 4}}
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[int32]int{}
	for i := 0; i < 40000; i++ {
		n, ok := d.Draw(11, rng)
		if !ok || n == 11 {
			t.Fatalf("draw %d: %d, %v (11 is excluded)", i, n, ok)
		}
		counts[n]++
	}
	checkFreq(t, "excluding 11", counts, map[int32]float64{10: 1.0 / 8, 12: 3.0 / 8, 13: 4.0 / 8}, 0.01)
	one := &TokenDist{Toks: []int32{5}, W: []float64{3}}
	if _, ok := one.Draw(5, rng); ok {
		t.Fatal("a draw excluding the only token succeeded")
	}
}

func TestActionUnigramAndUnigramNoise(t *testing.T) {
	tok := ByteTokenizer()
	sp := tok.Specials()
	// actions: "aab" then "ab" (+ the end-of-turn); prompts hold "zzzz"
	s1, _ := ChatSeq(tok, []Message{{RoleUser, "zzzz"}, {RoleAssistant, "aab"}})
	s2, _ := ChatSeq(tok, []Message{{RoleUser, "zzzz"}, {RoleAssistant, "ab"}})
	d := ActionUnigram([]*ActionSeq{s1, s2}, sp)
	id := func(c string) int32 { return tok.EncodeOrdinary(c)[0] }
	if !reflect.DeepEqual(d.Toks, []int32{id("a"), id("b")}) || !reflect.DeepEqual(d.W, []float64{3, 2}) {
		t.Fatalf("ActionUnigram = %v %v, want a:3 b:2 (prompt tokens and specials left out)", d.Toks, d.W)
	}
	// unigram noise follows the action frequencies, never the expert token
	long, _ := ChatSeq(tok, []Message{{RoleUser, "q"}, {RoleAssistant, strings.Repeat("c", 400)}})
	d3 := &TokenDist{Toks: []int32{id("a"), id("b"), id("c")}, W: []float64{1, 3, 6}}
	opt := AugmentOptions{Eta: 0.5, Kind: NoiseUnigram, Unigram: d3, Specials: sp}
	counts := map[int32]int{}
	rng := rand.New(rand.NewPCG(3, 4))
	for rep := 0; rep < 40; rep++ {
		a, err := Augment(long, opt, rng)
		if err != nil {
			t.Fatal(err)
		}
		for i, it := range a.Items {
			if it.Kind == KindNoise {
				if it.Tok == a.Items[i+2].Tok {
					t.Fatal("unigram noise equals the expert token")
				}
				if a.Items[i+2].Tok == id("c") { // not before the end-of-turn
					counts[it.Tok]++
				}
			}
		}
	}
	// before an expert 'c': a 1/4, b 3/4
	checkFreq(t, "unigram noise", counts, map[int32]float64{id("a"): 0.25, id("b"): 0.75}, 0.03)
	if _, err := Augment(long, AugmentOptions{Eta: 0.5, Kind: NoiseUnigram}, rng); err == nil {
		t.Fatal("unigram noise without a distribution did not fail")
	}
	if _, err := Augment(long, AugmentOptions{Eta: 0.5, Kind: NoisePolicy}, rng); err == nil {
		t.Fatal("policy noise through Augment (no logits) did not fail")
	}
}

// fakePolicy gives every position the same logits and records the queries.
type fakePolicy struct {
	logits []float32
	calls  [][]NoiseQuery
}

func (f *fakePolicy) get(seqs []*ActionSeq, qs []NoiseQuery) ([][]float32, error) {
	f.calls = append(f.calls, append([]NoiseQuery(nil), qs...))
	out := make([][]float32, len(qs))
	for i := range out {
		out[i] = f.logits
	}
	return out, nil
}

func TestPolicyNoise(t *testing.T) {
	tok := ByteTokenizer()
	sp := tok.Specials()
	V := tok.VocabSize()
	logits := make([]float32, V)
	for i := range logits {
		logits[i] = -60 // effectively zero
	}
	// the policy likes 'x' (expert token everywhere), then 'y', then 'z'
	id := func(c string) int32 { return tok.EncodeOrdinary(c)[0] }
	logits[id("x")], logits[id("y")], logits[id("z")] = 5, float32(math.Log(3)), 0
	logits[sp.Bkspc], logits[sp.End] = 8, 8 // specials are never noise
	s, _ := ChatSeq(tok, []Message{{RoleUser, "q"}, {RoleAssistant, strings.Repeat("x", 300)}})
	seqs := []*ActionSeq{s, s}
	for _, temp := range []float64{1, 2} {
		f := &fakePolicy{logits: logits}
		opt := AugmentOptions{Eta: 0.5, Kind: NoisePolicy, Policy: f.get, Specials: sp, Temperature: temp}
		counts := map[int32]int{}
		for rep := 0; rep < 20; rep++ {
			out, err := AugmentBatch(seqs, opt, rand.New(rand.NewPCG(uint64(rep), 9)))
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range out {
				if err := a.Validate(); err != nil {
					t.Fatal(err)
				}
				for i, it := range a.Items {
					if it.Kind != KindNoise {
						continue
					}
					if it.Tok == a.Items[i+2].Tok || sp.IsSpecial(it.Tok) {
						t.Fatalf("policy noise %d equals the expert token or is special", it.Tok)
					}
					if a.Items[i+2].Tok == id("x") { // not before the end-of-turn
						counts[it.Tok]++
					}
				}
			}
		}
		if len(f.calls) != 20 {
			t.Fatalf("%d policy calls for 20 batches, want one per batch", len(f.calls))
		}
		for _, q := range f.calls[0] {
			if it := seqs[q.Seq].Items[q.Item]; it.Kind != KindAction {
				t.Fatalf("query %+v is not at an action", q)
			}
		}
		// y : z = 3 : 1 at temperature 1, 3^(1/2) : 1 at temperature 2;
		// the rest of the vocabulary has ~e^-60/temp
		py := math.Pow(3, 1/temp)
		checkFreq(t, "policy noise", counts, map[int32]float64{id("y"): py / (py + 1), id("z"): 1 / (py + 1)}, 0.02)
	}
	// deterministic given the stream; other kinds match Augment per sequence
	f := &fakePolicy{logits: logits}
	opt := AugmentOptions{Eta: 0.3, Kind: NoisePolicy, Policy: f.get, Specials: sp}
	a1, _ := AugmentBatch(seqs, opt, rand.New(rand.NewPCG(5, 5)))
	a2, _ := AugmentBatch(seqs, opt, rand.New(rand.NewPCG(5, 5)))
	if !reflect.DeepEqual(a1, a2) {
		t.Fatal("policy noise is not deterministic")
	}
	ro := AugmentOptions{Eta: 0.3, Kind: NoiseRandom, Vocab: tok.OrdinaryIDs(), Specials: sp}
	b1, _ := AugmentBatch(seqs, ro, rand.New(rand.NewPCG(5, 5)))
	rng := rand.New(rand.NewPCG(5, 5))
	for i, q := range seqs {
		want, _ := Augment(q, ro, rng)
		if !reflect.DeepEqual(b1[i], want) {
			t.Fatalf("AugmentBatch(random) sequence %d differs from Augment", i)
		}
	}
	if _, err := AugmentBatch(seqs, AugmentOptions{Eta: 0.3, Kind: NoisePolicy, Specials: sp}, rng); err == nil {
		t.Fatal("policy noise without a policy did not fail")
	}
}

func TestStringTasks(t *testing.T) {
	for _, kind := range StringTaskKinds {
		cfg := StringTaskConfig{Kind: kind, MinLen: 2, MaxLen: 5, Alphabet: "dcba", NTrain: 50, NTest: 20, Seed: 3}
		tr, te, err := StringTaskSplits(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tr2, _, _ := StringTaskSplits(cfg)
		if !reflect.DeepEqual(tr, tr2) || len(tr) != 50 || len(te) != 20 {
			t.Fatalf("%s: splits not deterministic or of the wrong size", kind)
		}
		seen := map[string]bool{}
		for _, p := range append(tr, te...) {
			if seen[p.Question] {
				t.Fatalf("%s: question %q twice", kind, p.Question)
			}
			seen[p.Question] = true
			x := strings.TrimSuffix(p.Question, ">")
			if len(x) < 2 || len(x) > 5 || len(p.Answer) != len(x) {
				t.Fatalf("%s: %q -> %q has the wrong length", kind, p.Question, p.Answer)
			}
		}
	}
	if got := StringTaskAnswer("sort", "cab"); got != "abc" {
		t.Fatalf("sort cab = %q", got)
	}
	if got := StringTaskAnswer("reverse", "cab"); got != "bac" {
		t.Fatalf("reverse cab = %q", got)
	}
	if got := StringTaskAnswer("copy", "cab"); got != "cab" {
		t.Fatalf("copy cab = %q", got)
	}
	for _, bad := range []StringTaskConfig{
		{Kind: "shuffle", MinLen: 1, MaxLen: 3, Alphabet: "ab", NTrain: 1, NTest: 1},
		{Kind: "copy", MinLen: 3, MaxLen: 2, Alphabet: "ab", NTrain: 1, NTest: 1},
		{Kind: "copy", MinLen: 1, MaxLen: 3, Alphabet: "aa", NTrain: 1, NTest: 1},
		{Kind: "copy", MinLen: 1, MaxLen: 3, Alphabet: "a>", NTrain: 1, NTest: 1},
		{Kind: "copy", MinLen: 1, MaxLen: 2, Alphabet: "ab", NTrain: 10, NTest: 10},
	} {
		if _, _, err := StringTaskSplits(bad); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
}
