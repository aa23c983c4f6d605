package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"smtrain/decode"
	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
	"smtrain/envbridge/local"
	"smtrain/envbridge/rollout"
	"smtrain/internal/apikey"
)

var cmdRollout = &Command{
	Name:      "rollout",
	UsageLine: "smtrain rollout -ckpt DIR -env builtin:TASK|builtin:all|dir:PATH/COMP|http://HOST:PORT[,http://...][#TASK] [-episodes N] [-parallel P] [-max_steps N] [-time_budget S] [-seed S] [-temperature T] [-max_new N] [-constrain action|none] [-env_key_file FILE] -out DIR",
	Short:     "run a trained policy in environments and write MLE-Dojo trajectories",
	Long: `Rollout plays episodes with a trained policy. Each episode is a chat: the
environment's observations are user turns (the same template the training
data uses), the policy's replies are assistant turns, and the action is the
last fenced json block {"action": ..., "params": ...} of each reply. A reply
without a valid action is answered with an error observation and counts as an
invalid action. With -constrain action every reply is decoded under a grammar
of that format (grammar-constrained decoding: only tokens that keep the reply
a prefix of a valid one, completable within -max_new, may be sampled; the
policy's probabilities are renormalised over them), so every action parses
and validates; what the code does is still the policy's.

Environments: builtin:TASK (or builtin:all, round-robin) for the built-in
MLE-Dojo-style tasks, dir:PATH/COMP for a competition in MLE-Dojo's prepared
layout, or http://HOST:PORT (several, comma-separated, spread round-robin;
add #TASK for the task) for 'smtrain env serve' or the Python adapter of a
real MLE-Dojo. Servers started with API keys get theirs from -env_key_file
FILE (lines 'http://HOST:PORT KEY' for one server, 'KEY' for the others),
else from the file named by $SMTRAIN_ENV_KEYS_FILE, else $SMTRAIN_ENV_API_KEY
(one key for every server); keys go in the Authorization header only.

Every episode is written as it goes to OUT/<task>-<n>/agent_history/
trajectory.json and env_history/history.json (MLE-Dojo's layout, so
'smtrain fit -data OUT' trains on them); finished episodes are recorded in
OUT/rollout_state.json and not replayed when the command is run again.
The command exits 1 when any episode failed, with a line saying how many and
why; episodes whose environment server could not be reached (after retrying
the connection for up to 20 s) are not recorded, so rerunning the same
command plays them. An unfinished episode's folder holds a PARTIAL file,
and the data loaders skip it with a note.
A summary (episodes, mean/best reward, valid-action rate, steps, backspaces,
wall time) is printed and written to OUT/summary.json.`,
}

func init() { cmdRollout.Run = runRollout }

