package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"smtrain/data"
	"smtrain/train"
	"smtrain/train/compare"
)

var cmdCompare = &Command{
	Name:      "compare",
	UsageLine: "smtrain compare [-task arith|copy|sort|reverse|dojo|data:PATH] [-objectives mle,bc,chi2mix:policy,...] [-seeds N|S1,S2,...] [-steps N] [-noise 0,0.05,0.1] [-quick] [-parallel P] [-constrain action|none] [-config FILE] [flags for every config key] -out DIR",
	Short:     "train several objectives on the same data and seeds and compare them",
	Long: `Compare trains every objective at every noise level η with every seed, on
the same data with the same compute budget (steps, batch, model), evaluates
each run on held-out data and writes:

  DIR/results.json   one row per objective × seed × noise with every metric,
                     plus means and standard errors across seeds
  DIR/report.md      the table (mean ± standard error across seeds), the
                     regime and the exact command to reproduce
  DIR/*.png          loss curves per objective, validation NLL, and each
                     accuracy (or reward) metric against η with error bars
  DIR/runs/NAME/     each run's config, metrics.jsonl, checkpoints, result

Runs are resumable: a run with a stored result is not redone, an interrupted
run continues from its last checkpoint (rerun the same command). Objectives
that train on clean data (mle) are trained once per seed; their run serves
the rows of every noise level. Each run uses one kernel thread, so results
do not depend on -parallel.

Tasks and metrics:
  arith      the arithmetic task (operands, base and ops from -arith_digits,
             -arith_base, -arith_ops; -arith_train training questions,
             -val validation questions, -arith_test test questions, all
             disjoint). Exact-match accuracy on the test questions, greedy
             and at temperature 1, each with <bkspc> allowed and disallowed
             at decode time (and their difference, bk_gain_*); NLL and
             perplexity of the clean answers; backspace usage and its
             diagnostics: ⌫ recall (first wrong tokens followed by ⌫),
             false-⌫ rate (⌫ on a still-correct answer), ⌫ precision,
             corrected answers. -arith_reversed writes answers least
             significant digit first. Validation metrics are reported
             separately (val_*) for tuning; the test set is only used for
             reporting. report.md adds per-seed paired differences.
  copy, sort, reverse
             copy, sort or reverse a string of -str_min_len..-str_max_len
             symbols over -str_alphabet; scored like arith.
  dojo       expert trajectories collected in the built-in MLE-Dojo-style
             environments (-dojo_episodes of -dojo_style); rollouts
             (-rollouts episodes of -rollout_steps actions at
             -rollout_temperature on the held-out task data seed
             -rollout_task_seed): mean reward, scoring rate, valid-action
             rate, share of code runs that raised, ⌫ per episode and ⌫
             inside code strings; validation NLL. With -constrain action
             the replies are decoded under the action grammar (every
             action valid), so the rewards compare the policies' choices
             of action and code.
  data:PATH  trajectory files (as fit -data); NLL on a held-out split,
             n-gram repetition and diversity of sampled replies, exact
             match against the held-out episodes' own last assistant
             messages with the backspace diagnostics, and P(⌫ | the
             previous token's probability) in bins.

An objective may carry a noise kind, -objectives mle,bc:random,bc:policy,
chi2mix:unigram: each label is its own row (the kind overrides
-noise_kind for that objective's runs). A label ending in +env
(chi2mix+env) fills the run's replay buffer with the policy's own
episodes in the -env_replay environments (fit -replay_env); the report
pairs it with the same label without +env.

-quick is a preset for a smoke comparison in under 10 minutes on 2 cores
(1500 steps, 2 seeds, η 0 and 0.1 unless those flags are given).
Defaults: the arithmetic regime of results/arith (2-digit operands, base 10,
mixed + and −, normal digit order, 5000 train / 500 val / 1000 test
questions, 2-layer 64-wide model, 6000 steps of batch 32, 3 seeds) with
λ = 0.1 for the SequenceMatch objectives (selected on the validation split;
fit's default too).
Every config key of 'smtrain fit' is a flag (-lambda, -c, -warm_start,
-noise_kind, -lr, -n_layer, ...); -eta, -seed and -objective are set per
run from -noise, -seeds and -objectives.`,
}

func init() { cmdCompare.Run = runCompare }

