// Package expert is a scripted agent that solves tabular MLE-Dojo-style
// tasks (the built-in ones in particular) with standard-library Python:
// logistic regression by gradient descent, k-nearest neighbours, least
// squares via the normal equations, nearest centroids, naive Bayes and a
// mean baseline. It acts through the real environment, writing assistant
// turns in MLE-Dojo's agent format (prose + a ```json action block), and
// its episodes are the built-in training data of `smtrain collect`.
// Solutions, information requests and occasional error-then-fix turns are
// chosen by a seeded RNG.
package expert

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/local"
)

// Options tune the expert.
type Options struct {
	// BugRate is the probability that a first solution attempt contains a
	// deliberate mistake that the next turn fixes (default 0.35).
	BugRate float64
	// ExploreRate is the probability of a validate_code look at the data
	// before the first submission (default 0.5).
	ExploreRate float64
	// ImproveRate is the probability of trying a second model after the
	// first successful submission (default 0.6).
	ImproveRate float64
	// Style is StyleVaried (default, "" too) or StyleCanonical; the rates
	// above apply to StyleVaried only.
	Style string
}

func (o Options) withDefaults() Options {
	if o.BugRate == 0 {
		o.BugRate = 0.35
	}
	if o.ExploreRate == 0 {
		o.ExploreRate = 0.5
	}
	if o.ImproveRate == 0 {
		o.ImproveRate = 0.6
	}
	return o
}

// Result summarises an expert episode.
type Result struct {
	Task         string        `json:"task"`
	Steps        int           `json:"steps"`
	TotalReward  float64       `json:"total_reward"`
	BestRaw      float64       `json:"best_raw_score"`
	BestPosition float64       `json:"best_position_score"`
	Submissions  int           `json:"submissions"`
	FailedSteps  int           `json:"failed_steps"`
	Bugs         []string      `json:"bugs,omitempty"`
	Models       []string      `json:"models"`
	Duration     time.Duration `json:"duration_ns"`
}

// ErrBudget is returned when the step budget ran out before a successful
// submission.
var ErrBudget = errors.New("expert: step budget exhausted before a successful submission")

type agent struct {
	env  *local.Env
	r    *rand.Rand
	opts Options
	res  *Result
	obs  envbridge.Observation
	done bool // truncated
}

// Run plays one episode on env (which it resets with seed) and records
// every turn in env's trajectory. The episode needs at least 4 steps
// (6-10 recommended).
func Run(ctx context.Context, env *local.Env, seed int64, r *rand.Rand, opts Options) (Result, error) {
	opts = opts.withDefaults()
	if opts.Style != "" && !slices.Contains(Styles, opts.Style) {
		return Result{}, fmt.Errorf("expert: unknown style %q (want %s)", opts.Style, strings.Join(Styles, " or "))
	}
	start := time.Now()
	task := env.Task()
	res := Result{Task: task.Name}
	obs, _, err := env.Reset(ctx, seed)
	if err != nil {
		return res, err
	}
	if err := env.AppendMessage("user", envbridge.FormatInitialPrompt(obs)); err != nil {
		return res, err
	}
	a := &agent{env: env, r: r, opts: opts, res: &res, obs: obs}
	if opts.Style == StyleCanonical {
		err = a.playCanonical(ctx)
	} else {
		err = a.play(ctx)
	}
	st := env.Stats()
	res.Steps, res.TotalReward, res.Submissions = st.Steps, st.TotalReward, st.Submissions
	if v, ok := st.BestRaw.(float64); ok {
		res.BestRaw = v
	}
	if v, ok := st.BestPosition.(float64); ok {
		res.BestPosition = v
	}
	res.Duration = time.Since(start)
	return res, err
}

