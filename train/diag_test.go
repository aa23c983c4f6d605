package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/model"
)

// TestBkspcDiagHandBuilt checks the diagnostics on decodes whose answers
// are known: reference "47", <bkspc> = 1000, stop = 999.
func TestBkspcDiagHandBuilt(t *testing.T) {
	const bk, stop = 1000, 999
	refs := [][]int32{{4, 7}}
	cases := []struct {
		actions []int32
		correct bool
	}{
		{[]int32{4, 7, stop}, true},        // clean
		{[]int32{4, 8, bk, 7, stop}, true}, // diverges at 1, backspaces, corrected
		{[]int32{4, bk, 4, 7, stop}, true}, // a false backspace on track
		{[]int32{5, 3, stop}, false},       // diverges at 0, no backspace
		{[]int32{4, stop}, false},          // wrong stop, no divergence
		{[]int32{4, 7, 7}, false},          // too long (diverges at 2), cut
	}
	var d BkspcDiag
	for i, c := range cases {
		if got := d.Add(c.actions, refs, bk, []int32{stop}); got != c.correct {
			t.Fatalf("case %d: correct = %v, want %v", i, got, c.correct)
		}
	}
	want := BkspcDiag{Answers: 6, Correct: 3, Diverged: 3, DivergedBk: 1, DivPosSum: 3, OnTrack: 18, FalseBk: 1,
		Bk: 2, BkDiverged: 1, Corrections: 1, WrongStop: 1, WithBk: 2, NoStop: 1, ActionsTotal: 21}
	if d != want {
		t.Fatalf("diag = %#v\nwant   %#v", d, want)
	}
	m := d.Metrics("_x")
	for k, v := range map[string]float64{"bk_recall_x": 1.0 / 3, "false_bk_rate_x": 1.0 / 18, "bk_precision_x": 0.5,
		"corrections_x": 1.0 / 6, "corrected_share_x": 1.0 / 3, "diverged_x": 0.5, "first_div_pos_x": 1, "bk_answers_x": 1.0 / 3} {
		if math.Abs(m[k]-v) > 1e-12 {
			t.Fatalf("%s = %v, want %v", k, m[k], v)
		}
	}
	// several correct answers: on track while a prefix of any of them
	var e BkspcDiag
	if !e.Add([]int32{4, 8, stop}, [][]int32{{4, 7}, {4, 8}}, bk, []int32{stop}) || e.Diverged != 0 {
		t.Fatalf("second reference not accepted: %+v", e)
	}
	if !math.IsNaN(e.Recall()) || !math.IsNaN(e.Precision()) {
		t.Fatal("recall/precision without divergences or backspaces should be undefined")
	}
}

func TestRefIndexFromSeqs(t *testing.T) {
	tok := data.ByteTokenizer()
	s, err := data.ChatSeq(tok, []data.Message{{Role: data.RoleUser, Content: "1+2="}, {Role: data.RoleAssistant, Content: "3"}})
	if err != nil {
		t.Fatal(err)
	}
	idx := newRefIndex([]*data.ActionSeq{s, s})
	refs := idx[promptKey(s.Prompt)]
	if len(refs) != 1 || len(refs[0]) != 1 || refs[0][0] != tok.EncodeOrdinary("3")[0] {
		t.Fatalf("refs = %v, want the answer without its end-of-turn, once", refs)
	}
}

// TestBkspcByProbCounts: every pushed token (not <bkspc>, not the stop
// action) is binned once, and the tokens followed by <bkspc> are counted;
// the bin of a token follows its probability under the model.
func TestBkspcByProbCounts(t *testing.T) {
	tok := data.ByteTokenizer()
	cfg := DefaultConfig()
	cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.NPositions, cfg.Out = 1, 2, 16, 32, t.TempDir()
	p, err := model.NewParams(model.Config{NLayer: 1, NHead: 2, NEmbd: 16, NPositions: 32, VocabSize: tok.VocabSize(),
		LayerNormEpsilon: 1e-5, BkspcTokenID: int(tok.BkspcID()), EOSTokenID: int(tok.EOSID())}, model.F32, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewEvaluator(cfg, p, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	sp := tok.Specials()
	a, b := tok.EncodeOrdinary("a")[0], tok.EncodeOrdinary("b")[0]
	prompt := []int32{sp.User, a, sp.Assistant}
	rs := []decode.Result{
		{Prompt: prompt, Actions: []int32{a, b, sp.Bkspc, a, sp.End}, Stop: decode.StopToken}, // 3 pushed, 1 followed by ⌫
		{Prompt: prompt, Actions: []int32{b, sp.Bkspc, sp.Bkspc}, Stop: decode.StopToken},     // invalid (⌫ below the floor): left out
		{Prompt: prompt, Actions: []int32{b, b}, Stop: decode.StopMaxNewTokens},               // cut: 2 pushed
	}
	pb, err := ev.BkspcByProb(rs)
	if err != nil {
		t.Fatal(err)
	}
	pushed, bk := 0, 0
	for i := range pb.Pushed {
		pushed += pb.Pushed[i]
		bk += pb.Bk[i]
	}
	if pushed != 5 || bk != 1 {
		t.Fatalf("pushed %d, followed by ⌫ %d; want 5 and 1 (%+v)", pushed, bk, pb)
	}
	// a random 16-wide model over 263 tokens gives every token p < 0.1
	if pb.Pushed[0]+pb.Pushed[1] != 5 {
		t.Fatalf("bins %v: a near-uniform model put a token at p >= 0.1", pb.Pushed)
	}
}
