package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"smtrain/data"
	"smtrain/envbridge"
	"smtrain/train"
)

var cmdFit = &Command{
	Name:      "fit",
	UsageLine: "smtrain fit [-config FILE.yaml|json] [-data PATH ...] [-task arith|dojo] [-objective NAME] [-init CKPT] [-out DIR] [-steps N] [-seed S] [-resume|-overwrite] [flags for every config key]",
	Short:     "train a policy on trajectories with MLE, BC or a SequenceMatch objective",
	Long: `Fit trains a GPT-2 style policy with a backspace action.

Data: -data takes MLE-Dojo run folders (agent_history/trajectory.json with
env_history/history.json, found recursively), AIDE journal.json files and
JSONL chats (one episode per line: {"messages":[...],"reward":x}); repeat it
or separate paths with commas. -task arith trains on the arithmetic task of
the SequenceMatch paper; -task dojo (the default without -data) on expert
trajectories collected in the built-in MLE-Dojo-style environments.

Objectives (-objective): mle, bc, chi2mix (default), chi2, kl, js, hellinger,
tv; see DESIGN.md 4 for the exact losses.

-init CKPT starts from a checkpoint: a run folder (its latest checkpoint),
a checkpoint folder, or HF GPT-2 weights (model.safetensors + config.json in
HF naming, with its tokenizer.json, or GPT-2's vocab.json + merges.txt, or
-tokenizer FILE). The checkpoint's
shape and tokenizer are used. A tokenizer without smtrain's special tokens
(<bkspc>, <pad>, <eos>, role markers, <|end|>) gets them appended, and the
token embedding (tied LM head) grows by as many rows, each the mean of the
old rows plus noise of 1% of their spread (the new <eos> starts from the
checkpoint's eos_token_id row); the logits of the old tokens are unchanged.
A vocab_size rounded up to a multiple of 64 (nanoGPT stores GPT-2's 50,257
tokens in 50,304 rows) has its rows past the tokenizer's tokens dropped as
padding first (fewer than 128 of them; more means a wrong tokenizer).
-resume takes precedence over -init.

-seq_mode (default auto) keeps an episode whole when it fits n_positions
and otherwise trains one sequence per assistant turn (with the earlier
history as its prompt), so long multi-turn episodes (MLE-Dojo runs) keep
every action; 'episode' always keeps whole episodes (left-truncated, a long
one keeps only its last turns), 'turn' always splits.

Online imitation: -replay_env SPEC (as rollout -env; several, comma-separated,
are taken in turn) fills SequenceMatch's G side with the policy's own
multi-turn episodes: at every replay refresh (replay_every steps) the current
policy plays replay_samples episodes (at most 10 actions, replies up to
n_positions/2 tokens, replay_temperature) and each episode, with the
observations the environment returned, is split like the expert data and put
into the replay buffer; OUT/replay_env/step-N keeps the rollouts and
metrics.jsonl a "replay" event per refresh (episodes, mean reward, scoring
rate, valid-action rate, code error rate, backspaces per episode).
-replay_data DIR puts the episodes of earlier rollout folders into the buffer
at the start. builtin: environments draw the tasks with -seed.

Configuration: defaults < -config file (YAML or JSON) < flags. Every config
key is also a flag of the same name (-lr, -batch_size, -eta, ...). Unknown
keys are an error. The resolved config is written to OUT/config.json, one
JSON object per event to OUT/metrics.jsonl, checkpoints to OUT/ckpt-%08d/
(with a 'latest' marker). -resume continues from OUT/latest bit-exactly.
A new run refuses an OUT that already holds one (metrics, a latest marker
or checkpoints): pass -resume to continue it or -overwrite to delete its
files and start over.
SIGINT/SIGTERM save a checkpoint and exit with status 130.`,
}

func init() { cmdFit.Run = runFit }

