package compare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/envbridge"
	"smtrain/envbridge/local"
	"smtrain/envbridge/rollout"
	"smtrain/train"
)

// splitInputs fixes the validation split once (seed 1), so every run of a
// comparison trains and validates on the same episodes whatever its seed.
func splitInputs(in train.Inputs, valFrac float64) (train.Inputs, error) {
	if len(in.Train) == 0 {
		return in, errors.New("no training episodes")
	}
	if len(in.Val) > 0 {
		return in, nil
	}
	if len(in.Train) < 2 || !(valFrac > 0) {
		return in, fmt.Errorf("%d episodes with val_fraction %g leave no validation split", len(in.Train), valFrac)
	}
	tr, va, err := data.SplitEpisodes(in.Train, nil, valFrac, 1)
	if err != nil {
		return in, err
	}
	out := in
	out.Train, out.Val = tr, va
	return out, nil
}

// valNLL is the token-mean NLL of the clean validation episodes.
func valNLL(t *train.Trainer, eps []data.Episode) (train.EvalResult, error) {
	seqs, _, err := data.BuildSeqs(t.Tokenizer(), eps, t.Config().NPositions, data.SeqEpisode)
	if err != nil {
		return train.EvalResult{}, err
	}
	return train.Evaluate(t, seqs, 0, t.Config().ObjectiveConfig().LambdaAt(t.Step()))
}

// DojoTask trains on expert trajectories of the built-in MLE-Dojo-style
// environments and scores runs by rollouts in those environments.
type DojoTask struct {
	in       train.Inputs
	Episodes int
	MaxSteps int
	Seed     uint64
	// Budget is the wall-clock budget of one rollout episode.
	Budget time.Duration
	// Constrain decodes rollout replies under envbridge's action grammar.
	Constrain bool
	// Temperature of the rollout replies (top-p 0.95; default 0.8) and
	// MaxNew their token budget (default: half the context). The prompt is
	// cut to the context minus MaxNew, so MaxNew must leave the episode's
	// prompts whole for a policy to see what it was trained on.
	Temperature float64
	MaxNew      int
}

var _ Task = (*DojoTask)(nil)

// NewDojoTask fixes the validation split of in and plays episodes rollouts
// of maxSteps actions per run.
func NewDojoTask(in train.Inputs, valFrac float64, episodes, maxSteps int) (*DojoTask, error) {
	in, err := splitInputs(in, valFrac)
	if err != nil {
		return nil, fmt.Errorf("dojo: %w", err)
	}
	return &DojoTask{in: in, Episodes: episodes, MaxSteps: maxSteps, Seed: 1, Budget: 5 * time.Minute, Temperature: 0.8}, nil
}

// Name implements Task.
func (d *DojoTask) Name() string { return "dojo" }

// Describe implements Task.
func (d *DojoTask) Describe() string {
	c := ""
	if d.Constrain {
		c = ", replies decoded under the action grammar"
	}
	return fmt.Sprintf("built-in MLE-Dojo-style tasks: %d train / %d val expert episodes; %d rollout episodes of at most %d actions per run on task data seed %d (temperature %g, top-p 0.95%s)",
		len(d.in.Train), len(d.in.Val), d.Episodes, d.MaxSteps, d.Seed, d.Temperature, c)
}

// EvalKey implements Task.
func (d *DojoTask) EvalKey() string {
	k := fmt.Sprintf("dojo/v1 episodes=%d steps=%d seed=%d val=%d", d.Episodes, d.MaxSteps, d.Seed, len(d.in.Val))
	if d.Constrain {
		k += " constrain=action"
	}
	if d.Temperature != 0.8 {
		k += fmt.Sprintf(" temperature=%g", d.Temperature)
	}
	if d.MaxNew != 0 {
		k += fmt.Sprintf(" max_new=%d", d.MaxNew)
	}
	return k
}

// Inputs implements Task.
func (d *DojoTask) Inputs() train.Inputs { return d.in }

