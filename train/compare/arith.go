package compare

import (
	"context"
	"fmt"
	"math"
	"slices"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/train"
)

// ArithTask is the arithmetic benchmark: NTrain training questions, NVal
// validation questions (disjoint, for loss curves and any tuning) and NTest
// test questions (disjoint, touched only by the final evaluation), all
// drawn once from DataSeed so every run sees the same data.
type ArithTask struct {
	Cfg              data.ArithConfig
	NVal             int
	Train, Val, Test []data.ArithProblem
	// MaxNew caps answer tokens at decode time.
	MaxNew int
	// DecodeSeed seeds the temperature-1 samples (same for every run).
	DecodeSeed uint64
	// BatchSize is the decode batch (fixed, so samples do not depend on
	// scheduling).
	BatchSize int
	// Str, when its Kind is set, makes this the string task (copy, sort
	// or reverse) of Str instead of arithmetic; Cfg is then unused.
	Str data.StringTaskConfig
}

var _ Task = (*ArithTask)(nil)

// NewArithTask draws the splits: cfg.NTrain training, nval validation and
// cfg.NTest test questions, pairwise disjoint, from cfg.Seed.
func NewArithTask(cfg data.ArithConfig, nval int) (*ArithTask, error) {
	if err := checkSplitSizes("arith", cfg.NTrain, nval, cfg.NTest); err != nil {
		return nil, err
	}
	all := cfg
	all.NTrain = cfg.NTrain + nval
	tr, te, err := data.ArithSplits(all)
	if err != nil {
		return nil, err
	}
	t := &ArithTask{Cfg: all, NVal: nval, Train: tr[:cfg.NTrain], Val: tr[cfg.NTrain:], Test: te,
		DecodeSeed: 0xa417e5a1, BatchSize: 50}
	t.Cfg.NTrain = cfg.NTrain
	t.MaxNew = 2 * (t.Cfg.Digits + 2)
	return t, nil
}

func checkSplitSizes(task string, ntrain, nval, ntest int) error {
	if nval < 1 {
		return fmt.Errorf("%s: validation questions must be >= 1, got %d", task, nval)
	}
	if ntrain < 1 || ntest < 1 {
		return fmt.Errorf("%s: training and test questions must be >= 1 (got %d, %d)", task, ntrain, ntest)
	}
	return nil
}

// NewStringTask draws the splits of a string task: cfg.NTrain training,
// nval validation and cfg.NTest test questions, pairwise disjoint, from
// cfg.Seed. It is scored like arithmetic (exact match, four decodings).
func NewStringTask(cfg data.StringTaskConfig, nval int) (*ArithTask, error) {
	if err := checkSplitSizes(cfg.Kind, cfg.NTrain, nval, cfg.NTest); err != nil {
		return nil, err
	}
	all := cfg
	all.NTrain = cfg.NTrain + nval
	tr, te, err := data.StringTaskSplits(all)
	if err != nil {
		return nil, err
	}
	return &ArithTask{Str: cfg, NVal: nval, Train: tr[:cfg.NTrain], Val: tr[cfg.NTrain:], Test: te,
		DecodeSeed: 0xa417e5a1, BatchSize: 50, MaxNew: cfg.MaxLen + 2}, nil
}

// Name implements Task.
func (a *ArithTask) Name() string {
	if a.Str.Kind != "" {
		return a.Str.Kind
	}
	return "arith"
}

// Describe implements Task.
func (a *ArithTask) Describe() string {
	if a.Str.Kind != "" {
		return fmt.Sprintf("%s a string of %d-%d symbols over %q (question \"cab>\"); %d train / %d val / %d test questions (disjoint, data seed %d); "+
			"answers decoded greedily (retry-block on) and at temperature 1 (retry-block off), each with <bkspc> allowed and masked, "+
			"at most %d answer tokens and %d actions; an answer is correct when it ends with a stop token and its text equals the answer",
			a.Str.Kind, a.Str.MinLen, a.Str.MaxLen, a.Str.Alphabet, len(a.Train), len(a.Val), len(a.Test), a.Str.Seed, a.MaxNew, 4*a.MaxNew)
	}
	order := "normal digit order"
	if a.Cfg.Reversed {
		order = "reversed answer digits"
	}
	return fmt.Sprintf("%d-digit operands, base %d, op %s, %s; %d train / %d val / %d test questions (disjoint, data seed %d); "+
		"answers decoded greedily (retry-block on) and at temperature 1 (retry-block off), each with <bkspc> allowed and masked, "+
		"at most %d answer tokens and %d actions; an answer is correct when it ends with a stop token and its text equals the answer",
		a.Cfg.Digits, a.Cfg.Base, a.Cfg.Op, order, len(a.Train), len(a.Val), len(a.Test), a.Cfg.Seed, a.MaxNew, 4*a.MaxNew)
}

