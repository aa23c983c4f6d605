package data

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func acts(toks ...int32) []Item {
	out := make([]Item, len(toks))
	for i, t := range toks {
		out[i] = Item{t, KindAction}
	}
	return out
}

func obs(toks ...int32) []Item {
	out := make([]Item, len(toks))
	for i, t := range toks {
		out[i] = Item{t, KindObs}
	}
	return out
}

// The worked example of DESIGN 3.1: actions a b c ⌫ d <eos> after prompt p.
func TestCompileDesignExample(t *testing.T) {
	const p, a, bb, c, d = 10, 11, 12, 13, 14
	s := &ActionSeq{
		Prompt: []int32{p},
		Items:  acts(a, bb, c, BkspcID, d, EOSID),
		Done:   true, Bkspc: BkspcID, Pad: PadID, Set: SetD,
	}
	b, err := Compile([]*ActionSeq{s}, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := &Batch{
		B: 1, T: 8,
		Inputs:       []int32{p, a, bb, c, d, 0, 0, 0},
		Positions:    []int32{0, 1, 2, 3, 3, 0, 0, 0},
		Parents:      []int32{-1, 0, 1, 2, 2, -1, -1, -1},
		Lengths:      []int{5},
		BkspcAllowed: []bool{false, true, true, true, true, false, false, false},
		Trans: []Transition{
			{State: 0, Action: a, Next: 1, T: 0},
			{State: 1, Action: bb, Next: 2, T: 1},
			{State: 2, Action: c, Next: 3, T: 2},
			{State: 3, Action: BkspcID, Next: 2, T: 3},
			{State: 2, Action: d, Next: 4, T: 4},
			{State: 4, Action: EOSID, Next: -1, Done: true, T: 5},
		},
		PadID: PadID,
	}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("got  %+v\nwant %+v", b, want)
	}
	// d attends to p a b d (not c)
	var att []int32
	for _, k := range b.Ancestors(0, 4) {
		att = append(att, b.Inputs[k])
	}
	slices.Reverse(att)
	if !slices.Equal(att, []int32{p, a, bb, d}) {
		t.Fatalf("d attends to %v", att)
	}
}

// Multi-turn: the end-of-turn transition links to the last input of the
// following observation; the final end-of-turn is terminal.
func TestCompileMultiTurn(t *testing.T) {
	const x, y, z, w = 20, 21, 22, 23
	items := append(acts(y, EndID), obs(UserID, z, AssistantID)...)
	items = append(items, acts(w, EndID)...)
	s := &ActionSeq{Prompt: []int32{UserID, x, AssistantID}, Items: items, Done: true, Bkspc: BkspcID, Pad: PadID, Set: SetG}
	b, err := Compile([]*ActionSeq{s}, 10)
	if err != nil {
		t.Fatal(err)
	}
	wantIn := []int32{UserID, x, AssistantID, y, EndID, UserID, z, AssistantID, w, PadID}
	if !slices.Equal(b.Inputs, wantIn) {
		t.Fatalf("inputs %v want %v", b.Inputs, wantIn)
	}
	if !slices.Equal(b.Positions, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 0}) {
		t.Fatalf("positions %v", b.Positions)
	}
	if !slices.Equal(b.BkspcAllowed, []bool{false, false, false, true, true, false, false, false, true, false}) {
		t.Fatalf("bkspc allowed %v", b.BkspcAllowed)
	}
	want := []Transition{
		{State: 2, Action: y, Next: 3, T: 0, Set: SetG},
		{State: 3, Action: EndID, Next: 7, T: 1, Set: SetG},
		{State: 7, Action: w, Next: 8, T: 2, Set: SetG},
		{State: 8, Action: EndID, Next: -1, Done: true, T: 3, Set: SetG},
	}
	if !reflect.DeepEqual(b.Trans, want) {
		t.Fatalf("trans %+v\nwant %+v", b.Trans, want)
	}
	// a backspace right after the observation is below the floor
	bad := s.Clone()
	bad.Items = append(append(acts(y, EndID), obs(UserID, z, AssistantID)...), acts(BkspcID, w, EndID)...)
	if _, err := Compile([]*ActionSeq{bad}, 10); err == nil {
		t.Fatal("backspace across the observation floor accepted")
	}
}

func TestCompileCutOffBootstraps(t *testing.T) {
	s := &ActionSeq{Prompt: []int32{UserID, AssistantID}, Items: acts(30, 31), Done: false, Bkspc: BkspcID, Pad: PadID}
	b, err := Compile([]*ActionSeq{s}, 4)
	if err != nil {
		t.Fatal(err)
	}
	last := b.Trans[len(b.Trans)-1]
	if last.Done || last.Next != 3 || b.Lengths[0] != 4 {
		t.Fatalf("cut-off episode: last transition %+v, length %d", last, b.Lengths[0])
	}
	if _, err := Compile([]*ActionSeq{s}, 3); err == nil {
		t.Fatal("sequence longer than T accepted")
	}
	if _, err := Compile([]*ActionSeq{{Items: acts(3)}}, 4); err == nil {
		t.Fatal("empty prompt accepted")
	}
}

