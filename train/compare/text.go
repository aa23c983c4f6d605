package compare

import (
	"context"
	"fmt"
	"math"
	"strings"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/train"
)

// TextTask trains on trajectory files and scores runs by the NLL of a
// held-out split and the repetition and diversity of sampled replies to
// its prompts.
type TextTask struct {
	in      train.Inputs
	Samples int
	MaxNew  int
	Seed    uint64
}

var _ Task = (*TextTask)(nil)

// NewTextTask fixes the validation split of in; samples replies (at most
// one per validation episode, cycling when there are fewer) are drawn per
// run.
func NewTextTask(in train.Inputs, valFrac float64, samples int) (*TextTask, error) {
	in, err := splitInputs(in, valFrac)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	return &TextTask{in: in, Samples: samples, MaxNew: 128, Seed: 0x7e47}, nil
}

// Name implements Task.
func (x *TextTask) Name() string { return "data" }

// Describe implements Task.
func (x *TextTask) Describe() string {
	return fmt.Sprintf("%s: %d train / %d val episodes; %d sampled replies per run (temperature 1, at most %d tokens)",
		x.in.Describe, len(x.in.Train), len(x.in.Val), x.Samples, x.MaxNew)
}

// EvalKey implements Task.
func (x *TextTask) EvalKey() string {
	return fmt.Sprintf("text/v2 samples=%d maxnew=%d seed=%d val=%d", x.Samples, x.MaxNew, x.Seed, len(x.in.Val))
}

// Inputs implements Task.
func (x *TextTask) Inputs() train.Inputs { return x.in }

// Metrics implements Task.
func (x *TextTask) Metrics() []Metric {
	return []Metric{
		{Key: "val_nll", Label: "val NLL", Plot: true, Table: true},
		{Key: "val_ppl", Label: "val ppl", Table: true},
		{Key: "distinct_1", Label: "distinct-1", Plot: true, Table: true},
		{Key: "distinct_2", Label: "distinct-2", Plot: true, Table: true},
		{Key: "rep_2", Label: "rep-2", Table: true},
		{Key: "rep_4", Label: "rep-4", Plot: true, Table: true},
		{Key: "mean_len", Label: "reply tokens", Table: true},
		{Key: "bkspc_rate", Label: "bkspc per action", Table: true},
		{Key: "exact_match", Label: "exact match (reply = reference answer)", Table: true},
		{Key: "bk_recall", Label: "⌫ recall", Table: true},
		{Key: "false_bk_rate", Label: "false-⌫ rate", Table: true},
		{Key: "bk_precision", Label: "⌫ precision"},
		{Key: "corrections", Label: "corrected replies"},
		{Key: "bk_after_p_lt_0.01", Label: "P(⌫ | previous token p < 0.01)", Table: true},
		{Key: "bk_after_p_0.01_0.1", Label: "P(⌫ | previous token p in [0.01, 0.1))", Table: true},
		{Key: "bk_after_p_0.1_0.5", Label: "P(⌫ | previous token p in [0.1, 0.5))"},
		{Key: "bk_after_p_ge_0.5", Label: "P(⌫ | previous token p >= 0.5)", Table: true},
	}
}

// Distinct is the corpus-level diversity: distinct n-grams over all
// samples divided by the number of n-grams (0 when there are none).
func Distinct(samples [][]int32, n int) float64 {
	seen := map[string]bool{}
	total := 0
	for _, s := range samples {
		for i := 0; i+n <= len(s); i++ {
			seen[ngramKey(s[i:i+n])] = true
			total++
		}
	}
	if total == 0 {
		return 0
	}
	return float64(len(seen)) / float64(total)
}

// Repetition is the mean over samples (with at least one n-gram) of the
// fraction of a sample's n-grams that repeat an earlier n-gram of the same
// sample: 1 − distinct/total within the sample.
func Repetition(samples [][]int32, n int) float64 {
	var sum float64
	k := 0
	for _, s := range samples {
		total := len(s) - n + 1
		if total <= 0 {
			continue
		}
		seen := map[string]bool{}
		for i := 0; i+n <= len(s); i++ {
			seen[ngramKey(s[i:i+n])] = true
		}
		sum += 1 - float64(len(seen))/float64(total)
		k++
	}
	if k == 0 {
		return 0
	}
	return sum / float64(k)
}

func ngramKey(g []int32) string {
	b := make([]byte, 0, 4*len(g))
	for _, x := range g {
		b = append(b, byte(x), byte(x>>8), byte(x>>16), byte(x>>24))
	}
	return string(b)
}

