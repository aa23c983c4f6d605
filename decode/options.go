package decode

import (
	"errors"
	"fmt"
	"math"
)

// Special token ids fixed by the tokenizer (data package).
const (
	PadID   int32 = 0
	EOSID   int32 = 1
	BkspcID int32 = 2
	EndID   int32 = 6 // <|end|>, end of turn
)

// RetryBlock selects the retry-block rule of DESIGN.md 3.3: after <bkspc>
// removes token x from state s, x is masked at s for the next choice.
type RetryBlock int

const (
	// RetryAuto turns the rule on for greedy decoding and off for sampling.
	RetryAuto RetryBlock = iota
	// RetryOn always applies the rule.
	RetryOn
	// RetryOff never applies it.
	RetryOff
)

// String names the mode ("auto", "on", "off").
func (r RetryBlock) String() string {
	switch r {
	case RetryAuto:
		return "auto"
	case RetryOn:
		return "on"
	case RetryOff:
		return "off"
	}
	return fmt.Sprintf("RetryBlock(%d)", int(r))
}

// Options configure sampling. Start from DefaultOptions: the zero value is
// not valid (MaxNewTokens must be positive, Temperature too unless Greedy).
type Options struct {
	// Temperature divides the logits before the softmax (at least 1e-6).
	// Ignored by greedy decoding.
	Temperature float64
	// TopK keeps the K most likely actions (0: off).
	TopK int
	// TopP keeps the smallest set of most likely actions whose probability
	// reaches P, after top-k (0 or 1: off).
	TopP float64
	// Greedy takes the most likely allowed action (lowest id on ties).
	Greedy bool

	// MaxNewTokens caps the length of the final completion: the number of
	// generated tokens left on the stack (backspaced tokens and the stop
	// token do not count). A sample whose completion reaches it stops with
	// StopMaxNewTokens. The decoder never holds more than prompt +
	// MaxNewTokens entries.
	MaxNewTokens int
	// MaxActions caps the total number of actions (tokens, backspaces and
	// the stop token); 0 means 4 x MaxNewTokens. A sample that reaches it
	// stops with StopActionCap and HitCap set.
	MaxActions int
	// ContextLen is the model's context window (n_positions); 0: no limit
	// besides MaxNewTokens. A completion that fills it stops with
	// StopContextFull.
	ContextLen int

	// StopTokens end a sample when chosen; they are recorded as the last
	// action but are not part of Tokens or Text.
	StopTokens []int32
	// StopStrings end a sample as soon as the detokenized completion
	// contains one of them (the text keeps the stop string). Needs
	// Detokenize.
	StopStrings []string
	// Detokenize turns token ids into text; when set, results carry Text.
	Detokenize func([]int32) string

	// BkspcID is the id of <bkspc>; -1 if the vocabulary has none.
	BkspcID int32
	// AllowBkspc lets the sampler choose <bkspc> (it is then still masked
	// at the prompt floor). Forced off when BkspcID is outside the logits.
	AllowBkspc bool
	// BkspcInTopK and BkspcInTopP let top-k / top-p filtering remove
	// <bkspc>. By default it is kept as a candidate with its own
	// probability even when it falls outside the filtered set.
	BkspcInTopK, BkspcInTopP bool
	// RetryBlock selects the retry-block rule (see RetryBlock).
	RetryBlock RetryBlock
	// BkspcWindow, when positive, bounds how far back <bkspc> reaches:
	// once a completion has had n tokens, its first n - BkspcWindow tokens
	// are final (<bkspc> is masked when only final tokens are left), so a
	// stream can send their text (FinalTokens). 0: unbounded.
	BkspcWindow int
	// Banned are ids never sampled. Empty by default: the sampled policy is
	// then exactly the trained one, softmax over every action (DESIGN 3.1).
	Banned []int32

	// Grammar, when set, constrains every completion to spell a text the
	// automaton accepts (grammar-constrained decoding): at each step only
	// the tokens whose bytes it takes, and after which the text can still
	// be completed within the tokens left (Dist, one token per byte), may
	// be chosen, and the stop tokens only once the text is complete.
	// <bkspc> works as usual and undoes a token's bytes. The sampled policy
	// is then the trained one renormalised over the allowed actions. Needs
	// TokenBytes and at least one stop token.
	Grammar Grammar
	// TokenBytes gives the bytes a token id spells and whether it is an
	// ordinary token (special tokens never extend a constrained completion).
	TokenBytes func(id int32) ([]byte, bool)

	// Seed seeds every sample's random stream (with its index).
	Seed uint64
	// BatchSize is the number of samples decoded together by one decoder
	// (batched forward steps); 0: min(8, number of prompts). Samples are
	// assigned to batches by index, so results do not depend on Workers.
	// They may depend on the batch layout itself: OpenBLAS computes a row
	// of a batched step with other kernels than a single row, so logits
	// differ in the last bits between batch sizes (measured; the pure-Go
	// BLAS gives identical bits), which can flip a near-tie draw. For
	// bit-identical samples keep the prompts, BatchSize and Seed fixed.
	BatchSize int
	// Workers is the number of batches decoded in parallel, each with its
	// own decoder; 0: GOMAXPROCS.
	Workers int
}