func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdRollout.NewFlagSet(stderr)
	ckpt := fs.String("ckpt", "", "checkpoint folder or training output folder (required)")
	envSpec := fs.String("env", "builtin:all", "environment: builtin:TASK|builtin:all|dir:PATH/COMP|http://HOST:PORT[,...][#TASK]")
	episodes := fs.Int("episodes", 3, "number of episodes")
	parallel := fs.Int("parallel", 2, "episodes run concurrently")
	maxSteps := fs.Int("max_steps", 6, "actions per episode")
	budget := fs.Duration("time_budget", 10*time.Minute, "wall-clock budget per episode")
	seed := fs.Int64("seed", 1, "random seed (environments and sampling)")
	temp := fs.Float64("temperature", 0.8, "sampling temperature")
	topP := fs.Float64("top_p", 0.95, "top-p filtering (0 or 1: off)")
	maxNew := fs.Int("max_new", 256, "maximum tokens per reply")
	constrain := addConstrainFlag(fs, "constrain replies")
	weights := addWeightsFlag(fs)
	envKeys := addEnvKeyFlag(fs)
	out := fs.String("out", "", "output folder (required)")
	if err := cmdRollout.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	switch {
	case *ckpt == "":
		return usagef("-ckpt is required")
	case *out == "":
		return usagef("-out is required")
	case *episodes <= 0 || *parallel <= 0 || *maxSteps <= 0:
		return usagef("-episodes, -parallel and -max_steps must be positive")
	case !(*temp > 0):
		return usagef("-temperature must be positive")
	case *maxNew <= 0:
		return usagef("-max_new must be positive")
	}
	dir, p, tok, err := loadPolicy(*ckpt)
	if err != nil {
		return err
	}
	keys, err := apikey.LoadClient(*envKeys)
	if err != nil {
		return err
	}
	spec, err := parseEnvSpecKeys(*envSpec, *out, uint64(*seed), envbridge.Options{MaxSteps: *maxSteps, TimeBudget: *budget}, keys)
	if err != nil {
		return err
	}
	if ps, ok := spec.(*poolSpec); ok {
		if err := ps.pool.CheckKeys(ctx); err != nil { // a wrong key fails now, not in every episode
			return err
		}
	}
	o := decode.DefaultOptions()
	o.Temperature, o.TopP, o.MaxNewTokens = *temp, *topP, min(*maxNew, p.Cfg.NPositions/2)
	o.Workers = 1
	o.Grammar = constrain.grammar()
	w, err := weights.load(p)
	if err != nil {
		return err
	}
	cp := decode.NewChatPolicy(p, tok, o)
	cp.Weights = w
	pol := &rollout.ChatPolicy{CP: cp}
	fmt.Fprintf(stderr, "rollout: %d episodes on %s with %s, %s weights (%d parallel, %d steps each)\n", *episodes, *envSpec, dir, w.Format(), *parallel, *maxSteps)
	s, err := rollout.Run(ctx, pol, spec, rollout.Options{Episodes: *episodes, Parallel: *parallel, MaxSteps: *maxSteps, Seed: *seed, Out: *out},
		func(r rollout.EpisodeResult) {
			status := "ok"
			if r.Failed != "" {
				status = "failed: " + r.Failed
			}
			fmt.Fprintf(stdout, "episode %d | %s | steps %d | reward %.3f | valid %d/%d | ⌫ %d | %.1fs | %s\n",
				r.Index, r.Task, r.Steps, r.Reward, r.ValidActions, r.ValidActions+r.InvalidAction, r.Backspaces, r.WallS, status)
		})
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Fprintf(stdout, "summary: %d episodes (%d failed) | mean reward %.3f | best %.3f | valid-action rate %.2f | mean steps %.1f | backspaces %d | %.1fs | %s\n",
		s.Episodes, s.Failed, s.MeanReward, s.BestReward, s.ValidActionRate, s.MeanSteps, s.Backspaces, s.WallS, filepath.Join(*out, "summary.json"))
	if s.PromptCuts > 0 {
		fmt.Fprintf(stderr, "rollout: %d replies saw a history cut to n_positions - max_new tokens (the policy saw less than the episode so far; with absolute positions that is also a shift the policy never trained on): lower -max_new, or train with a larger n_positions, to keep whole histories\n", s.PromptCuts)
	}
	if err != nil {
		return &ExitError{Code: 130, Err: errors.New("interrupted; finished episodes are kept, rerun to continue")}
	}
	if line := s.FailureLine(); line != "" {
		return &ExitError{Code: 1, Err: errors.New(line)}
	}
	return nil
}

type poolSpec struct {
	pool *httpenv.Pool
	task string
	opts envbridge.Options
}

func (p *poolSpec) Task(int) string { return p.task }

func (p *poolSpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	return p.pool.Env(p.task, p.opts), nil
}

// parseEnvSpec is parseEnvSpecKeys with the env servers' keys from the
// environment ($SMTRAIN_ENV_KEYS_FILE, $SMTRAIN_ENV_API_KEY).
func parseEnvSpec(spec, out string, seed uint64, opts envbridge.Options) (rollout.EnvSpec, error) {
	return parseEnvSpecKeys(spec, out, seed, opts, nil)
}

// parseEnvSpecKeys parses an -env spec; keys are sent to http:// servers
// (nil: apikey.LoadClient's environment defaults).
func parseEnvSpecKeys(spec, out string, seed uint64, opts envbridge.Options, keys *apikey.ClientKeys) (rollout.EnvSpec, error) {
	switch {
	case strings.HasPrefix(spec, "builtin:"):
		reg, err := local.NewBuiltinRegistry(filepath.Join(os.TempDir(), "smtrain-builtin-tasks"), seed)
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(spec, "builtin:")
		tasks := reg.Tasks()
		if name != "all" {
			if _, err := reg.Task(name); err != nil {
				return nil, usagef("-env %s: unknown built-in task (have %s)", spec, strings.Join(reg.Tasks(), ", "))
			}
			tasks = []string{name}
		}
		return &rollout.RegistrySpec{Reg: reg, Tasks: tasks, Opts: opts}, nil
	case strings.HasPrefix(spec, "dir:"):
		p := filepath.Clean(strings.TrimPrefix(spec, "dir:"))
		reg, err := local.NewDirRegistry(filepath.Dir(p))
		if err != nil {
			return nil, err
		}
		if _, err := reg.Task(filepath.Base(p)); err != nil {
			return nil, err
		}
		return &rollout.RegistrySpec{Reg: reg, Tasks: []string{filepath.Base(p)}, Opts: opts}, nil
	case strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://"):
		urls, task, _ := strings.Cut(spec, "#")
		if task == "" {
			return nil, usagef("-env %s: name the task after '#', e.g. %s#titanic", spec, urls)
		}
		pool, err := httpenv.NewPool(urls, httpenv.ClientOptions{Keys: keys})
		if err != nil {
			return nil, usagef("-env: %v", err)
		}
		return &poolSpec{pool: pool, task: task, opts: opts}, nil
	}
	return nil, usagef("-env %q: want builtin:TASK, builtin:all, dir:PATH/COMP or http://HOST:PORT#TASK", spec)
}