// compareDefaults is the base configuration of a comparison: the
// arithmetic regime where MLE is unsaturated (2-digit operands, mixed + and
// −, normal digit order, 5000 training questions, 2-layer 64-wide model,
// 6000 steps of 32 sequences; MLE reached 72% greedy / 66% at temperature 1
// on the test questions in a pilot, see results/arith).
func compareDefaults() train.Config {
	c := train.DefaultConfig()
	c.Task = "arith"
	c.Steps, c.BatchSize = 6000, 32
	// λ = 0.1 (train.DefaultLambda) was selected on the validation split
	// (results/arith/sweep).
	c.ArithDigits, c.ArithBase, c.ArithOps, c.ArithTrain, c.ArithTest = 2, 10, "mixed", 5000, 1000
	c.EvalEvery, c.EvalBatches, c.EvalSamples = 250, 0, 0
	c.CkptEvery, c.LogEvery, c.KeepLast = 500, 50, 1
	c.Progress = "off"
	return c
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdCompare.NewFlagSet(stderr)
	taskF := fs.String("task", "arith", "arith, copy, sort, reverse, dojo or data:PATH")
	objF := fs.String("objectives", "mle,bc,chi2mix", "comma-separated objectives")
	seedsF := fs.String("seeds", "3", "number of seeds N (seeds 1..N) or a comma-separated list")
	noiseF := fs.String("noise", "0,0.05,0.1", "comma-separated noise rates η")
	out := fs.String("out", "", "comparison folder (required)")
	quick := fs.Bool("quick", false, "smoke preset: 1500 steps, 2 seeds, η 0,0.1 (under 10 minutes on 2 cores)")
	parallel := fs.Int("parallel", runtime.NumCPU(), "runs trained at once")
	configPath := fs.String("config", "", "YAML or JSON file with base config keys")
	nval := fs.Int("val", 500, "arith: validation questions (disjoint from train and test)")
	rollouts := fs.Int("rollouts", 6, "dojo: rollout episodes per run")
	rolloutSteps := fs.Int("rollout_steps", 4, "dojo: actions per rollout episode")
	rolloutTemp := fs.Float64("rollout_temperature", 0.8, "dojo: sampling temperature of the rollout replies (top-p 0.95)")
	rolloutMaxNew := fs.Int("rollout_max_new", 0, "dojo: tokens per rollout reply (0: half the context); the prompt is cut to the context minus this, so leave the episodes' prompts whole")
	rolloutSeed := fs.Uint64("rollout_task_seed", 1, "dojo: data seed of the built-in tasks the rollouts play (the expert data uses dojo_style episodes of task seed 2024: any other seed is held out)")
	envReplay := fs.String("env_replay", "builtin:all", "environments (as rollout -env) of the objectives labelled NAME+env, whose replay buffer holds the policy's own episodes")
	constrain := addConstrainFlag(fs, "dojo: constrain rollout replies")
	samples := fs.Int("samples", 64, "data: sampled replies per run for repetition/diversity")
	bind := train.BindFlags(fs)
	if err := cmdCompare.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	if constrain.action && *taskF != "dojo" {
		return usagef("-constrain applies to -task dojo only")
	}
	if !(*rolloutTemp > 0) || *rolloutMaxNew < 0 || *rolloutSeed == 0 {
		return usagef("-rollout_temperature and -rollout_task_seed must be positive and -rollout_max_new non-negative")
	}
	for _, k := range []string{"eta", "seed", "objective"} {
		if bind.IsSet(k) {
			return usagef("-%s is set per run; use -noise, -seeds or -objectives", k)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *out == "" {
		return usagef("-out is required")
	}
	if *parallel < 1 {
		return usagef("-parallel must be >= 1, got %d", *parallel)
	}
	if *nval < 1 || *rollouts < 1 || *rolloutSteps < 1 || *samples < 1 {
		return usagef("-val, -rollouts, -rollout_steps and -samples must be positive")
	}
	objs := splitList(*objF)
	if len(objs) == 0 {
		return usagef("-objectives is empty")
	}
	if *quick {
		if !set["seeds"] {
			*seedsF = "2"
		}
		if !set["noise"] {
			*noiseF = "0,0.1"
		}
		if !bind.IsSet("steps") {
			bind.Set("steps", "1500")
		}
	}
	seeds, err := parseSeeds(*seedsF)
	if err != nil {
		return usagef("-seeds: %v", err)
	}
	noise, err := parseFloats(*noiseF)
	if err != nil {
		return usagef("-noise: %v", err)
	}
	cfg := compareDefaults()
	if *configPath != "" {
		if err := train.LoadConfigFile(*configPath, &cfg); err != nil {
			return err
		}
	}
	if err := bind.Apply(&cfg); err != nil {
		return &UsageError{Err: err}
	}
	cfg.Out = *out
	if err := cfg.Validate(); err != nil {
		return &UsageError{Err: err}
	}

	var task compare.Task
	switch {
	case *taskF == "arith":
		cfg.Task = "arith"
		t, err := compare.NewArithTask(data.ArithConfig{Digits: cfg.ArithDigits, Base: cfg.ArithBase, Op: cfg.ArithOps,
			Reversed: cfg.ArithRev, NTrain: cfg.ArithTrain, NTest: cfg.ArithTest, Seed: 1}, *nval)
		if err != nil {
			return &UsageError{Err: err}
		}
		task = t
	case slices.Contains(data.StringTaskKinds, *taskF):
		cfg.Task = *taskF
		t, err := compare.NewStringTask(data.StringTaskConfig{Kind: *taskF, MinLen: cfg.StrMinLen, MaxLen: cfg.StrMaxLen,
			Alphabet: cfg.StrAlphabet, NTrain: cfg.ArithTrain, NTest: cfg.ArithTest, Seed: 1}, *nval)
		if err != nil {
			return &UsageError{Err: err}
		}
		task = t
	case *taskF == "dojo":
		cfg.Task, cfg.Data = "dojo", nil
		in, err := fitInputs(ctx, &cfg, stderr)
		if err != nil {
			return err
		}
		t, err := compare.NewDojoTask(in, cfg.ValFraction, *rollouts, *rolloutSteps)
		if err != nil {
			return err
		}
		t.Constrain, t.Temperature, t.MaxNew, t.Seed = constrain.action, *rolloutTemp, *rolloutMaxNew, *rolloutSeed
		task = t
	case strings.HasPrefix(*taskF, "data:"):
		path := strings.TrimPrefix(*taskF, "data:")
		if path == "" {
			return usagef("-task data:PATH needs a path")
		}
		cfg.Task, cfg.Data = "", []string{path}
		in, err := fitInputs(ctx, &cfg, stderr)
		if err != nil {
			return err
		}
		t, err := compare.NewTextTask(in, cfg.ValFraction, *samples)
		if err != nil {
			return err
		}
		task = t
	default:
		return usagef("-task %q: want arith, copy, sort, reverse, dojo or data:PATH", *taskF)
	}
	spec := compare.Spec{Objectives: objs, Seeds: seeds, Noise: noise, Base: cfg, Out: *out, EnvReplay: splitList(*envReplay), Inputs: replayInputs,
		Parallel: *parallel, Command: commandLine("smtrain compare", args), Log: stderr}
	if err := spec.Validate(); err != nil {
		return &UsageError{Err: err}
	}
	fmt.Fprintf(stderr, "compare: %s | %s | objectives %s | seeds %v | η %v | %d steps | %d parallel\n",
		task.Name(), task.Describe(), strings.Join(objs, ","), seeds, noise, cfg.Steps, *parallel)
	res, err := compare.Run(ctx, spec, task)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, train.ErrInterrupted) {
			return &ExitError{Code: 130, Err: errors.New("interrupted; checkpoints saved, rerun the same command to continue")}
		}
		return err
	}
	fmt.Fprintf(stdout, "%s\n", compare.SummaryTable(res))
	fmt.Fprintf(stdout, "wrote %s, %s and plots to %s (%.0fs)\n", compare.ResultsFile, compare.ReportFile, *out, res.WallS)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseSeeds reads "N" (seeds 1..N) or "S1,S2,...".
func parseSeeds(s string) ([]int64, error) {
	parts := splitList(s)
	if len(parts) == 1 {
		n, err := strconv.Atoi(parts[0])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("want a positive count or a list, got %q", s)
		}
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(i + 1)
		}
		return out, nil
	}
	var out []int64
	seen := map[int64]bool{}
	for _, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad seed %q", p)
		}
		if seen[n] {
			return nil, fmt.Errorf("seed %d listed twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no seeds")
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	seen := map[float64]bool{}
	for _, p := range splitList(s) {
		x, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", p)
		}
		if !(x >= 0 && x < 1) {
			return nil, fmt.Errorf("%v not in [0, 1)", x)
		}
		if seen[x] {
			return nil, fmt.Errorf("%v listed twice", x)
		}
		seen[x] = true
		out = append(out, x)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// commandLine quotes args for a POSIX shell.
func commandLine(prefix string, args []string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, a := range args {
		b.WriteByte(' ')
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == ',' || r == '/' || r == ':' || r == '=' || r == '+' ||
				(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
		}) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}
