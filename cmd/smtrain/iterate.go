package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"smtrain/envbridge/rollout"
	"smtrain/internal/atomicfile"
	"smtrain/train"
)

var cmdIterate = &Command{
	Name:      "iterate",
	UsageLine: "smtrain iterate -init CKPT -out DIR [-data PATHS] [-iterations N] [-env SPEC] [-episodes N] [-seed S] [-heldout_seeds S,S] [-min_reward R] [-top_k K] [-steps N] [-fit_args \"...\"] [rollout flags]",
	Short:     "expert iteration: roll out, keep the best episodes, train on them, repeat",
	Long: `Iterate runs expert iteration from the policy -init (a fit output folder
or checkpoint). Iteration i (1..N):

  1. rollout: the current policy plays -episodes episodes of -env (for
     builtin: environments the data draw is -seed + i, so each iteration sees
     new data) into OUT/iter-i/rollout;
  2. keep: finished episodes with reward >= -min_reward, at most -top_k per
     task (highest reward first), copied to OUT/data/iter-i-<episode>; with
     -cut_after_best (default) each ends at the turn that reached its best
     reward, so what the policy did after scoring is not trained on; with
     -max_code_errors N an episode with more code actions that raised
     (before its best turn, when cut) is dropped;
  3. fit: smtrain fit -data PATHS,OUT/data -init <previous checkpoint>
     -out OUT/iter-i/fit -steps N plus -fit_args (the model's n_positions is
     passed on), i.e. training continues from the previous policy on the
     expert data plus every policy episode kept so far;
  4. held-out: the new checkpoint plays -heldout_episodes episodes on each
     data draw of -heldout_seeds (never a training draw) into
     OUT/iter-i/heldout/seed-S.

Iteration 0 is the held-out evaluation of -init. Each iteration's
checkpoint and rollout folders are kept. OUT/summary.md (a table per
iteration: rollout reward, episodes kept, held-out mean reward, scoring rate
and valid-action rate), OUT/summary.json and OUT/reward.svg are rewritten
after every iteration; an iteration whose OUT/iter-i/row.json exists is not
run again.`,
}

func init() { cmdIterate.Run = runIterate }

