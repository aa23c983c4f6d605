package decode

import (
	"slices"
	"testing"

	"smtrain/data"
	"smtrain/model"
)

// TestWeightsFactory: WeightsFactory's decoders, and a ChatPolicy's with
// Weights set, multiply with those weights: f16 weights give the logits of
// model.NewDecoderWith on them, not the f32 ones.
func TestWeightsFactory(t *testing.T) {
	tok := data.ByteTokenizer()
	cfg := model.Tiny
	cfg.VocabSize = tok.VocabSize()
	p := randomModel(t, cfg, 8)
	w16, err := model.NewDecoderWeights(p, model.WeightsF16)
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{5, 6, 7}
	logits := func(f Factory) []float32 {
		t.Helper()
		st, err := f(1, 8)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Prefill(0, prompt); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(st.Logits(0))
	}
	direct := logits(func(nseq, maxLen int) (Stepper, error) { return model.NewDecoderWith(w16, nseq, maxLen) })
	cp := NewChatPolicy(p, tok, DefaultOptions())
	f32 := logits(cp.Factory())
	cp.Weights = w16
	for name, got := range map[string][]float32{"WeightsFactory": logits(WeightsFactory(w16)), "ChatPolicy.Factory": logits(cp.Factory())} {
		if !slices.Equal(got, direct) {
			t.Errorf("%s with f16 weights: logits differ from model.NewDecoderWith's", name)
		}
	}
	if slices.Equal(f32, direct) {
		t.Error("f16 and f32 logits are equal: the f16 weights are not used")
	}
}