// minTemperature keeps L/T finite in float64 for any float32 logit.
const minTemperature = 1e-6

// DefaultOptions returns temperature-1 sampling of up to 256 new tokens,
// stop tokens <eos> and <|end|>, <bkspc> allowed (id 2), retry block
// auto, nothing banned.
func DefaultOptions() Options {
	return Options{
		Temperature:  1,
		MaxNewTokens: 256,
		StopTokens:   []int32{EOSID, EndID},
		BkspcID:      BkspcID,
		AllowBkspc:   true,
		RetryBlock:   RetryAuto,
	}
}

// retryBlockOn resolves RetryAuto.
func (o *Options) retryBlockOn() bool {
	switch o.RetryBlock {
	case RetryOn:
		return true
	case RetryOff:
		return false
	}
	return o.Greedy
}

// maxActions resolves the default action cap.
func (o *Options) maxActions() int {
	if o.MaxActions > 0 {
		return o.MaxActions
	}
	return 4 * o.MaxNewTokens
}

// Validate reports the first invalid option.
func (o *Options) Validate() error {
	switch {
	case !o.Greedy && !(o.Temperature >= minTemperature && !math.IsInf(o.Temperature, 1)):
		return fmt.Errorf("temperature must be finite and at least %g, got %v (use greedy for T=0)", minTemperature, o.Temperature)
	case o.TopK < 0:
		return fmt.Errorf("top-k must be >= 0, got %d", o.TopK)
	case !(o.TopP >= 0 && o.TopP <= 1):
		return fmt.Errorf("top-p must be in [0, 1], got %v", o.TopP)
	case o.MaxNewTokens <= 0:
		return fmt.Errorf("max new tokens must be positive, got %d", o.MaxNewTokens)
	case o.MaxActions < 0:
		return fmt.Errorf("max actions must be >= 0, got %d", o.MaxActions)
	case o.ContextLen < 0:
		return fmt.Errorf("context length must be >= 0, got %d", o.ContextLen)
	case len(o.StopStrings) > 0 && o.Detokenize == nil:
		return errors.New("stop strings need a detokenizer")
	case o.BkspcWindow < 0:
		return fmt.Errorf("backspace window must be >= 0, got %d", o.BkspcWindow)
	case o.BatchSize < 0 || o.Workers < 0:
		return errors.New("batch size and workers must be >= 0")
	case o.RetryBlock < RetryAuto || o.RetryBlock > RetryOff:
		return fmt.Errorf("unknown retry block mode %d", int(o.RetryBlock))
	case o.Grammar != nil && o.TokenBytes == nil:
		return errors.New("a grammar needs TokenBytes")
	case o.Grammar != nil && len(o.StopTokens) == 0:
		return errors.New("a grammar needs a stop token to end a complete text")
	}
	for _, s := range o.StopStrings {
		if s == "" {
			return errors.New("empty stop string")
		}
	}
	for _, t := range o.StopTokens {
		if t < 0 {
			return fmt.Errorf("negative stop token %d", t)
		}
		if o.BkspcID >= 0 && t == o.BkspcID {
			return fmt.Errorf("<bkspc> (%d) cannot be a stop token", t)
		}
	}
	return nil
}

// FinalTokens is the number of leading tokens of a completion that no
// <bkspc> can delete any more under o.BkspcWindow, given the longest the
// completion has been (maxLen tokens); 0 without a window.
func (o *Options) FinalTokens(maxLen int) int {
	if o.BkspcWindow <= 0 {
		return 0
	}
	return max(0, maxLen-o.BkspcWindow)
}
