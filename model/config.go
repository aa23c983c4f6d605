package model

import (
	"errors"
	"fmt"
)

// Config is the architecture of a GPT-2 style model. JSON keys are HF
// GPT-2's config.json keys, plus the two special token ids smtrain needs.
type Config struct {
	NLayer           int     `json:"n_layer"`
	NHead            int     `json:"n_head"`
	NEmbd            int     `json:"n_embd"`
	NPositions       int     `json:"n_positions"`
	VocabSize        int     `json:"vocab_size"`
	LayerNormEpsilon float64 `json:"layer_norm_epsilon"`
	// BkspcTokenID is the id of the <bkspc> action (-1 if the vocabulary
	// has none, e.g. plain HF GPT-2 weights before the vocabulary grows).
	BkspcTokenID int `json:"bkspc_token_id"`
	// EOSTokenID is the id of <eos>.
	EOSTokenID int `json:"eos_token_id"`
}

// Named presets used by tests, benchmarks and the demo.
var (
	// Tiny is the benchmark config "tiny": L2 D64 H2, T32 B8, V300.
	Tiny = Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 128, VocabSize: 300, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
	// Small is the benchmark config "small": L4 D128 H4, T128 B16, V1024.
	Small = Config{NLayer: 4, NHead: 4, NEmbd: 128, NPositions: 1024, VocabSize: 1024, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
)

// Validate reports the first inconsistency in c.
func (c Config) Validate() error {
	switch {
	case c.NLayer <= 0:
		return fmt.Errorf("n_layer must be positive, got %d", c.NLayer)
	case c.NHead <= 0:
		return fmt.Errorf("n_head must be positive, got %d", c.NHead)
	case c.NEmbd <= 0 || c.NEmbd%c.NHead != 0:
		return fmt.Errorf("n_embd (%d) must be a positive multiple of n_head (%d)", c.NEmbd, c.NHead)
	case c.NPositions <= 0:
		return fmt.Errorf("n_positions must be positive, got %d", c.NPositions)
	case c.VocabSize <= 0:
		return fmt.Errorf("vocab_size must be positive, got %d", c.VocabSize)
	case !(c.LayerNormEpsilon > 0):
		return errors.New("layer_norm_epsilon must be positive")
	case c.BkspcTokenID >= c.VocabSize || c.BkspcTokenID < -1:
		return fmt.Errorf("bkspc_token_id %d outside the vocabulary (%d)", c.BkspcTokenID, c.VocabSize)
	case c.EOSTokenID >= c.VocabSize || c.EOSTokenID < 0:
		return fmt.Errorf("eos_token_id %d outside the vocabulary (%d)", c.EOSTokenID, c.VocabSize)
	}
	return nil
}

// HeadDim is n_embd / n_head.
func (c Config) HeadDim() int { return c.NEmbd / c.NHead }