func TestCompileNoiseNotTrained(t *testing.T) {
	s := &ActionSeq{Prompt: []int32{EOSID}, Items: []Item{{40, KindAction}, {41, KindNoise}, {BkspcID, KindAction}, {42, KindAction}, {EOSID, KindAction}}, Done: true, Bkspc: BkspcID, Pad: PadID}
	b, err := Compile([]*ActionSeq{s}, 6)
	if err != nil {
		t.Fatal(err)
	}
	var ts []int32
	for _, tr := range b.Trans {
		ts = append(ts, tr.T)
	}
	// the noise transition (t=1) is left out but counted
	if !slices.Equal(ts, []int32{0, 2, 3, 4}) {
		t.Fatalf("discount indices %v", ts)
	}
	if b.Trans[1].State != 2 || b.Trans[1].Action != BkspcID || b.Trans[1].Next != 1 {
		t.Fatalf("backspace transition %+v", b.Trans[1])
	}
	s.NoiseAsAction = true
	b, _ = Compile([]*ActionSeq{s}, 6)
	if len(b.Trans) != 5 || b.Trans[1].Action != 41 || b.Trans[1].T != 1 {
		t.Fatalf("noise as action: %+v", b.Trans)
	}
}

// randomSeq builds a valid random sequence with prompts, observations,
// backspaces and noise.
func randomSeq(rng *rand.Rand) *ActionSeq {
	s := &ActionSeq{Bkspc: BkspcID, Pad: PadID, Set: Set(rng.IntN(2)), NoiseAsAction: rng.IntN(3) == 0, T0: int32(rng.IntN(3))}
	np := 1 + rng.IntN(4)
	for i := 0; i < np; i++ {
		s.Prompt = append(s.Prompt, int32(10+rng.IntN(20)))
	}
	above := 0 // tokens above the floor
	nItems := rng.IntN(40)
	for i := 0; i < nItems; i++ {
		switch r := rng.IntN(10); {
		case r < 1:
			no := 1 + rng.IntN(3)
			for j := 0; j < no; j++ {
				s.Items = append(s.Items, Item{int32(10 + rng.IntN(20)), KindObs})
			}
			above = 0
		case r < 3 && above > 0:
			s.Items = append(s.Items, Item{BkspcID, KindAction})
			above--
		case r < 4:
			s.Items = append(s.Items, Item{int32(10 + rng.IntN(20)), KindNoise})
			above++
		default:
			s.Items = append(s.Items, Item{int32(10 + rng.IntN(20)), KindAction})
			above++
		}
	}
	if rng.IntN(2) == 0 {
		s.Items = append(s.Items, Item{EOSID, KindAction})
		s.Done = true
	}
	return s
}

