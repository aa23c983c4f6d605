package main

import (
	"errors"
	"flag"

	"smtrain/model"
)

// weightsFlag is -weights of the commands that decode (sample, serve,
// rollout): the format their decoders multiply with (model.DecoderWeights).
type weightsFlag struct{ format string }

var _ flag.Value = (*weightsFlag)(nil)

func addWeightsFlag(fs *flag.FlagSet) *weightsFlag {
	w := &weightsFlag{format: model.WeightsF32}
	fs.Var(w, "weights", "decoder weights: `f32|f16`; f16 multiplies with a half-precision copy of the weight matrices made at load "+
		"(the checkpoint stays f32): about twice the batch-1 decoding speed, logits within a few thousandths of f32's")
	return w
}

func (w *weightsFlag) String() string {
	if w == nil || w.format == "" {
		return model.WeightsF32
	}
	return w.format
}

func (w *weightsFlag) Set(v string) error {
	switch v {
	case model.WeightsF32, model.WeightsF16:
		w.format = v
		return nil
	}
	return errors.New("must be f32 or f16")
}

// load returns the weights decoders of p multiply with, in the flag's
// format (f16: converted now, once).
func (w *weightsFlag) load(p *model.Params) (*model.DecoderWeights, error) {
	return model.NewDecoderWeights(p, w.String())
}
