package decode

import (
	"strings"
	"time"
)

// StopReason says why a sample ended.
type StopReason string

// Stop reasons.
const (
	StopToken        StopReason = "stop_token"     // a stop token was chosen
	StopString       StopReason = "stop_string"    // the text contains a stop string
	StopMaxNewTokens StopReason = "max_new_tokens" // the completion reached MaxNewTokens
	StopContextFull  StopReason = "context_full"   // prompt + completion filled ContextLen
	StopActionCap    StopReason = "action_cap"     // MaxActions actions without a stop
)

// Result is one sample.
type Result struct {
	// Index is the sample's index (its random stream is derived from it).
	Index int `json:"index"`
	// Prompt is the prompt token ids (never deleted).
	Prompt []int32 `json:"prompt"`
	// Tokens is the final completion: generated tokens left after every
	// backspace, without the stop token.
	Tokens []int32 `json:"tokens"`
	// Actions is the full action sequence, <bkspc> and the stop token
	// included; replaying it over Prompt gives Tokens.
	Actions []int32 `json:"actions"`
	// Text is Detokenize(Tokens) when a detokenizer was given.
	Text string `json:"text,omitempty"`
	// NumBkspc is the number of <bkspc> actions; NumActions is len(Actions).
	NumBkspc   int `json:"num_bkspc"`
	NumActions int `json:"num_actions"`
	// NumPushes is the number of incremental forward steps this sample
	// took (tokens pushed on the cache).
	NumPushes int `json:"num_pushes"`
	// HitCap is true when the sample ended at MaxActions without stopping.
	HitCap bool `json:"hit_cap"`
	// Stop says why the sample ended; StopTokenID is the stop token (-1
	// if none) and StopText the matched stop string.
	Stop        StopReason `json:"stop_reason"`
	StopTokenID int32      `json:"stop_token"`
	StopText    string     `json:"stop_string,omitempty"`
	// RetryBlock says whether the retry-block rule was on.
	RetryBlock bool `json:"retry_block"`
	// Greedy says whether the sample was decoded greedily.
	Greedy bool `json:"greedy"`
	// Duration is the time from the end of this sample's prefill to its
	// stop; TokensPerSec is its token actions (every action but <bkspc>)
	// per second of Duration.
	Duration     time.Duration `json:"duration_ns"`
	TokensPerSec float64       `json:"tokens_per_sec"`
}

// Stats summarises one Generate call.
type Stats struct {
	Samples int `json:"samples"`
	// HitCap is the number of samples that ended at the action cap.
	HitCap int `json:"hit_cap"`
	// PrefillTokens are prompt tokens run through Prefill.
	PrefillTokens int `json:"prefill_tokens"`
	// Pushes are incremental forward steps (sequence-tokens), Steps the
	// batched Push calls, Pops the backspaces, Actions all actions.
	Pushes  int `json:"pushes"`
	Steps   int `json:"steps"`
	Pops    int `json:"pops"`
	Actions int `json:"actions"`
	// Prefill and Decode are summed over batches (wall time per batch);
	// Wall is the wall time of the whole call.
	Prefill time.Duration `json:"prefill_ns"`
	Decode  time.Duration `json:"decode_ns"`
	Wall    time.Duration `json:"wall_ns"`
	// TokensPerSec is Pushes / Wall: end-to-end throughput of the call,
	// prefill included, all workers together.
	TokensPerSec float64 `json:"tokens_per_sec"`
	// DecodeTokensPerSec is Pushes / Decode: the incremental-step rate of
	// one decoder (equal to the call's rate with one worker, no prefill).
	DecodeTokensPerSec float64 `json:"decode_tokens_per_sec"`
}

func (s *Stats) add(o Stats) {
	s.Samples += o.Samples
	s.HitCap += o.HitCap
	s.PrefillTokens += o.PrefillTokens
	s.Pushes += o.Pushes
	s.Steps += o.Steps
	s.Pops += o.Pops
	s.Actions += o.Actions
	s.Prefill += o.Prefill
	s.Decode += o.Decode
}

// Replay applies actions to an empty completion and returns the tokens left
// (stop tokens are not appended; a <bkspc> on an empty completion is an
// error reported as ok=false).
func Replay(actions []int32, bkspc int32, stop []int32) (tokens []int32, ok bool) {
	for _, a := range actions {
		switch {
		case a == bkspc:
			if len(tokens) == 0 {
				return tokens, false
			}
			tokens = tokens[:len(tokens)-1]
		case containsID(stop, a):
			return tokens, true
		default:
			tokens = append(tokens, a)
		}
	}
	return tokens, true
}

// RenderActions renders an action sequence with deletions visible: tokens
// later removed by <bkspc> are wrapped as ~~deleted~~ at the place they were
// typed, so "a b c ⌫ d" shows as "ab~~c~~d". Stop tokens are shown with
// detok too. detok turns ids into text.
func RenderActions(actions []int32, bkspc int32, detok func([]int32) string) string {
	type piece struct {
		text    string
		deleted bool
	}
	var ps []piece
	var live []int // indices into ps of the not-yet-deleted pieces
	for _, a := range actions {
		if a == bkspc {
			if n := len(live); n > 0 {
				ps[live[n-1]].deleted = true
				live = live[:n-1]
			}
			continue
		}
		live = append(live, len(ps))
		ps = append(ps, piece{text: detok([]int32{a})})
	}
	var b strings.Builder
	for i := 0; i < len(ps); {
		if !ps[i].deleted {
			b.WriteString(ps[i].text)
			i++
			continue
		}
		b.WriteString("~~")
		for ; i < len(ps) && ps[i].deleted; i++ {
			b.WriteString(ps[i].text)
		}
		b.WriteString("~~")
	}
	return b.String()
}

func containsID(ids []int32, a int32) bool {
	for _, x := range ids {
		if x == a {
			return true
		}
	}
	return false
}
