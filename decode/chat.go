package decode

import (
	"context"
	"fmt"

	"smtrain/data"
	"smtrain/model"
)

// ChatPrompt returns the prompt tokens for a chat history followed by a new
// assistant turn, laid out with the training chat template (data.ChatSeq)
// and left-truncated the way training truncates (data.Truncate, whole turns
// where possible) to at most maxLen tokens.
func ChatPrompt(tok *data.Tokenizer, msgs []data.Message, maxLen int) ([]int32, error) {
	all := append(append([]data.Message(nil), msgs...), data.Message{Role: data.RoleAssistant})
	seq, err := data.ChatSeq(tok, all)
	if err != nil {
		return nil, err
	}
	// The open assistant turn's only action is its terminal <|end|>, which
	// takes no input slot, so NumInputs counts exactly the prompt tokens.
	if seq.NumInputs() > maxLen {
		if seq, _, err = data.Truncate(seq, maxLen); err != nil {
			return nil, err
		}
	}
	out := append([]int32(nil), seq.Prompt...)
	items := seq.Items
	if seq.Done && len(items) > 0 {
		items = items[:len(items)-1] // the open turn's <|end|>
	}
	for _, it := range items {
		out = append(out, it.Tok)
	}
	if len(out) == 0 || out[len(out)-1] != tok.AssistantID() {
		return nil, fmt.Errorf("chat prompt: history does not fit in %d tokens", maxLen)
	}
	return out, nil
}

// ChatPolicy samples assistant turns from a model for chat histories, with
// the same template and truncation as training. It is safe for concurrent
// use: each call builds its own decoders.
type ChatPolicy struct {
	Params *model.Params
	// Weights, when set, are what the decoders multiply with (made from
	// Params, e.g. in f16; model.DecoderWeights); nil: Params as they are.
	Weights *model.DecoderWeights
	Tok     *data.Tokenizer
	// Opts are the base sampling options; Seed is set per call.
	Opts Options
}

// NewChatPolicy returns a policy with sampling options o, completed by
// OptionsFor from the tokenizer and the model (its padded vocabulary rows
// and the chat template's markers are never sampled).
func NewChatPolicy(p *model.Params, tok *data.Tokenizer, o Options) *ChatPolicy {
	o = OptionsFor(tok, Settings{Base: o, ModelVocab: p.Cfg.VocabSize, ContextLen: p.Cfg.NPositions})
	return &ChatPolicy{Params: p, Tok: tok, Opts: o}
}

// Factory returns a decoder factory over the policy's parameters (its
// Weights when set).
func (c *ChatPolicy) Factory() Factory {
	if c.Weights != nil {
		return WeightsFactory(c.Weights)
	}
	return ModelFactory(c.Params)
}

// Complete samples n assistant turns for msgs with the given seed. The
// prompt is truncated to leave room for MaxNewTokens.
func (c *ChatPolicy) Complete(ctx context.Context, msgs []data.Message, n int, seed uint64) ([]Result, Stats, error) {
	room := c.Opts.ContextLen - c.Opts.MaxNewTokens
	if room < 2 {
		return nil, Stats{}, fmt.Errorf("context %d leaves no room for a prompt with max new tokens %d", c.Opts.ContextLen, c.Opts.MaxNewTokens)
	}
	p, err := ChatPrompt(c.Tok, msgs, room)
	if err != nil {
		return nil, Stats{}, err
	}
	prompts := make([][]int32, n)
	for i := range prompts {
		prompts[i] = p
	}
	o := c.Opts
	o.Seed = seed
	return Generate(ctx, c.Factory(), prompts, o)
}
