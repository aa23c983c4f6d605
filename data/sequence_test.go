package data

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestChatTemplate(t *testing.T) {
	tok := ByteTokenizer()
	msgs := []Message{
		{RoleSystem, "S"}, {RoleUser, "Q<|end|>"}, {RoleAssistant, "A"},
		{RoleUser, "F"}, {RoleAssistant, "B"}, {RoleAssistant, "C"}, {RoleUser, "trailing"},
	}
	s, err := ChatSeq(tok, msgs)
	if err != nil {
		t.Fatal(err)
	}
	id := func(x string) int32 { return tok.EncodeOrdinary(x)[0] }
	wantPrompt := append(append([]int32{SystemID, id("S"), UserID}, tok.EncodeOrdinary("Q<|end|>")...), AssistantID)
	if !slices.Equal(s.Prompt, wantPrompt) {
		t.Fatalf("prompt %v want %v", s.Prompt, wantPrompt)
	}
	want := []Item{
		{id("A"), KindAction}, {EndID, KindAction},
		{UserID, KindObs}, {id("F"), KindObs}, {AssistantID, KindObs},
		{id("B"), KindAction}, {EndID, KindAction},
		{AssistantID, KindObs},
		{id("C"), KindAction}, {EndID, KindAction},
	}
	if !reflect.DeepEqual(s.Items, want) || !s.Done {
		t.Fatalf("items %v", s.Items)
	}
	// loss mask = assistant content + <|end|>: 6 actions
	if s.NumActions() != 6 {
		t.Fatalf("%d actions", s.NumActions())
	}
	if _, err := ChatSeq(tok, []Message{{RoleUser, "q"}}); err == nil {
		t.Fatal("no assistant accepted")
	}
	if _, err := ChatSeq(tok, []Message{{"bot", "q"}, {RoleAssistant, "a"}}); err == nil {
		t.Fatal("unknown role accepted")
	}
	ts := TextSeq(tok, "ab", "cd")
	if ts.Prompt[0] != EOSID || ts.Items[len(ts.Items)-1].Tok != EOSID || !ts.Done {
		t.Fatal("text sequence layout")
	}
}

func multiTurnSeq(tok *Tokenizer, turns int, turnLen int) *ActionSeq {
	msgs := []Message{{RoleSystem, strings.Repeat("s", 10)}, {RoleUser, strings.Repeat("u", 10)}}
	for k := 0; k < turns; k++ {
		msgs = append(msgs, Message{RoleAssistant, strings.Repeat(string(rune('a'+k)), turnLen)})
		if k+1 < turns {
			msgs = append(msgs, Message{RoleUser, strings.Repeat("o", 5)})
		}
	}
	s, _ := ChatSeq(tok, msgs)
	return s
}