func runFit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdFit.NewFlagSet(stderr)
	configPath := fs.String("config", "", "YAML or JSON config file")
	resume := fs.Bool("resume", false, "continue from OUT/latest")
	overwrite := fs.Bool("overwrite", false, "delete the run already in OUT (config.json, metrics.jsonl, latest, checkpoints) and start over")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the run to this file (go tool pprof)")
	reschedule := fs.Bool("reschedule", false, "with -resume: accept new steps/lr/min_lr/warmup_steps, which change the learning-rate schedule from the checkpoint's step on")
	bind := train.BindFlags(fs)
	if err := cmdFit.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	if *resume && *overwrite {
		return usagef("give -resume or -overwrite, not both")
	}
	cfg, err := resolveConfig(*configPath, bind, *resume)
	if err != nil {
		return err
	}
	if *resume && !*reschedule {
		if err := checkResumeSchedule(cfg); err != nil {
			return err
		}
	}
	if *overwrite {
		if err := train.ClearRun(cfg.Out); err != nil {
			return fmt.Errorf("-overwrite: %w", err)
		}
	}
	in, err := fitInputs(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	if err := replayInputs(cfg, &in); err != nil {
		return err
	}
	t, err := train.New(cfg, in, *resume, stdout)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := t.Run(ctx); err != nil {
		if errors.Is(err, train.ErrInterrupted) {
			return &ExitError{Code: 130, Err: fmt.Errorf("interrupted at step %d; checkpoint saved, continue with -resume", t.Step())}
		}
		return err
	}
	return nil
}

// replayMaxSteps is the most actions of a replay episode (the environments'
// limit and the policy's).
const replayMaxSteps = 10

// replayInputs adds the environments of cfg.ReplayEnv and the episodes of
// cfg.ReplayData to in.
func replayInputs(cfg train.Config, in *train.Inputs) error {
	if len(cfg.ReplayData) > 0 {
		res, err := data.Load(cfg.ReplayData, cfg.SkipBad)
		if err != nil {
			return fmt.Errorf("replay_data: %w", err)
		}
		in.ReplayData = res.Episodes
	}
	specs := joinEnvSpecs(cfg.ReplayEnv)
	if len(specs) == 0 {
		return nil
	}
	var multi train.MultiEnvSpec
	for _, sp := range specs {
		es, err := parseEnvSpec(sp, filepath.Join(cfg.Out, train.EnvReplayDir), uint64(cfg.Seed), envbridge.Options{MaxSteps: replayMaxSteps, TimeBudget: 10 * time.Minute})
		if err != nil {
			return fmt.Errorf("replay_env: %w", err)
		}
		multi = append(multi, es)
	}
	// A reply of an environment episode gets half the context, or
	// replay_max_new when it is set away from its single-turn default: the
	// prompt is cut to n_positions - MaxNew, so a budget that leaves the
	// episodes' prompts whole matters (see results/dojo).
	maxNew := cfg.NPositions / 2
	if cfg.ReplayMaxNew != train.DefaultConfig().ReplayMaxNew {
		maxNew = cfg.ReplayMaxNew
	}
	in.EnvReplay = &train.EnvReplay{Spec: multi, Describe: strings.Join(specs, " + "), Parallel: 1, MaxSteps: replayMaxSteps, MaxNew: maxNew}
	return nil
}

// joinEnvSpecs undoes the comma split of a list config key for env specs:
// http:// addresses without a '#TASK' belong to the next one that has it
// (http://a,http://b#task is one spec: a pool of two servers).
func joinEnvSpecs(parts []string) []string {
	var out, pending []string
	for _, p := range parts {
		if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
			pending = append(pending, p)
			if strings.Contains(p, "#") {
				out = append(out, strings.Join(pending, ","))
				pending = nil
			}
			continue
		}
		out = append(out, p)
	}
	if len(pending) > 0 {
		out = append(out, strings.Join(pending, ","))
	}
	return out
}

