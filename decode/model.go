package decode

import "smtrain/model"

var _ Stepper = (*model.Decoder)(nil)

// ModelFactory returns a Factory building KV-cache decoders over the
// float32 parameters p (shared read-only by every decoder it makes).
func ModelFactory(p *model.Params) Factory {
	return func(nseq, maxLen int) (Stepper, error) {
		return model.NewDecoder(p, nseq, maxLen)
	}
}

// WeightsFactory returns a Factory building KV-cache decoders that
// multiply with weights w (f32 or a half-precision copy,
// model.DecoderWeights), shared read-only by every decoder it makes.
func WeightsFactory(w *model.DecoderWeights) Factory {
	return func(nseq, maxLen int) (Stepper, error) {
		return model.NewDecoderWith(w, nseq, maxLen)
	}
}

// ModelOptions returns DefaultOptions adapted to cfg: <bkspc> and <eos> ids
// from the config (no <bkspc> when the vocabulary has none) and the context
// window n_positions.
func ModelOptions(cfg model.Config) Options {
	o := DefaultOptions()
	o.BkspcID = int32(cfg.BkspcTokenID)
	o.AllowBkspc = cfg.BkspcTokenID >= 0
	o.ContextLen = cfg.NPositions
	o.StopTokens = []int32{int32(cfg.EOSTokenID)}
	if int(EndID) < cfg.VocabSize && int32(cfg.EOSTokenID) != EndID {
		o.StopTokens = append(o.StopTokens, EndID)
	}
	return o
}