// EvalKey implements Task.
func (a *ArithTask) EvalKey() string {
	if a.Str.Kind != "" {
		return fmt.Sprintf("str/v2 %+v nval=%d maxnew=%d seed=%d batch=%d", a.Str, a.NVal, a.MaxNew, a.DecodeSeed, a.BatchSize)
	}
	return fmt.Sprintf("arith/v2 %+v nval=%d maxnew=%d seed=%d batch=%d", a.Cfg, a.NVal, a.MaxNew, a.DecodeSeed, a.BatchSize)
}

// Inputs implements Task.
func (a *ArithTask) Inputs() train.Inputs {
	in := train.Inputs{Tokenizer: data.ArithTokenizer(), Describe: a.Name() + " " + a.Describe()}
	for _, p := range a.Train {
		in.Train = append(in.Train, p.Episode())
	}
	for _, p := range a.Val {
		in.Val = append(in.Val, p.Episode())
	}
	return in
}

// decodeModes are the four decodings every arith run is scored with.
var decodeModes = []struct {
	key    string
	greedy bool
	bkspc  bool
}{
	{"greedy_bk", true, true},
	{"greedy_nobk", true, false},
	{"sample_bk", false, true},
	{"sample_nobk", false, false},
}

// Metrics implements Task.
func (a *ArithTask) Metrics() []Metric {
	return []Metric{
		{Key: "acc_sample_bk", Label: "acc T=1, bkspc allowed", Plot: true, Table: true},
		{Key: "acc_sample_nobk", Label: "acc T=1, no bkspc", Plot: true, Table: true},
		{Key: "acc_greedy_bk", Label: "acc greedy, bkspc allowed", Plot: true, Table: true},
		{Key: "acc_greedy_nobk", Label: "acc greedy, no bkspc", Plot: true, Table: true},
		{Key: "bk_gain_sample", Label: "acc T=1, ⌫ allowed − masked", Table: true},
		{Key: "bk_recall_sample", Label: "⌫ recall (T=1)", Table: true},
		{Key: "false_bk_rate_sample", Label: "false-⌫ rate (T=1)", Table: true},
		{Key: "bk_precision_sample", Label: "⌫ precision (T=1)", Table: true},
		{Key: "corrections_sample", Label: "corrected answers (T=1)", Table: true},
		{Key: "diverged_sample", Label: "answers that diverged (T=1)"},
		{Key: "first_div_pos_sample", Label: "first divergence position (T=1)"},
		{Key: "bk_gain_greedy", Label: "acc greedy, ⌫ allowed − masked"},
		{Key: "bk_recall_greedy", Label: "⌫ recall (greedy)"},
		{Key: "false_bk_rate_greedy", Label: "false-⌫ rate (greedy)"},
		{Key: "bk_precision_greedy", Label: "⌫ precision (greedy)"},
		{Key: "corrections_greedy", Label: "corrected answers (greedy)"},
		{Key: "test_nll", Label: "test NLL", Table: true},
		{Key: "test_ppl", Label: "test ppl"},
		{Key: "bkspc_rate_sample", Label: "bkspc per action (T=1)", Table: true},
		{Key: "bkspc_used_sample", Label: "answers using bkspc (T=1)"},
		{Key: "bkspc_rate_greedy", Label: "bkspc per action (greedy)"},
		{Key: "hit_cap_greedy_bk", Label: "greedy decodes at the action cap"},
		{Key: "hit_cap_sample_bk", Label: "T=1 decodes at the action cap"},
		{Key: "val_acc_sample_bk", Label: "val acc T=1, bkspc allowed"},
		{Key: "val_acc_greedy_bk", Label: "val acc greedy, bkspc allowed"},
		{Key: "val_acc_sample_nobk", Label: "val acc T=1, no bkspc"},
		{Key: "val_acc_greedy_nobk", Label: "val acc greedy, no bkspc"},
		{Key: "val_nll", Label: "val NLL"},
		{Key: "val_bk_gain_sample", Label: "val acc T=1, ⌫ allowed − masked"},
		{Key: "val_bk_recall_sample", Label: "val ⌫ recall (T=1)"},
		{Key: "val_false_bk_rate_sample", Label: "val false-⌫ rate (T=1)"},
	}
}

// ArithScore is the exact-match outcome of decoded answers.
type ArithScore struct {
	N, Correct   int
	Actions      int // all actions, stop token included
	Bkspc        int // <bkspc> actions
	UsedBkspc    int // samples with at least one <bkspc>
	HitCap       int
	Inconsistent int // results whose Tokens disagree with their replayed Actions
}

// Accuracy is Correct / N.
func (s ArithScore) Accuracy() float64 { return float64(s.Correct) / float64(s.N) }