// Evaluate implements Task.
func (x *TextTask) Evaluate(ctx context.Context, t *train.Trainer, dir string) (map[string]float64, error) {
	ev, err := valNLL(t, x.in.Val)
	if err != nil {
		return nil, err
	}
	dd, err := DecodeDiagnostics(ctx, t.Evaluator(), x.in.Val, x.Samples, x.MaxNew, x.Seed)
	if err != nil {
		return nil, err
	}
	m := dd.Metrics()
	samples := make([][]int32, len(dd.Results))
	var toks, acts, bk int
	for i, r := range dd.Results {
		samples[i] = r.Tokens
		toks += len(r.Tokens)
		acts += r.NumActions
		bk += r.NumBkspc
	}
	rs := dd.Results
	for k, v := range map[string]float64{
		"val_nll":    ev.NLL,
		"val_ppl":    ev.Perplexity,
		"distinct_1": Distinct(samples, 1),
		"distinct_2": Distinct(samples, 2),
		"rep_2":      Repetition(samples, 2),
		"rep_4":      Repetition(samples, 4),
		"mean_len":   float64(toks) / float64(len(rs)),
		"bkspc_rate": float64(bk) / math.Max(1, float64(acts)),
	} {
		m[k] = v
	}
	return m, nil
}

// messagesKey identifies a conversation prefix.
func messagesKey(ms []data.Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s\x00%s\x00", m.Role, m.Content)
	}
	return b.String()
}

// references maps each conversation before an episode's last assistant
// message to the token sequences of every such last message (the
// reference answers an exact-match checker accepts).
func references(eps []data.Episode, tok *data.Tokenizer) map[string][][]int32 {
	out := map[string][][]int32{}
	for _, e := range eps {
		last := lastAssistant(e.Messages)
		if last < 0 {
			continue
		}
		k := messagesKey(e.Messages[:last])
		out[k] = train.AddRef(out[k], tok.EncodeOrdinary(e.Messages[last].Content))
	}
	return out
}

// DecodeResult is what DecodeDiagnostics measured.
type DecodeResult struct {
	Results []decode.Result
	// Diag checks each reply against the reference answers of its prompt.
	Diag train.BkspcDiag
	// Bins is P(⌫ | probability of the previous token).
	Bins train.ProbBins
}

// Metrics are exact_match, the diagnostics (train.BkspcDiag.Metrics, NaN
// ratios left out) and the probability bins (train.ProbBins.Metrics).
func (d DecodeResult) Metrics() map[string]float64 {
	m := map[string]float64{}
	if n := len(d.Results); n > 0 {
		// the reply equals the last assistant message of an episode with
		// the same conversation before it
		m["exact_match"] = float64(d.Diag.Correct) / float64(n)
	}
	for k, v := range d.Diag.Metrics("") {
		if !math.IsNaN(v) {
			m[k] = v
		}
	}
	for k, v := range d.Bins.Metrics() {
		m[k] = v
	}
	return m
}

// DecodeDiagnostics samples replies (temperature 1, <bkspc> allowed, at
// most maxNew tokens, seed) of ev's model to the conversations before the
// last assistant message of eps (n prompts, cycling through eps), checks
// each against the reference answers (the last assistant messages of the
// episodes with the same conversation before them) and bins P(⌫ | the
// previous token's probability).
func DecodeDiagnostics(ctx context.Context, ev *train.Evaluator, eps []data.Episode, n, maxNew int, seed uint64) (DecodeResult, error) {
	var out DecodeResult
	tok, params := ev.Tokenizer(), ev.Params()
	ctxLen := ev.Config().NPositions
	maxNew = min(maxNew, ctxLen/2)
	var prompts [][]int32
	var refs [][][]int32 // reference answers of each prompt
	refIdx := references(eps, tok)
	for i := 0; len(prompts) < n && i < 4*n && len(eps) > 0; i++ {
		e := eps[i%len(eps)]
		last := lastAssistant(e.Messages)
		if last < 0 {
			continue
		}
		p, err := decode.ChatPrompt(tok, e.Messages[:last], ctxLen-maxNew)
		if err != nil {
			continue
		}
		prompts = append(prompts, p)
		refs = append(refs, refIdx[messagesKey(e.Messages[:last])])
	}
	if len(prompts) == 0 {
		return out, fmt.Errorf("no episode gives a prompt that fits in %d tokens", ctxLen-maxNew)
	}
	o := decode.DefaultOptions()
	o.MaxNewTokens = maxNew
	o.Seed, o.Workers, o.BatchSize = seed, 1, 8
	o = decode.OptionsFor(tok, decode.Settings{Base: o, ModelVocab: params.Cfg.VocabSize, ContextLen: ctxLen, RoleMarkers: true})
	rs, _, err := decode.Generate(ctx, decode.ModelFactory(params), prompts, o)
	if err != nil {
		return out, err
	}
	out.Results = rs
	for i, r := range rs {
		out.Diag.Add(r.Actions, refs[i], tok.BkspcID(), o.StopTokens)
	}
	if out.Bins, err = ev.BkspcByProb(rs); err != nil {
		return out, err
	}
	return out, nil
}

func lastAssistant(ms []data.Message) int {
	last := -1
	for j, m := range ms {
		if m.Role == data.RoleAssistant {
			last = j
		}
	}
	return last
}