// act sends one assistant turn and returns the observation.
func (a *agent) act(ctx context.Context, prose string, act envbridge.Action) (envbridge.StepResult, error) {
	text := envbridge.FormatAction(prose, act)
	// The expert's text must parse back to its action exactly.
	parsed, err := envbridge.ParseAction(text)
	if err != nil || parsed.Name != act.Name {
		return envbridge.StepResult{}, fmt.Errorf("expert: own action does not parse: %v", err)
	}
	if err := a.env.AppendMessage("assistant", text); err != nil {
		return envbridge.StepResult{}, err
	}
	res, err := a.env.Step(ctx, parsed)
	if err != nil {
		return res, err
	}
	a.obs = res.Obs
	if res.Obs["action_status"] == "FAILED" {
		a.res.FailedSteps++
	}
	if res.Truncated {
		a.done = true
		return res, nil
	}
	if err := a.env.AppendMessage("user", envbridge.FormatObservation(res.Obs)); err != nil {
		return res, err
	}
	return res, nil
}

func (a *agent) pick(opts ...string) string { return opts[a.r.IntN(len(opts))] }

func info(t string) envbridge.Action {
	return envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": t}}
}

func code(name, c string) envbridge.Action {
	return envbridge.Action{Name: name, Params: map[string]any{"code": c}}
}

var pathRE = regexp.MustCompile(`'(data_path|output_path)': '([^']*)'`)

