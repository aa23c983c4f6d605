package gguf

import (
	"encoding/json"
	"fmt"
	"strings"

	"smtrain/data"
	"smtrain/model"
)

// vocab is the tokenizer as llama.cpp's gpt2 BPE vocabulary.
type vocab struct {
	tokens []string // id -> text (byte-level form for BPE tokens, literal for added tokens)
	types  []int32  // id -> llama.cpp token type
	merges []string // "left right" in rank order
	sp     data.Specials
}

// vocabOf converts tok for a model of configuration cfg. The model's
// vocabulary may be larger than the tokenizer's (rows past it, e.g.
// nanoGPT's padding to 50,304, become unused "[PADn]" tokens); everything
// llama.cpp cannot hold is refused with a message naming it.
func vocabOf(tok *data.Tokenizer, cfg model.Config) (*vocab, error) {
	// The tokenizer's serialized form (tokenizer.json) is the interface:
	// the BPE vocabulary, the merges and the added tokens.
	raw, err := tok.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var hf struct {
		AddedTokens []struct {
			ID      int32  `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int32 `json:"vocab"`
			Merges []string         `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &hf); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	n := tok.VocabSize()
	if n > cfg.VocabSize {
		return nil, fmt.Errorf("tokenizer has %d tokens but the model only %d embedding rows", n, cfg.VocabSize)
	}
	v := &vocab{tokens: make([]string, cfg.VocabSize), types: make([]int32, cfg.VocabSize), sp: tok.Specials()}
	for s, id := range hf.Model.Vocab {
		if id < 0 || int(id) >= n {
			return nil, fmt.Errorf("tokenizer: token %q has id %d outside its vocabulary (%d)", s, id, n)
		}
		v.tokens[id], v.types[id] = s, TokenNormal
	}
	for _, a := range hf.AddedTokens {
		if a.ID < 0 || int(a.ID) >= n {
			return nil, fmt.Errorf("tokenizer: added token %q has id %d outside its vocabulary (%d)", a.Content, a.ID, n)
		}
		v.tokens[a.ID], v.types[a.ID] = a.Content, TokenUserDefined
		if a.Special || v.sp.IsSpecial(a.ID) {
			v.types[a.ID] = TokenControl
		}
	}
	// llama.cpp requires the <eos>/<bkspc> ids the model was trained with.
	if int(v.sp.EOS) != cfg.EOSTokenID {
		return nil, fmt.Errorf("tokenizer's <eos> is id %d but the model's eos_token_id is %d", v.sp.EOS, cfg.EOSTokenID)
	}
	if cfg.BkspcTokenID >= 0 && int(v.sp.Bkspc) != cfg.BkspcTokenID {
		return nil, fmt.Errorf("tokenizer's <bkspc> is id %d but the model's bkspc_token_id is %d", v.sp.Bkspc, cfg.BkspcTokenID)
	}
	// Unused ids (gaps, padding rows): llama.cpp needs a distinct text
	// for every id, so they get "[PADn]" like its converter writes.
	seen := make(map[string]int, len(v.tokens))
	for id := range v.tokens {
		if v.tokens[id] == "" {
			v.tokens[id], v.types[id] = fmt.Sprintf("[PAD%d]", id), TokenUnused
		}
		if prev, dup := seen[v.tokens[id]]; dup {
			return nil, fmt.Errorf("tokens %d and %d have the same text %q (llama.cpp maps each text to one id)", prev, id, v.tokens[id])
		}
		seen[v.tokens[id]] = id
	}
	// llama.cpp splits a merge at its first space after the first byte:
	// both halves must be space-free BPE tokens (byte-level form). A
	// byte-only vocabulary (no merges, e.g. the arithmetic task's) is an
	// empty array, which llama.cpp loads (checked with node-llama-cpp).
	v.merges = hf.Model.Merges
	for r, m := range v.merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("tokenizer: merge %d %q is not two space-free tokens", r, m)
		}
	}
	return v, nil
}