func runIterate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdIterate.NewFlagSet(stderr)
	initCk := fs.String("init", "", "starting policy: fit output folder or checkpoint (required)")
	out := fs.String("out", "", "output folder (required)")
	dataPaths := fs.String("data", "", "expert data trained on in every iteration (comma-separated paths)")
	iters := fs.Int("iterations", 3, "iterations")
	envSpec := fs.String("env", "builtin:all", "training environments (as rollout -env)")
	episodes := fs.Int("episodes", 6, "rollout episodes per iteration")
	seed := fs.Int64("seed", 1000, "base seed: iteration i rolls out with seed + i")
	heldout := fs.String("heldout_seeds", "101,102", "held-out data draws (rollout -seed of builtin:all), comma-separated")
	heldoutEps := fs.Int("heldout_episodes", 3, "held-out episodes per held-out seed")
	minReward := fs.Float64("min_reward", 0.001, "keep rollout episodes with at least this reward")
	topK := fs.Int("top_k", 2, "keep at most this many episodes per task per iteration (0: all)")
	cutAfterBest := fs.Bool("cut_after_best", true, "keep a kept episode only up to the turn that reached its best reward (and the observation after it)")
	maxCodeErrors := fs.Int("max_code_errors", -1, "drop a kept episode in which more code actions raised (counted after -cut_after_best; -1: no limit)")
	steps := fs.Int("steps", 200, "fit steps per iteration")
	fitArgs := fs.String("fit_args", "", "extra fit flags, space-separated (e.g. \"-objective mle -lr 1e-3 -batch_size 4\")")
	maxSteps := fs.Int("max_steps", 10, "actions per episode")
	maxNew := fs.Int("max_new", 1024, "maximum tokens per reply")
	temp := fs.String("temperature", "0.3", "sampling temperature of the rollouts")
	constrain := fs.String("constrain", "none", "constrain rollout replies: action|none")
	if err := cmdIterate.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	switch {
	case *initCk == "" || *out == "":
		return usagef("-init and -out are required")
	case *iters <= 0 || *episodes <= 0 || *heldoutEps <= 0 || *steps <= 0 || *topK < 0:
		return usagef("-iterations, -episodes, -heldout_episodes and -steps must be positive, -top_k non-negative")
	}
	var hseeds []int64
	for _, s := range strings.Split(*heldout, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return usagef("-heldout_seeds %q: %v", *heldout, err)
		}
		hseeds = append(hseeds, v)
	}
	_, p, _, err := loadPolicy(*initCk)
	if err != nil {
		return err
	}
	nPos := p.Cfg.NPositions
	if err := os.MkdirAll(filepath.Join(*out, "data"), 0o755); err != nil {
		return err
	}
	command := "smtrain iterate " + strings.Join(args, " ")
	roll := func(ck, dir string, sd int64, n int) (rollout.Summary, error) {
		a := []string{"-ckpt", ck, "-env", *envSpec, "-episodes", fmt.Sprint(n), "-seed", fmt.Sprint(sd), "-max_steps", fmt.Sprint(*maxSteps),
			"-max_new", fmt.Sprint(*maxNew), "-temperature", *temp, "-constrain", *constrain, "-out", dir}
		fmt.Fprintf(stdout, "+ smtrain rollout %s\n", strings.Join(a, " "))
		if err := runRollout(ctx, a, stdout, stderr); err != nil {
			if ctx.Err() != nil {
				return rollout.Summary{}, err
			}
			fmt.Fprintf(stderr, "iterate: rollout %s: %v (failed episodes count as reward 0)\n", dir, err)
		}
		var s rollout.Summary
		b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err != nil {
			return s, err
		}
		return s, json.Unmarshal(b, &s)
	}
	evalHeldout := func(ck string, it int, row *train.IterRow) error {
		var rew, scored, valid float64
		n := 0
		for _, h := range hseeds {
			s, err := roll(ck, filepath.Join(*out, fmt.Sprintf("iter-%d", it), "heldout", fmt.Sprintf("seed-%d", h)), h, *heldoutEps)
			if err != nil {
				return err
			}
			for _, r := range s.Results {
				rew += r.Reward
				if r.Reward > 0 {
					scored++
				}
				n++
			}
			valid += s.ValidActionRate * float64(s.Episodes)
		}
		if n > 0 {
			row.HeldoutEpisodes, row.HeldoutReward, row.HeldoutScoring, row.HeldoutValid = n, rew/float64(n), scored/float64(n), valid/float64(n)
		}
		return nil
	}
	var rows []train.IterRow
	prev, dataEps := *initCk, 0
	for it := 0; it <= *iters; it++ {
		itDir := filepath.Join(*out, fmt.Sprintf("iter-%d", it))
		rowFile := filepath.Join(itDir, "row.json")
		if b, err := os.ReadFile(rowFile); err == nil {
			var row train.IterRow
			if err := json.Unmarshal(b, &row); err != nil {
				return fmt.Errorf("%s: %w", rowFile, err)
			}
			rows = append(rows, row)
			prev, dataEps = row.Ckpt, row.DataEpisodes
			fmt.Fprintf(stdout, "iteration %d: done before (%s)\n", it, rowFile)
			continue
		}
		row := train.IterRow{Iteration: it, Ckpt: prev, DataEpisodes: dataEps}
		if it > 0 {
			s, err := roll(prev, filepath.Join(itDir, "rollout"), *seed+int64(it), *episodes)
			if err != nil {
				return err
			}
			kept := train.KeepEpisodes(s.Results, *minReward, *topK)
			dirs, err := train.CopyEpisodes(kept, filepath.Join(*out, "data"), fmt.Sprintf("iter-%d", it), *cutAfterBest)
			if err != nil {
				return err
			}
			if *maxCodeErrors >= 0 {
				if dirs, err = train.DropFailedCode(dirs, *maxCodeErrors); err != nil {
					return err
				}
			}
			row.RolloutEpisodes, row.RolloutReward, row.Kept = s.Episodes, s.MeanReward, len(dirs)
			dataEps += len(dirs)
			row.DataEpisodes = dataEps
			fmt.Fprintf(stdout, "iteration %d: rollout mean reward %.3f, kept %d episodes (%d policy episodes in the data)\n", it, s.MeanReward, len(dirs), dataEps)
			paths := []string{}
			if *dataPaths != "" {
				paths = append(paths, *dataPaths)
			}
			if dataEps > 0 {
				paths = append(paths, filepath.Join(*out, "data"))
			}
			if len(paths) == 0 {
				return fmt.Errorf("iteration %d: no data to train on (no -data and no episode kept)", it)
			}
			fitDir := filepath.Join(itDir, "fit")
			a := []string{"-data", strings.Join(paths, ","), "-init", prev, "-out", fitDir, "-steps", fmt.Sprint(*steps),
				"-n_positions", fmt.Sprint(nPos), "-overwrite"}
			a = append(a, strings.Fields(*fitArgs)...)
			fmt.Fprintf(stdout, "+ smtrain fit %s\n", strings.Join(a, " "))
			if err := runFit(ctx, a, stdout, stderr); err != nil {
				return fmt.Errorf("iteration %d: fit: %w", it, err)
			}
			row.Ckpt = fitDir
		}
		if err := evalHeldout(row.Ckpt, it, &row); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "iteration %d: held-out mean reward %.3f, scoring rate %.2f over %d episodes\n", it, row.HeldoutReward, row.HeldoutScoring, row.HeldoutEpisodes)
		rows = append(rows, row)
		b, err := json.MarshalIndent(row, "", "  ")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(itDir, 0o755); err != nil {
			return err
		}
		if err := train.WriteIterSummary(*out, command, rows); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(rowFile, b); err != nil {
			return err
		}
		prev = row.Ckpt
	}
	b, err := os.ReadFile(filepath.Join(*out, "summary.md"))
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}