func (a *agent) play(ctx context.Context) error {
	task := a.env.Task()
	kind := kindOf(task.Metric.Name)
	paths := map[string]string{}
	learn := func(res envbridge.StepResult) {
		for _, m := range pathRE.FindAllStringSubmatch(envbridge.FeedbackText(res.Obs), -1) {
			paths[m[1]] = m[2]
		}
	}
	// 1. Information requests, MLE-Dojo style.
	var plan []string
	if a.r.Float64() < 0.25 {
		plan = []string{"all"}
	} else {
		plan = []string{"overview"}
		rest := []string{"sample_submission", "data_structure"}
		a.r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		if a.r.Float64() < 0.3 {
			rest = rest[:1]
		}
		plan = append(plan, rest...)
		plan = append(plan, "data_path", "output_path")
	}
	for i, t := range plan {
		var prose string
		switch {
		case t == "all":
			prose = a.pick("Let me start by requesting all the competition information at once: the overview, the sample submission, the data layout and the input/output paths.",
				"First I need the full picture of the competition, so I will request all available information.")
		case i == 0:
			prose = a.pick("Okay, let's start by gathering information about the competition.",
				"I'll begin by reading the competition overview to understand the task and the metric.",
				"First, let me look at the competition description.")
		case t == "sample_submission":
			prose = a.pick("Okay, I have the overview. Now I need to understand the submission format.",
				"Next, the sample submission, so that my output matches the expected format.")
		case t == "data_structure":
			prose = a.pick("Now let me see which data files are available.",
				"I need to know the structure of the data directory.")
		case t == "data_path":
			prose = a.pick("Now I need the data path to load the data.", "Next, where are the data files?")
		case t == "output_path":
			prose = a.pick("Now I need the output path to save the submission.", "And where should the submission be written?")
		}
		res, err := a.act(ctx, prose, info(t))
		if err != nil {
			return err
		}
		learn(res)
		if a.done {
			return ErrBudget
		}
	}
	data, out := paths["data_path"], paths["output_path"]
	if data == "" || out == "" {
		return errors.New("expert: data_path/output_path not found in the feedback")
	}
	hasCat := trainHasText(task)
	// 2. Optional look at the data.
	if a.r.Float64() < a.opts.ExploreRate {
		prose := a.pick("Before modelling, let me validate a small script that loads the data and prints its shape, columns and target distribution.",
			"Let me first check the data with a quick exploratory script.")
		res, err := a.act(ctx, prose, code(envbridge.ActValidateCode, exploreCode(data, task.Targets[0])))
		if err != nil {
			return err
		}
		if a.done {
			return ErrBudget
		}
		if res.Obs["action_status"] != "SUCCESS" {
			return fmt.Errorf("expert: exploration failed: %s", envbridge.FeedbackText(res.Obs))
		}
	}
	// 3. First model, maybe with a bug; then maybe an improvement.
	models := modelsFor(kind, a.r)
	a.r.Shuffle(len(models), func(i, j int) { models[i], models[j] = models[j], models[i] })
	if kind == Regression && a.r.Float64() < 0.3 {
		// Sometimes start from the baseline, as careful competitors do.
		for i, m := range models {
			if m.Name == "mean baseline" {
				models[0], models[i] = models[i], models[0]
			}
		}
	} else if models[0].Name == "mean baseline" {
		models[0], models[1] = models[1], models[0]
	}
	nTries := 1
	if a.r.Float64() < a.opts.ImproveRate || models[0].Name == "mean baseline" {
		nTries = 2
	}
	for k := 0; k < nTries && k < len(models); k++ {
		m := models[k]
		full := program(m, data, out, task.IDColumn, task.Targets[0])
		var prose string
		if k == 0 {
			prose = a.pick("I have all the information I need. I will train ", "Now I will write the full solution using only the Python standard library: ",
				"Okay, time to build a model. I'll use ") + m.Prose + ", and write the predictions for the test set to submission.csv."
		} else {
			prose = fmt.Sprintf("The submission scored %s. Let me try to improve it with %s.", a.scoreText(), m.Prose)
		}
		attempt := full
		var b *bug
		if k == 0 && a.r.Float64() < a.opts.BugRate {
			var cands []bug
			for _, x := range bugs {
				if x.ok(kind, hasCat) {
					cands = append(cands, x)
				}
			}
			bb := cands[a.r.IntN(len(cands))]
			b = &bb
			attempt = bb.apply(full)
			a.res.Bugs = append(a.res.Bugs, bb.name)
		}
		res, err := a.act(ctx, prose, code(envbridge.ActExecuteCode, attempt))
		if err != nil {
			return err
		}
		a.res.Models = append(a.res.Models, m.Name)
		if b != nil && res.Obs["action_status"] == "SUCCESS" {
			return fmt.Errorf("expert: deliberate bug %q did not fail", b.name)
		}
		if res.Obs["action_status"] != "SUCCESS" {
			if b == nil {
				return fmt.Errorf("expert: %s failed:\n%s", m.Name, envbridge.FeedbackText(res.Obs))
			}
			if a.done {
				return ErrBudget
			}
			res, err = a.act(ctx, b.fixMsg, code(envbridge.ActExecuteCode, full))
			if err != nil {
				return err
			}
			if res.Obs["action_status"] != "SUCCESS" {
				return fmt.Errorf("expert: fixed %s failed:\n%s", m.Name, envbridge.FeedbackText(res.Obs))
			}
		}
		if a.done {
			break
		}
	}
	if a.env.Stats().BestRaw == nil {
		return ErrBudget
	}
	return nil
}

func (a *agent) scoreText() string {
	raw, _ := a.obs["current_raw_score"].(float64)
	pos, _ := a.obs["current_position_score"].(float64)
	return fmt.Sprintf("%.5g (position score %.3f)", raw, pos)
}

// trainHasText reports whether train.csv has a non-numeric feature column
// (peeking at the header and first row on the host).
func trainHasText(t *local.Task) bool {
	b, err := os.ReadFile(filepath.Join(t.PublicDir, "train.csv"))
	if err != nil {
		return false
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 {
		return false
	}
	head, row := strings.Split(lines[0], ","), strings.Split(lines[1], ",")
	for i, h := range head {
		if i >= len(row) || h == t.IDColumn || h == t.Targets[0] {
			continue
		}
		if !isNum(row[i]) {
			return true
		}
	}
	return false
}

func isNum(s string) bool {
	var f float64
	_, err := fmt.Sscan(s, &f)
	return err == nil
}