// startCPUProfile starts a Go CPU profile written to path; the returned
// function stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// resolveConfig applies defaults < file < flags. With resume and no file,
// the run's own OUT/config.json is the file.
func resolveConfig(path string, bind *train.FlagBinding, resume bool) (train.Config, error) {
	cfg := train.DefaultConfig()
	if path == "" && resume {
		probe := cfg
		if err := bind.Apply(&probe); err != nil {
			return cfg, &UsageError{Err: err}
		}
		path = filepath.Join(probe.Out, train.ConfigOutFile)
	}
	src := train.Sources{File: path, Flags: bind}
	if path != "" {
		var err error
		if src.Lines, err = train.LoadConfigFileLines(path, &cfg); err != nil {
			return cfg, err
		}
	}
	if err := bind.Apply(&cfg); err != nil {
		return cfg, &UsageError{Err: err}
	}
	return cfg, configError(cfg.ValidateFrom(src))
}

// configError maps a config validation error to the command's error: a bad
// flag value is a usage error (exit 2), a bad file value (named by file and
// line, like the file's type errors) a runtime error (exit 1).
func configError(err error) error {
	var ke *train.KeyError
	if err == nil || (errors.As(err, &ke) && !ke.Flag) {
		return err
	}
	return &UsageError{Err: err}
}

// fitInputs loads the episodes named by cfg (files, or a built-in task).
func fitInputs(ctx context.Context, cfg *train.Config, stderr io.Writer) (train.Inputs, error) {
	if len(cfg.Data) > 0 {
		res, err := data.LoadWith(cfg.Data, data.LoadOptions{SkipBad: cfg.SkipBad, StrictUTF8: cfg.StrictUTF8, Progress: loadProgress(stderr)})
		if err != nil {
			return train.Inputs{}, err
		}
		skipped := reportSkipped(stderr, res, filepath.Join(cfg.Out, train.SkippedFile))
		reportInvalidUTF8(stderr, res)
		eps := filterReward(res.Episodes, cfg.MinReward)
		if len(eps) == 0 {
			return train.Inputs{}, fmt.Errorf("no episodes in %v (after min_reward %s: %d of %d kept)", cfg.Data, cfg.MinReward, len(eps), len(res.Episodes))
		}
		return train.Inputs{Train: eps, Describe: fmt.Sprintf("%d files", res.Files), Skipped: skipped}, nil
	}
	task := cfg.Task
	if task == "" {
		task = "dojo"
		cfg.Task = task
	}
	switch task {
	case "arith":
		return arithInputs(*cfg)
	case "copy", "sort", "reverse":
		return stringInputs(*cfg)
	case "dojo":
		return dojoInputs(ctx, *cfg, stderr)
	}
	return train.Inputs{}, fmt.Errorf("unknown task %q", task)
}

func arithInputs(cfg train.Config) (train.Inputs, error) {
	ac := data.ArithConfig{Digits: cfg.ArithDigits, Base: cfg.ArithBase, Op: cfg.ArithOps,
		Reversed: cfg.ArithRev, NTrain: cfg.ArithTrain, NTest: cfg.ArithTest, Seed: uint64(cfg.Seed)}
	tr, te, err := data.ArithSplits(ac)
	if err != nil {
		return train.Inputs{}, err
	}
	in := train.Inputs{Tokenizer: data.ArithTokenizer(),
		Describe: fmt.Sprintf("arith %d-digit base %d %s", cfg.ArithDigits, cfg.ArithBase, cfg.ArithOps)}
	for _, p := range tr {
		in.Train = append(in.Train, p.Episode())
	}
	for _, p := range te {
		in.Val = append(in.Val, p.Episode())
	}
	return in, nil
}

// filterReward keeps episodes whose final score is at least min (episodes
// without a score are kept only when no minimum is set).
func filterReward(eps []data.Episode, min train.OptFloat) []data.Episode {
	if !min.Set {
		return eps
	}
	var out []data.Episode
	for _, e := range eps {
		if !math.IsNaN(e.Reward) && e.Reward >= min.V {
			out = append(out, e)
		}
	}
	return out
}