// ScoreArith checks each result against its problem. The answer is the
// completion left after replaying the full action sequence (backspaces
// delete the previous token); it counts as correct only when the sample
// ended with a stop token (not at a length or action cap) and its text,
// trimmed, equals the answer exactly.
func ScoreArith(ps []data.ArithProblem, rs []decode.Result, bkspc int32, stop []int32, detok func([]int32) string) ArithScore {
	var s ArithScore
	for i, r := range rs {
		s.N++
		s.Actions += len(r.Actions)
		nb := 0
		for _, a := range r.Actions {
			if a == bkspc {
				nb++
			}
		}
		s.Bkspc += nb
		if nb > 0 {
			s.UsedBkspc++
		}
		if r.HitCap {
			s.HitCap++
		}
		toks, ok := decode.Replay(r.Actions, bkspc, stop)
		if !ok || !slices.Equal(toks, r.Tokens) {
			s.Inconsistent++
			continue
		}
		stopped := len(r.Actions) > 0 && slices.Contains(stop, r.Actions[len(r.Actions)-1])
		if stopped && ps[i].Correct(detok(toks)) {
			s.Correct++
		}
	}
	return s
}

// Evaluate implements Task: exact-match accuracy on the test (and
// validation) questions under four decodings (greedy / temperature 1, with
// and without <bkspc>), backspace usage, and NLL / perplexity of the clean
// answers.
func (a *ArithTask) Evaluate(ctx context.Context, t *train.Trainer, dir string) (map[string]float64, error) {
	tok := t.Tokenizer()
	m := map[string]float64{}
	lambda := t.Config().ObjectiveConfig().LambdaAt(t.Step())
	for _, split := range []struct {
		prefix string
		ps     []data.ArithProblem
	}{{"", a.Test}, {"val_", a.Val}} {
		seqs, err := data.ArithSeqs(tok, split.ps)
		if err != nil {
			return nil, err
		}
		ev, err := train.Evaluate(t, seqs, 0, lambda)
		if err != nil {
			return nil, err
		}
		name := "test_"
		if split.prefix != "" {
			name = split.prefix
		}
		m[name+"nll"] = ev.NLL
		m[name+"ppl"] = ev.Perplexity
		prompts := make([][]int32, len(seqs))
		for i, s := range seqs {
			prompts[i] = s.Prompt
		}
		for _, md := range decodeModes {
			o := a.options(t, md.greedy, md.bkspc)
			rs, _, err := decode.Generate(ctx, decode.ModelFactory(t.Params()), prompts, o)
			if err != nil {
				return nil, fmt.Errorf("decoding (%s): %w", md.key, err)
			}
			sc := ScoreArith(split.ps, rs, tok.BkspcID(), o.StopTokens, tok.Decode)
			if sc.Inconsistent > 0 {
				return nil, fmt.Errorf("decoding (%s): %d results whose tokens disagree with their actions", md.key, sc.Inconsistent)
			}
			m[split.prefix+"acc_"+md.key] = sc.Accuracy()
			if md.bkspc {
				kind := "sample"
				if md.greedy {
					kind = "greedy"
				}
				d := DiagnoseAnswers(split.ps, rs, tok)
				for k, v := range d.Metrics("_" + kind) {
					if !math.IsNaN(v) { // undefined ratio (e.g. nothing diverged): no value
						m[split.prefix+k] = v
					}
				}
			}
			if split.prefix == "" {
				if md.bkspc {
					kind := "sample"
					if md.greedy {
						kind = "greedy"
					}
					m["bkspc_rate_"+kind] = float64(sc.Bkspc) / math.Max(1, float64(sc.Actions))
					m["bkspc_used_"+kind] = float64(sc.UsedBkspc) / float64(sc.N)
				}
				m["hit_cap_"+md.key] = float64(sc.HitCap) / float64(sc.N)
			}
		}
	}
	for _, p := range []string{"", "val_"} {
		m[p+"bk_gain_sample"] = m[p+"acc_sample_bk"] - m[p+"acc_sample_nobk"]
		m[p+"bk_gain_greedy"] = m[p+"acc_greedy_bk"] - m[p+"acc_greedy_nobk"]
	}
	return m, nil
}

// DiagnoseAnswers computes the backspace diagnostics (train.BkspcDiag) of
// decoded answers against their problems' answers.
func DiagnoseAnswers(ps []data.ArithProblem, rs []decode.Result, tok *data.Tokenizer) train.BkspcDiag {
	var d train.BkspcDiag
	stop := []int32{tok.EOSID(), tok.EndID()}
	for i, r := range rs {
		ref := tok.EncodeOrdinary(ps[i].Answer)
		d.Add(r.Actions, [][]int32{ref}, tok.BkspcID(), stop)
	}
	return d
}

// options are the decode options of one mode: answers of at most MaxNew
// tokens, stop at <eos> or <|end|>, <pad> banned, one worker and a fixed
// batch so the samples do not depend on scheduling.
func (a *ArithTask) options(t *train.Trainer, greedy, bkspc bool) decode.Options {
	tok := t.Tokenizer()
	o := decode.DefaultOptions()
	o.Greedy = greedy
	o.Temperature = 1
	o.MaxNewTokens = a.MaxNew
	o.AllowBkspc = bkspc
	o.Seed = a.DecodeSeed
	o.Workers = 1
	o.BatchSize = a.BatchSize
	return decode.OptionsFor(tok, decode.Settings{Base: o, ModelVocab: t.Params().Cfg.VocabSize, ContextLen: t.Params().Cfg.NPositions, RoleMarkers: true})
}