func TestTruncate(t *testing.T) {
	tok := ByteTokenizer()
	s := multiTurnSeq(tok, 4, 8)
	// inputs: prompt 1+10+1+10+1 = 23; per turn 8 + <|end|> (+obs 1+5+1)
	n := s.NumInputs()
	if got, _, _ := Truncate(s, n); got != s {
		t.Fatal("fitting sequence changed")
	}
	// drop whole leading rounds
	tr, info, err := Truncate(s, 40)
	if err != nil {
		t.Fatal(err)
	}
	if tr.NumInputs() > 40 || info.DroppedRounds == 0 || info.CutActions != 0 || !tr.Done {
		t.Fatalf("info %+v, %d inputs", info, tr.NumInputs())
	}
	if tr.Prompt[0] != SystemID || tr.Prompt[1] != UserID || tr.Prompt[len(tr.Prompt)-1] != AssistantID {
		t.Fatalf("truncated prompt %v", tr.Prompt)
	}
	// T0 counts the dropped agent items (9 per dropped turn)
	if tr.T0 != int32(9*info.DroppedRounds) {
		t.Fatalf("T0 %d after dropping %d rounds", tr.T0, info.DroppedRounds)
	}
	// the kept turns are intact: actions are the tail of the original ones
	if !slices.Equal(tr.Actions(), s.Actions()[len(s.Actions())-len(tr.Actions()):]) {
		t.Fatal("kept actions differ")
	}
	// last turn longer than T: cut on the right, bootstraps
	long := multiTurnSeq(tok, 2, 100)
	tr, info, err = Truncate(long, 30)
	if err != nil {
		t.Fatal(err)
	}
	if tr.NumInputs() != 30 || tr.Done || info.CutActions == 0 || tr.Prompt[0] != SystemID || tr.Prompt[1] != AssistantID {
		t.Fatalf("right cut: %d inputs, done %v, %+v, prompt %v", tr.NumInputs(), tr.Done, info, tr.Prompt)
	}
	b, err := Compile([]*ActionSeq{tr}, 30)
	if err != nil {
		t.Fatal(err)
	}
	if last := b.Trans[len(b.Trans)-1]; last.Done || last.Next != 29 {
		t.Fatalf("cut-off last transition %+v", last)
	}
	// only the context shrinks when the last turn fits alone
	tr, info, err = Truncate(multiTurnSeq(tok, 1, 5), 10)
	if err != nil || tr.NumInputs() > 10 || !tr.Done || info.DroppedContext == 0 || info.CutActions != 0 {
		t.Fatalf("context shrink: %v %+v %d", err, info, tr.NumInputs())
	}
	// random sequences always fit after truncation and compile
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		s := randomSeq(rng)
		T := 2 + rng.IntN(20)
		tr, _, err := Truncate(s, T)
		if err != nil {
			t.Fatal(err)
		}
		if tr.NumInputs() > T {
			t.Fatalf("%d inputs > %d", tr.NumInputs(), T)
		}
		if _, err := Compile([]*ActionSeq{tr}, T); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAugment(t *testing.T) {
	tok := testTokenizer(t)
	s, err := ChatSeq(tok, []Message{{RoleUser, "question text here"}, {RoleAssistant, strings.Repeat("the answer is 42. ", 40)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []NoiseKind{NoiseRandom, NoiseGroundTruth} {
		opt := AugmentOptions{Eta: 0.2, Kind: kind, Vocab: tok.OrdinaryIDs(), Specials: tok.Specials()}
		a1, err := Augment(s, opt, rand.New(rand.NewPCG(7, 7)))
		if err != nil {
			t.Fatal(err)
		}
		a2, _ := Augment(s, opt, rand.New(rand.NewPCG(7, 7)))
		if !reflect.DeepEqual(a1, a2) {
			t.Fatal("augmentation not deterministic")
		}
		// removing noise and its backspace gives the original items
		var clean []Item
		noise := 0
		for i := 0; i < len(a1.Items); i++ {
			it := a1.Items[i]
			if it.Kind == KindNoise {
				noise++
				if a1.Items[i+1].Tok != BkspcID || a1.Items[i+1].Kind != KindAction {
					t.Fatal("noise not followed by a backspace")
				}
				if it.Tok == a1.Items[i+2].Tok || tok.Specials().IsSpecial(it.Tok) {
					t.Fatal("noise equals the next expert token or is special")
				}
				if kind == NoiseGroundTruth && !slices.Contains(s.Actions(), it.Tok) && !slices.Contains(s.Prompt, it.Tok) {
					t.Fatal("ground-truth noise not from the sequence")
				}
				i++
				continue
			}
			clean = append(clean, it)
		}
		if !reflect.DeepEqual(clean, s.Items) {
			t.Fatal("augmentation changed the expert items")
		}
		rate := float64(noise) / float64(s.NumActions())
		if rate < 0.12 || rate > 0.28 {
			t.Fatalf("%s: noise rate %.3f for eta 0.2", kind, rate)
		}
		b, err := Compile([]*ActionSeq{a1}, a1.NumInputs())
		if err != nil {
			t.Fatal(err)
		}
		// trained = expert actions + the backspaces; noise left out
		if len(b.Trans) != s.NumActions()+noise {
			t.Fatalf("%d transitions, want %d", len(b.Trans), s.NumActions()+noise)
		}
		if last := b.Trans[len(b.Trans)-1]; int(last.T) != len(a1.Items)-1 || !last.Done {
			t.Fatalf("last discount index %d, %d agent items", last.T, len(a1.Items))
		}
	}
	if _, err := Augment(s, AugmentOptions{Kind: "bogus"}, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("bad kind accepted")
	}
	if _, err := Augment(s, AugmentOptions{Eta: 0.1}, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("random noise without vocabulary accepted")
	}
}

func seqsForLoader(n int) []*ActionSeq {
	tok := ByteTokenizer()
	rng := rand.New(rand.NewPCG(5, 5))
	var out []*ActionSeq
	for i := 0; i < n; i++ {
		out = append(out, TextSeq(tok, "p", strings.Repeat("x", 1+rng.IntN(30))))
	}
	return out
}

func TestLoaderCursorAndBuckets(t *testing.T) {
	tok := ByteTokenizer()
	mk := func() *Loader {
		return &Loader{Seqs: seqsForLoader(53), BatchSize: 4, T: 24, Seed: 9, BucketBatches: 4,
			Augment: &AugmentOptions{Eta: 0.1, Vocab: tok.OrdinaryIDs(), Specials: tok.Specials()}}
	}
	l := mk()
	if l.BatchesPerEpoch() != 14 {
		t.Fatalf("%d batches per epoch", l.BatchesPerEpoch())
	}
	var c Cursor
	var seq []*Batch
	seen := map[int]int{}
	for k := 0; k < 14; k++ {
		order, _ := l.EpochOrder(0)
		for _, i := range order[c.Index] {
			seen[i]++
		}
		b, err := nextBatch(l, &c)
		if err != nil {
			t.Fatal(err)
		}
		if b.T > 24 {
			t.Fatalf("batch T %d", b.T)
		}
		seq = append(seq, b)
	}
	if c != (Cursor{Epoch: 1, Index: 0}) || len(seen) != 53 {
		t.Fatalf("cursor %+v, %d distinct sequences in epoch 0", c, len(seen))
	}
	// save the cursor mid-epoch, restore it in a fresh loader: same batches
	c = Cursor{Epoch: 1, Index: 5}
	js, _ := json.Marshal(c)
	var want []*Batch
	for k := 0; k < 12; k++ {
		b, _ := nextBatch(l, &c)
		want = append(want, b)
	}
	c2, err := ParseCursor(js)
	if err != nil {
		t.Fatal(err)
	}
	l2 := mk()
	for k := 0; k < 12; k++ {
		b, _ := nextBatch(l2, &c2)
		if !reflect.DeepEqual(b, want[k]) {
			t.Fatalf("batch %d differs after restoring the cursor", k)
		}
	}
	// epochs are shuffled differently
	o0, _ := l.EpochOrder(0)
	o1, _ := l.EpochOrder(1)
	if reflect.DeepEqual(o0, o1) {
		t.Fatal("epochs 0 and 1 have the same order")
	}
	// bucketing: batches are more homogeneous in length than random ones
	spread := func(l *Loader) float64 {
		order, _ := l.EpochOrder(0)
		tot := 0.0
		for _, b := range order {
			lo, hi := math.MaxInt, 0
			for _, i := range b {
				lo, hi = min(lo, l.lengths[i]), max(hi, l.lengths[i])
			}
			tot += float64(hi - lo)
		}
		return tot / float64(len(order))
	}
	nb := mk()
	nb.BucketBatches = 0
	if sb, sn := spread(l), spread(nb); sb >= sn {
		t.Fatalf("bucketed spread %.1f not below unbucketed %.1f", sb, sn)
	}
	if _, err := ParseCursor([]byte(`{"epoch":-1,"index":0}`)); err == nil {
		t.Fatal("negative cursor accepted")
	}
}

func TestSplit(t *testing.T) {
	tr, va, err := Split(100, 0.1, 3)
	if err != nil {
		t.Fatal(err)
	}
	tr2, va2, _ := Split(100, 0.1, 3)
	if len(va) != 10 || len(tr) != 90 || !slices.Equal(va, va2) || !slices.Equal(tr, tr2) {
		t.Fatal("split not deterministic or wrong size")
	}
	all := append(slices.Clone(tr), va...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatal("split is not a partition")
		}
	}
	_, va3, _ := Split(100, 0.1, 4)
	if slices.Equal(va, va3) {
		t.Fatal("seed does not change the split")
	}
	if _, v, _ := Split(5, 0.01, 1); len(v) != 1 {
		t.Fatal("tiny fraction gives no validation episode")
	}
	if _, _, err := Split(5, 1, 1); err == nil {
		t.Fatal("fraction 1 accepted")
	}
}

func TestReplayBuffer(t *testing.T) {
	r, err := NewReplayBuffer(3)
	if err != nil {
		t.Fatal(err)
	}
	sp := DefaultSpecials()
	for i := 0; i < 5; i++ {
		if err := r.Add(GenSeq([]int32{UserID, AssistantID}, []int32{int32(10 + i), BkspcID, int32(20 + i), EndID}, i%2 == 0, sp)); err != nil {
			t.Fatal(err)
		}
	}
	all := r.All()
	if r.Len() != 3 || r.Added() != 5 || all[0].Items[0].Tok != 12 || all[2].Items[0].Tok != 14 {
		t.Fatalf("FIFO order wrong: len %d", r.Len())
	}
	path := filepath.Join(t.TempDir(), "replay.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadReplayBuffer(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.All(), r.All()) || back.Added() != 5 || back.Cap() != 3 {
		t.Fatal("replay buffer changed on save/load")
	}
	b, err := Compile(back.Sample(2, rand.New(rand.NewPCG(1, 1))), 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range b.Trans {
		if tr.Set != SetG {
			t.Fatal("generation not in set G")
		}
	}
	if err := r.Add(GenSeq([]int32{UserID}, []int32{BkspcID}, false, sp)); err == nil {
		t.Fatal("backspace below the prompt accepted")
	}
	raw, _ := os.ReadFile(path)
	bad := strings.Replace(string(raw), `"version":1`, `"version":9`, 1)
	if _, err := ParseReplayBuffer([]byte(bad)); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("bad version: %v", err)
	}
}

func FuzzParseReplayBuffer(f *testing.F) {
	f.Add([]byte(`{"format":"smtrain-replay","version":1,"capacity":2,"added":1,"seqs":[{"prompt":[4,5],"toks":[10,2,6],"kinds":[0,0,0],"done":true,"t0":0,"bkspc":2,"pad":0}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ParseReplayBuffer(raw)
		if err != nil {
			return
		}
		for _, s := range r.All() {
			if _, err := Compile([]*ActionSeq{s}, s.NumInputs()+1); err != nil {
				t.Fatalf("loaded sequence does not compile: %v", err)
			}
		}
	})
}

func TestArith(t *testing.T) {
	cfg := ArithConfig{Digits: 3, Seed: 1, NTrain: 2000, NTest: 500, Op: "mixed"}
	tr, te, err := ArithSplits(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr2, te2, _ := ArithSplits(cfg)
	if !reflect.DeepEqual(tr, tr2) || !reflect.DeepEqual(te, te2) {
		t.Fatal("splits not deterministic")
	}
	qs := map[string]bool{}
	ops := map[byte]int{}
	for _, p := range tr {
		qs[p.Question] = true
		ops[p.Op]++
		if p.A < 100 || p.A > 999 || p.B < 100 || p.B > 999 {
			t.Fatalf("operand out of range: %+v", p)
		}
	}
	if len(qs) != len(tr) || len(tr) != 2000 || len(te) != 500 {
		t.Fatal("duplicate training questions or wrong sizes")
	}
	for _, p := range te {
		if qs[p.Question] {
			t.Fatalf("test question %q in the training set", p.Question)
		}
	}
	if ops['+'] < 800 || ops['-'] < 800 {
		t.Fatalf("mixed ops %v", ops)
	}
	p := ArithConfig{Base: 10}
	_ = p.defaults()
	q := p.newProblem(23, 45, '+')
	if q.Question != "23+45=" || q.Answer != "68" || !q.Correct(" 68\n") || q.Correct("86") || q.Correct("680") {
		t.Fatalf("problem %+v", q)
	}
	q = p.newProblem(5, 12, '-')
	if q.Question != "12-5=" || q.Answer != "7" {
		t.Fatalf("subtraction %+v", q)
	}
	p.Reversed = true
	if q = p.newProblem(99, 99, '+'); q.Answer != "891" {
		t.Fatalf("reversed %+v", q)
	}
	p = ArithConfig{Base: 16, Reversed: false}
	_ = p.defaults()
	if q = p.newProblem(255, 1, '+'); q.Question != "ff+1=" || q.Answer != "100" {
		t.Fatalf("base 16 %+v", q)
	}
	// small space: enumeration, exactly all questions
	tr, te, err = ArithSplits(ArithConfig{Digits: 1, Base: 4, NTrain: 10, NTest: 6, Seed: 2})
	if err != nil || len(tr)+len(te) != 16 {
		t.Fatalf("small space: %v", err)
	}
	if _, _, err := ArithSplits(ArithConfig{Digits: 1, Base: 4, NTrain: 10, NTest: 7}); err == nil {
		t.Fatal("more questions than exist accepted")
	}
	// as sequences: prompt <|user|> q <|assistant|>, actions answer + <|end|>
	seqs, err := ArithSeqs(ArithTokenizer(), tr[:3])
	if err != nil {
		t.Fatal(err)
	}
	if seqs[0].NumActions() != len(tr[0].Answer)+1 || seqs[0].Prompt[0] != UserID {
		t.Fatal("arith sequence layout")
	}
}

// transitionsAsPrefixes compiles seqs and describes every transition by the
// token prefixes of its state and next state.
func transitionsAsPrefixes(t *testing.T, seqs []*ActionSeq) []string {
	T := 1
	for _, s := range seqs {
		T = max(T, s.NumInputs())
	}
	b, err := Compile(seqs, T)
	if err != nil {
		t.Fatal(err)
	}
	prefix := func(idx int32) []int32 {
		if idx < 0 {
			return nil
		}
		r, j := int(idx)/T, int(idx)%T
		var toks []int32
		for _, k := range b.Ancestors(r, j) {
			toks = append(toks, b.Inputs[r*T+int(k)])
		}
		slices.Reverse(toks)
		return toks
	}
	var out []string
	for _, tr := range b.Trans {
		out = append(out, fmt.Sprint(prefix(tr.State), tr.Action, prefix(tr.Next), tr.Done, tr.T, tr.Set))
	}
	return out
}

func TestSplitTurnsSameTransitions(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for iter := 0; iter < 300; iter++ {
		s := randomSeq(rng)
		parts, err := SplitTurns(s)
		if err != nil {
			t.Fatal(err)
		}
		whole := transitionsAsPrefixes(t, []*ActionSeq{s})
		split := transitionsAsPrefixes(t, parts)
		if !slices.Equal(whole, split) {
			t.Fatalf("split transitions differ:\n%v\n%v", whole, split)
		}
		for k, p := range parts[:len(parts)-1] {
			if p.Done {
				t.Fatalf("part %d of %d is done", k, len(parts))
			}
		}
	}
	tok := ByteTokenizer()
	eps := []Episode{{Messages: []Message{{RoleUser, "q"}, {RoleAssistant, "a1"}, {RoleUser, "o"}, {RoleAssistant, "a2"}}}}
	seqs, st, err := BuildSeqs(tok, eps, 64, SeqTurn)
	if err != nil || len(seqs) != 2 || st.Actions != 6 {
		t.Fatalf("per turn: %v %d %+v", err, len(seqs), st)
	}
}

// nextBatch is the loader's next batch compiled to its longest row, as
// the trainer compiles it.
func nextBatch(l *Loader, c *Cursor) (*Batch, error) {
	seqs, err := l.NextSeqs(c)
	if err != nil {
		return nil, err
	}
	longest := 0
	for _, s := range seqs {
		longest = max(longest, s.NumInputs())
	}
	return Compile(seqs, longest)
}

// TestLoaderCursorPastEpochEnd: a cursor restored at the end of its epoch
// (Index = batches per epoch) gives the next epoch's batches, as a cursor
// at (Epoch+1, 0) does, and ends at the same place.
func TestLoaderCursorPastEpochEnd(t *testing.T) {
	tok := ByteTokenizer()
	mk := func() *Loader {
		return &Loader{Seqs: seqsForLoader(23), BatchSize: 5, T: 20, Seed: 4, BucketBatches: 2,
			Augment: &AugmentOptions{Eta: 0.2, Vocab: tok.OrdinaryIDs(), Specials: tok.Specials()}}
	}
	a, b := mk(), mk()
	ca, cb := Cursor{Epoch: 2, Index: a.BatchesPerEpoch()}, Cursor{Epoch: 3, Index: 0}
	for k := 0; k < 9; k++ {
		want, err := nextBatch(b, &cb)
		if err != nil {
			t.Fatal(err)
		}
		got, err := nextBatch(a, &ca)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || ca != cb {
			t.Fatalf("step %d: batches or cursors differ (%+v, %+v)", k, ca, cb)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add([]byte(`{"epoch":3,"index":7}`))
	f.Add([]byte(`{"epoch":-1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseCursor(raw)
		if err != nil {
			return
		}
		if c.Epoch < 0 || c.Index < 0 {
			t.Fatalf("negative cursor accepted: %+v", c)
		}
		b, _ := json.Marshal(c)
		if c2, err := ParseCursor(b); err != nil || c2 != c {
			t.Fatalf("cursor does not round-trip: %v", err)
		}
	})
}

// TestBuildSeqsAuto: an episode that fits T stays whole; one that does not
// is split per assistant turn, so no action is lost to truncation.
func TestBuildSeqsAuto(t *testing.T) {
	tok := ByteTokenizer()
	short := Episode{Messages: []Message{{RoleUser, "q"}, {RoleAssistant, "a1"}, {RoleUser, "o"}, {RoleAssistant, "a2"}}}
	long := Episode{Messages: []Message{{RoleUser, strings.Repeat("q", 30)}, {RoleAssistant, "b1"},
		{RoleUser, strings.Repeat("o", 30)}, {RoleAssistant, "b2"}, {RoleUser, strings.Repeat("p", 30)}, {RoleAssistant, "b3"}}}
	const T = 48
	whole, _, err := BuildSeqs(tok, []Episode{short}, 0, SeqEpisode)
	if err != nil || whole[0].NumInputs() > T {
		t.Fatalf("short episode must fit T: %v", err)
	}
	seqs, st, err := BuildSeqs(tok, []Episode{short, long}, T, SeqAuto)
	if err != nil {
		t.Fatal(err)
	}
	_, turn, _ := BuildSeqs(tok, []Episode{long}, T, SeqTurn)
	_, epi, _ := BuildSeqs(tok, []Episode{long}, T, SeqEpisode)
	if len(seqs) != 1+3 || st.Actions != whole[0].NumActions()+turn.Actions {
		t.Fatalf("auto: %d seqs, %d actions; want 4 seqs, %d actions", len(seqs), st.Actions, whole[0].NumActions()+turn.Actions)
	}
	if epi.Actions >= turn.Actions {
		t.Fatalf("the long episode should lose actions when kept whole (%d vs %d per turn)", epi.Actions, turn.Actions)
	}
}

// TestBuildSeqsAutoMergesLeadingTurns: a long episode split per turn keeps
// its first turns together in one sequence as far as they fit T (their
// shared history computed once), every action still in exactly one
// sequence, and that sequence is the whole episode's prefix.
func TestBuildSeqsAutoMergesLeadingTurns(t *testing.T) {
	tok := ByteTokenizer()
	ep := Episode{Messages: []Message{{RoleUser, strings.Repeat("q", 20)}, {RoleAssistant, "b1"},
		{RoleUser, "o1"}, {RoleAssistant, "b2"}, {RoleUser, "o2"}, {RoleAssistant, "b3"},
		{RoleUser, strings.Repeat("p", 40)}, {RoleAssistant, "b4"}}}
	whole, _, err := BuildSeqs(tok, []Episode{ep}, 0, SeqEpisode)
	if err != nil {
		t.Fatal(err)
	}
	T := whole[0].NumInputs() - 1 // all but the last turn fit
	auto, sa, err := BuildSeqs(tok, []Episode{ep}, T, SeqAuto)
	if err != nil {
		t.Fatal(err)
	}
	_, st, err := BuildSeqs(tok, []Episode{ep}, T, SeqTurn)
	if err != nil {
		t.Fatal(err)
	}
	if len(auto) != 2 || st.Seqs != 4 || sa.Actions != st.Actions || sa.Actions != whole[0].NumActions() {
		t.Fatalf("auto: %d seqs, %d actions; per turn %d seqs, %d actions; whole %d actions (%d inputs)", len(auto), sa.Actions, st.Seqs, st.Actions, whole[0].NumActions(), whole[0].NumInputs())
	}
	first := auto[0]
	if first.NumInputs() > T || first.Done || !slices.Equal(first.Prompt, whole[0].Prompt) ||
		!slices.Equal(first.Items, whole[0].Items[:len(first.Items)]) {
		t.Fatalf("first sequence is not the episode's first three turns within T: %d inputs, done %v", first.NumInputs(), first.Done)
	}
	b, err := Compile(auto, T)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Trans) != sa.Actions {
		t.Fatalf("%d transitions for %d actions", len(b.Trans), sa.Actions)
	}
}