// Metrics implements Task.
func (d *DojoTask) Metrics() []Metric {
	return []Metric{
		{Key: "mean_reward", Label: "mean reward", Plot: true, Table: true},
		{Key: "scoring_rate", Label: "scoring rate", Plot: true, Table: true},
		{Key: "valid_action_rate", Label: "valid-action rate", Plot: true, Table: true},
		{Key: "code_error_rate", Label: "code error rate", Table: true},
		{Key: "failed_episodes", Label: "failed episodes", Table: true},
		{Key: "bkspc_per_episode", Label: "bkspc per episode", Table: true},
		{Key: "bkspc_in_code_per_episode", Label: "bkspc in code per episode", Table: true},
		{Key: "val_nll", Label: "val NLL", Table: true},
		{Key: "val_ppl", Label: "val ppl"},
	}
}

// Evaluate implements Task: NLL of the validation episodes and the mean
// reward and valid-action rate of rollouts in the built-in environments
// (tasks round-robin), written to dir/rollouts.
func (d *DojoTask) Evaluate(ctx context.Context, t *train.Trainer, dir string) (map[string]float64, error) {
	ev, err := valNLL(t, d.in.Val)
	if err != nil {
		return nil, err
	}
	reg, err := local.NewBuiltinRegistry(filepath.Join(os.TempDir(), "smtrain-builtin-tasks"), d.Seed)
	if err != nil {
		return nil, err
	}
	o := decode.DefaultOptions()
	o.Temperature, o.TopP = d.Temperature, 0.95
	o.MaxNewTokens = max(16, t.Params().Cfg.NPositions/2)
	if d.MaxNew > 0 {
		o.MaxNewTokens = d.MaxNew
	}
	o.Workers, o.BatchSize = 1, 1
	if d.Constrain {
		g := envbridge.NewActionGrammar()
		if need := g.Dist(g.Start()); o.MaxNewTokens < need {
			return nil, fmt.Errorf("dojo: a constrained reply needs at least %d tokens; n_positions %d leaves %d", need, t.Params().Cfg.NPositions, o.MaxNewTokens)
		}
		o.Grammar = g
	}
	pol := &rollout.ChatPolicy{CP: decode.NewChatPolicy(t.Params(), t.Tokenizer(), o)}
	out := filepath.Join(dir, "rollouts")
	if err := os.RemoveAll(out); err != nil { // a re-evaluation starts afresh
		return nil, err
	}
	s, err := rollout.Run(ctx, pol, &rollout.RegistrySpec{Reg: reg, Tasks: reg.Tasks(), Opts: envbridge.Options{Seed: int64(d.Seed), MaxSteps: d.MaxSteps, TimeBudget: d.Budget}},
		rollout.Options{Episodes: d.Episodes, Parallel: 1, MaxSteps: d.MaxSteps, Seed: int64(d.Seed), Out: out}, nil)
	if err != nil {
		return nil, err
	}
	scored, code, codeErr, err := rolloutCode(s)
	if err != nil {
		return nil, err
	}
	eps := float64(max(1, s.Episodes))
	return map[string]float64{
		"mean_reward":               s.MeanReward,
		"scoring_rate":              float64(scored) / eps,
		"valid_action_rate":         s.ValidActionRate,
		"code_error_rate":           float64(codeErr) / float64(max(1, code)),
		"failed_episodes":           float64(s.Failed),
		"bkspc_per_episode":         float64(s.Backspaces) / eps,
		"bkspc_in_code_per_episode": float64(s.BackspacesInCode) / eps,
		"val_nll":                   ev.NLL,
		"val_ppl":                   ev.Perplexity,
	}, nil
}

// rolloutCode counts a rollout's scoring episodes and, from the episodes'
// MLE-Dojo history files, the code actions that ran and those that raised.
func rolloutCode(s rollout.Summary) (scored, code, codeErr int, err error) {
	for _, r := range s.Results {
		if r.Reward > 0 {
			scored++
		}
		if r.Dir == "" || r.Failed != "" {
			continue
		}
		e, c, herr := rollout.CodeErrors(r.Dir)
		if herr != nil {
			return 0, 0, 0, herr
		}
		code += c
		codeErr += e
	}
	return scored, code, codeErr, nil
}
