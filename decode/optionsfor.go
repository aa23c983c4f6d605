package decode

import "smtrain/data"

// Settings are what OptionsFor needs besides the tokenizer.
type Settings struct {
	// Base holds the caller's sampling choices (temperature, top-k/p,
	// greedy, lengths, seed, workers, grammar, AllowBkspc, extra Banned
	// ids); start it from DefaultOptions. Its tokenizer-dependent fields
	// are replaced.
	Base Options
	// ModelVocab is the number of logit rows of the model (its
	// vocab_size); 0 means the tokenizer's size. Rows past the tokenizer's
	// vocabulary (a vocab_size padded to a multiple of 64) have no token
	// and are never sampled.
	ModelVocab int
	// ContextLen is the model's context (n_positions); a Base.ContextLen
	// of 0 or above it becomes it. 0 keeps Base.ContextLen.
	ContextLen int
	// RoleMarkers lets samples contain the chat template's special tokens
	// (<|system|>, <|user|>, <|assistant|>, <pad> aside): training's
	// replay buffer and evaluation sample the policy as trained. Replies
	// shown to people or sent to environments (sample, serve, rollout)
	// leave it false, so no special token but the stop tokens and
	// <bkspc> is ever emitted into text.
	RoleMarkers bool
}

// OptionsFor returns the decoding options for a model with tokenizer tok:
// s.Base with <bkspc>, the stop tokens (<eos>, <|end|>), the detokenizer,
// the token bytes of grammar-constrained decoding and the banned ids taken
// from tok. It is the one place sampler options are derived from a
// tokenizer (sample, serve, rollout, chat policies, training's replay and
// the comparisons all use it).
//
// Banned are s.Base.Banned plus: <pad>; every id the tokenizer lacks
// (padded rows, holes); and, unless s.RoleMarkers, every other special or
// added token except <bkspc> and the stop tokens.
func OptionsFor(tok *data.Tokenizer, s Settings) Options {
	o := s.Base
	sp := tok.Specials()
	V := s.ModelVocab
	if V <= 0 {
		V = tok.VocabSize()
	}
	o.BkspcID = sp.Bkspc
	if int(sp.Bkspc) >= V {
		o.AllowBkspc = false
	}
	o.StopTokens = []int32{sp.EOS, sp.End}
	o.Detokenize = tok.Decode
	o.TokenBytes = TokenBytes(tok)
	if s.ContextLen > 0 && (o.ContextLen == 0 || o.ContextLen > s.ContextLen) {
		o.ContextLen = s.ContextLen
	}
	banned := append([]int32(nil), s.Base.Banned...)
	seen := map[int32]bool{}
	for _, id := range banned {
		seen[id] = true
	}
	ban := func(id int32) {
		if !seen[id] {
			seen[id] = true
			banned = append(banned, id)
		}
	}
	ban(sp.Pad)
	for id := int32(0); int(id) < V; id++ {
		switch {
		case id == sp.Bkspc || id == sp.EOS || id == sp.End || id == sp.Pad:
		case int(id) >= tok.VocabSize():
			ban(id) // a padded row: no token
		case tok.IsOrdinary(id):
		default:
			if _, ok := tok.Token(id); !ok || !s.RoleMarkers {
				ban(id) // a hole, or a special token that is never text
			}
		}
	}
	o.Banned = banned
	return o
}
