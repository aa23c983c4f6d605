package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"smtrain/data"
	"smtrain/model"
)

// TestPolicyLogitsAtQueriedState: the policy-noise logits of a query are
// the model's logits at the state before the queried action, the same as
// those before the first action of the sequence whose prompt already holds
// the earlier actions (attention is causal), and not those of another
// state of the row.
func TestPolicyLogitsAtQueriedState(t *testing.T) {
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
	full := data.GenSeq([]int32{sp.User, a, sp.Assistant}, []int32{a, b, a, b, sp.End}, true, sp)
	prefix := data.GenSeq([]int32{sp.User, a, sp.Assistant, a, b, a}, []int32{b, sp.End}, true, sp)
	got, err := ev.PolicyLogits([]*data.ActionSeq{full}, []data.NoiseQuery{{Seq: 0, Item: 3}, {Seq: 0, Item: 0}})
	if err != nil {
		t.Fatal(err)
	}
	atItem3 := append([]float32(nil), got[0]...)
	atItem0 := append([]float32(nil), got[1]...)
	want, err := ev.PolicyLogits([]*data.ActionSeq{prefix}, []data.NoiseQuery{{Seq: 0, Item: 0}})
	if err != nil {
		t.Fatal(err)
	}
	maxDiff := func(x, y []float32) float64 {
		d := 0.0
		for i := range x {
			d = max(d, math.Abs(float64(x[i]-y[i])))
		}
		return d
	}
	if len(atItem3) != tok.VocabSize() || len(want[0]) != tok.VocabSize() {
		t.Fatalf("rows of %d and %d logits, want %d", len(atItem3), len(want[0]), tok.VocabSize())
	}
	if d := maxDiff(atItem3, want[0]); d > 1e-4 {
		t.Fatalf("logits before item 3 differ from those after the same prefix by %g", d)
	}
	if d := maxDiff(atItem3, atItem0); d < 1e-4 {
		t.Fatalf("logits before items 3 and 0 agree (%g): the query's state is not used", d)
	}
}
