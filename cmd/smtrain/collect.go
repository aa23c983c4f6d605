package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"smtrain/envbridge/expert"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
)

var cmdCollect = &Command{
	Name:      "collect",
	UsageLine: "smtrain collect [-task builtin:NAME|all] [-style varied|canonical] [-episodes N] [-seed S] [-task_seed S] [-parallel P] [-max_steps N] [-timeout D] -out DIR",
	Short:     "write expert trajectories on the built-in tasks (MLE-Dojo run folders)",
	Long: `Collect runs the scripted expert agent on the built-in MLE-Dojo-style tasks
(` + strings.Join(tasks.Names(), ", ") + `) through the local environment
and its sandbox, and writes every episode in MLE-Dojo's run-folder layout:

  OUT/<task>-<n>/agent_history/trajectory.json   the chat the expert saw
  OUT/<task>-<n>/env_history/history.json        the environment's record

plus OUT/collect_summary.json. The expert writes standard-library Python
(logistic regression by gradient descent, k-nearest neighbours, least
squares, nearest centroids, naive Bayes, mean baseline) chosen by a seeded
RNG, sometimes with a first attempt that fails and a fix in the next turn.
With -style canonical every episode is the same two turns instead: request
all the information, then one short program (logistic or linear regression, or k-NN) whose
only episode-dependent parts are the paths, the column names and the
prediction line for the metric's kind (the target of make dojo).
Episodes are spread round-robin over the tasks; a finished episode folder
is never rewritten, so an interrupted collection resumes where it stopped.
'smtrain fit -data OUT' trains on the result.`,
}

func init() { cmdCollect.Run = runCollect }

func runCollect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdCollect.NewFlagSet(stderr)
	task := fs.String("task", "all", "builtin:NAME or all")
	episodes := fs.Int("episodes", 30, "number of episodes")
	seed := fs.Uint64("seed", 1, "expert RNG seed")
	taskSeed := fs.Uint64("task_seed", tasks.DefaultSeed, "data seed of the built-in tasks (rollout -seed S draws the tasks with seed S)")
	parallel := fs.Int("parallel", 2, "episodes run concurrently")
	maxSteps := fs.Int("max_steps", 10, "action budget per episode (at least 4)")
	timeout := fs.Duration("timeout", 60*time.Second, "wall-clock limit per code run")
	out := fs.String("out", "", "output folder (required)")
	quiet := fs.Bool("quiet", false, "no per-episode progress lines")
	style := fs.String("style", expert.StyleVaried, "expert episodes: varied (models, bugs and fixes, explorations chosen at random) or canonical (all information, then one fixed short program per problem kind: the target make dojo trains on)")
	if err := cmdCollect.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	if *out == "" {
		return usagef("-out is required")
	}
	if *episodes <= 0 {
		return usagef("-episodes must be positive, got %d", *episodes)
	}
	if *parallel <= 0 {
		return usagef("-parallel must be positive, got %d", *parallel)
	}
	if *maxSteps < 4 {
		return usagef("-max_steps must be at least 4, got %d", *maxSteps)
	}
	if !slices.Contains(expert.Styles, *style) {
		return usagef("-style %q: want %s", *style, strings.Join(expert.Styles, " or "))
	}
	names, err := parseBuiltinTasks(*task)
	if err != nil {
		return err
	}
	if iso, perr := sandbox.Probe(); perr != nil {
		fmt.Fprintf(stderr, "collect: sandbox isolation: %s\n", iso)
	}
	if *taskSeed == 0 {
		return usagef("-task_seed must be positive")
	}
	opts := expert.CollectOptions{Tasks: names, Episodes: *episodes, Seed: *seed, TaskSeed: *taskSeed, Out: *out, Parallel: *parallel,
		MaxSteps: *maxSteps, Sandbox: sandbox.Config{Timeout: *timeout}, Expert: expert.Options{Style: *style}}
	if !*quiet {
		opts.Progress = func(done, total int, r expert.Result) {
			fmt.Fprintf(stdout, "episode %d/%d | %s | steps %d | best raw %.4g | position %.3f | %s\n",
				done, total, r.Task, r.Steps, r.BestRaw, r.BestPosition, strings.Join(r.Models, " -> "))
		}
	}
	s, err := expert.Collect(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, s.Table())
	return nil
}

// parseBuiltinTasks turns "all" or "builtin:NAME[,builtin:NAME]" into task
// names.
func parseBuiltinTasks(spec string) ([]string, error) {
	if spec == "all" || spec == "builtin:all" {
		return tasks.Names(), nil
	}
	var out []string
	for _, p := range strings.Split(spec, ",") {
		name, ok := strings.CutPrefix(strings.TrimSpace(p), "builtin:")
		if !ok {
			return nil, usagef("-task %q: want builtin:NAME or all (built-in tasks: %s)", p, strings.Join(tasks.Names(), ", "))
		}
		found := false
		for _, n := range tasks.Names() {
			found = found || n == name
		}
		if !found {
			return nil, usagef("-task %q: unknown built-in task (have %s)", p, strings.Join(tasks.Names(), ", "))
		}
		out = append(out, name)
	}
	return out, nil
}