// Invariants on random sequences, checked against a direct simulation of
// the token prefix: the ancestor chain of every State spells the prefix the
// action was chosen at, the chain of Next the prefix after it (and after
// the following observation), positions equal depth, inputs = pushes,
// backspaces never cross the floor.
func TestCompileRandomInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 400; iter++ {
		var seqs []*ActionSeq
		for k := 0; k < 3; k++ {
			seqs = append(seqs, randomSeq(rng))
		}
		T := 0
		for _, s := range seqs {
			T = max(T, s.NumInputs())
		}
		T += rng.IntN(3)
		b, err := Compile(seqs, T)
		if err != nil {
			t.Fatal(err)
		}
		chain := func(row int) func(idx int32) []int32 {
			return func(idx int32) []int32 {
				j := int(idx) - row*T
				if j < 0 || j >= T {
					t.Fatalf("index %d outside row %d", idx, row)
				}
				var toks []int32
				for _, k := range b.Ancestors(row, j) {
					toks = append(toks, b.Inputs[row*T+int(k)])
				}
				slices.Reverse(toks)
				return toks
			}
		}
		ti := 0
		for r, s := range seqs {
			ch := chain(r)
			// positions = depth, parents earlier, pushes = inputs
			for j := 0; j < b.Lengths[r]; j++ {
				k := r*T + j
				if int(b.Positions[k]) != len(b.Ancestors(r, j))-1 {
					t.Fatalf("position %d != depth at row %d input %d", b.Positions[k], r, j)
				}
				if b.Parents[k] >= int32(j) {
					t.Fatalf("parent %d not before %d", b.Parents[k], j)
				}
			}
			if b.Lengths[r] != s.NumInputs() {
				t.Fatalf("length %d != NumInputs %d", b.Lengths[r], s.NumInputs())
			}
			for j := b.Lengths[r]; j < T; j++ {
				k := r*T + j
				if b.Inputs[k] != PadID || b.Parents[k] != -1 || b.BkspcAllowed[k] {
					t.Fatal("bad padding")
				}
			}
			// simulate
			prefix := append([]int32(nil), s.Prompt...)
			floor := len(prefix)
			tIdx := s.T0
			last := s.lastAgent()
			for i := 0; i < len(s.Items); i++ {
				it := s.Items[i]
				if it.Kind == KindObs {
					prefix = append(prefix, it.Tok)
					floor = len(prefix)
					continue
				}
				before := append([]int32(nil), prefix...)
				terminal := s.Done && i == last
				if it.Tok == BkspcID {
					if len(prefix) <= floor {
						t.Fatal("generator made an invalid sequence")
					}
					prefix = prefix[:len(prefix)-1]
				} else if !terminal {
					prefix = append(prefix, it.Tok)
				}
				hadObs := false
				for i+1 < len(s.Items) && s.Items[i+1].Kind == KindObs {
					i++
					prefix = append(prefix, s.Items[i].Tok)
					floor = len(prefix)
					hadObs = true
				}
				trained := it.Kind == KindAction || s.NoiseAsAction
				if trained {
					tr := b.Trans[ti]
					ti++
					if tr.Seq != int32(r) || tr.Set != s.Set || tr.T != tIdx || tr.Action != it.Tok || tr.Done != terminal {
						t.Fatalf("transition %+v for item %d %+v", tr, i, it)
					}
					if got := ch(tr.State); !slices.Equal(got, before) {
						t.Fatalf("state chain %v != prefix %v", got, before)
					}
					if it.Tok == BkspcID && !b.BkspcAllowed[tr.State] {
						t.Fatal("backspace at a state where it is not allowed")
					}
					if terminal {
						if tr.Next != -1 {
							t.Fatal("terminal with next")
						}
					} else {
						if got := ch(tr.Next); !slices.Equal(got, prefix) {
							t.Fatalf("next chain %v != prefix %v", got, prefix)
						}
						if it.Tok == BkspcID && !hadObs {
							// a backspace returns to the state's parent
							if tr.Next != int32(r*T)+b.Parents[tr.State] {
								t.Fatal("backspace next is not the parent of its state")
							}
						} else if it.Tok != BkspcID {
							// State is an ancestor of Next
							anc := b.Ancestors(r, int(tr.Next)-r*T)
							if !slices.Contains(anc[1:], tr.State-int32(r*T)) {
								t.Fatal("state not an ancestor of next")
							}
						}
					}
				}
				tIdx++
			}
		}
		if ti != len(b.Trans) {
			t.Fatalf("%d transitions, simulated %d", len(b.Trans), ti)
		}
	}
}

// seqFromBytes decodes fuzz input into an action sequence (possibly invalid).
func seqFromBytes(b []byte) (*ActionSeq, int) {
	s := &ActionSeq{Bkspc: BkspcID, Pad: PadID}
	if len(b) < 2 {
		return s, 2
	}
	T := 2 + int(b[0]%40)
	np := int(b[1] % 5)
	b = b[2:]
	for i := 0; i < np && i < len(b); i++ {
		s.Prompt = append(s.Prompt, int32(10+b[i]%20))
	}
	if np < len(b) {
		b = b[np:]
	} else {
		b = nil
	}
	for _, c := range b {
		tok := int32(10 + (c/8)%20)
		switch c % 8 {
		case 0, 1, 2:
			s.Items = append(s.Items, Item{tok, KindAction})
		case 3:
			s.Items = append(s.Items, Item{BkspcID, KindAction})
		case 4:
			s.Items = append(s.Items, Item{tok, KindNoise})
		case 5:
			s.Items = append(s.Items, Item{tok, KindObs})
		case 6:
			s.Items = append(s.Items, Item{EOSID, KindAction})
		case 7:
			s.NoiseAsAction = !s.NoiseAsAction
		}
	}
	if len(s.Items) > 0 && s.Items[len(s.Items)-1].Tok == EOSID {
		s.Done = true
	}
	return s, T
}

// Any valid sequence truncates to fit any context >= 2 and then compiles,
// with one transition per trained action.
func FuzzTruncateCompile(f *testing.F) {
	f.Add([]byte{10, 1, 3, 0, 8, 16, 3, 24, 6})
	f.Add([]byte{3, 2, 1, 2, 5, 13, 0, 3, 8, 4, 3, 6})
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, T := seqFromBytes(raw)
		if s.Validate() != nil {
			if _, err := Compile([]*ActionSeq{s}, 64); err == nil {
				t.Fatal("invalid sequence compiled")
			}
			return
		}
		tr, _, err := Truncate(s, T)
		if err != nil {
			t.Fatal(err)
		}
		if tr.NumInputs() > T {
			t.Fatalf("%d inputs > T=%d", tr.NumInputs(), T)
		}
		b, err := Compile([]*ActionSeq{tr}, T)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Trans) != tr.NumActions() || b.Lengths[0] != tr.NumInputs() {
			t.Fatalf("%d transitions for %d actions", len(b.Trans), tr.NumActions())
		}
		parts, err := SplitTurns(s)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range parts {
			n += p.NumActions()
		}
		if n != s.NumActions() {
			t.Fatalf("split turns: %d actions, whole %d", n, s.NumActions())
		}
	})
}
