// Package local is an MLE-Dojo-compatible environment that runs on this
// machine: it reads a competition in MLE-Dojo's prepared layout, runs the
// agent's Python code in the sandbox (envbridge/sandbox) on a fresh
// workspace holding only the public files, scores submissions in Go
// (envbridge/metrics), and writes MLE-Dojo's env_history/history.json after
// every step and the episode's agent_history/trajectory.json into its run
// folder (Options.RunDir; rollout passes the episode folder).
//
// Fidelity. Feedback texts, statuses, rewards and what is recorded in
// history.json match the real KaggleEnvironment (MLE-Dojo 667a8fd) byte for
// byte where ../shared/mledojo/real-feedback shows them
// (TestLocalMatchesRealFeedback replays its 11 actions): request_info,
// validate_code (syntax and runtime failures), execute_code (scored,
// missing and invalid submissions, silent failure "Execution failed:"),
// get_history and reset (recorded, FAILED "Invalid interface mode: ..."
// feedback; reset restarts the history with a step-0 entry). Steps the real
// env.step raises on (invalid actions, InfoError) are not recorded.
//
// Deliberate differences, and why:
//   - A step the real env raises on gets an answer here (the error
//     observation of envbridge.InvalidActionAsObservation, info
//     history_recorded false), as the Python adapter answers it, so the
//     HTTP protocol never fails on agent input.
//   - Observations carry remaining_steps and remaining_seconds (the real
//     env has no budget; MLE-Dojo's agent loop tracks it), and the step
//     budget truncates the episode (envbridge.StepBudget).
//   - Code runs in smtrain's sandbox: the data folder is /workspace/data,
//     the output folder /workspace/output and tracebacks name
//     /sandbox/code.py (the real env runs a temporary file on the host,
//     with no isolation); limits add notes such as "TimeoutError: execution
//     exceeded the time limit of Ns and was killed".
//   - Submission validation messages use one wording for every task; the
//     real ones come from each competition's metric.py (titanic's
//     row-count message lacks "Please ensure both have the same number of
//     rows.", which most others have).
//   - Scores are computed by Go metrics (envbridge/metrics), and leaderboard
//     rows with an empty or NaN score are skipped. The real env keeps them
//     in the total and sorts them with Python's sorted(), whose order with
//     NaN is not defined, so no rule reproduces its positions.
//   - The reset action also empties output/ (the real one keeps the files).
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/sandbox/safefs"
	"smtrain/internal/atomicfile"
)

// Paths of the data and output folders inside the sandbox.
const (
	SandboxDataDir   = "/workspace/data"
	SandboxOutputDir = "/workspace/output"
)

// Options configure an environment.
type Options struct {
	// MaxSteps is the action budget (0: unlimited). The step that uses the
	// last action returns Truncated.
	MaxSteps int
	// TimeBudget is the wall-clock budget of an episode, code execution
	// included (0: unlimited). Each code run is also capped by what is left.
	TimeBudget time.Duration
	// Sandbox holds the limits for agent code.
	Sandbox sandbox.Config
	// RunDir receives env_history/history.json and
	// agent_history/trajectory.json (MLE-Dojo's run-folder layout). Empty:
	// a folder under WorkRoot, removed by Close.
	RunDir string
	// WorkRoot holds the per-episode workspaces (default: the OS temp dir).
	WorkRoot string
	// KeepWorkspace keeps the workspace after Close (for debugging).
	KeepWorkspace bool
	// Now is the clock (default time.Now); tests may fix it.
	Now func() time.Time
}

// Message is one chat turn of agent_history/trajectory.json.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Env is the local environment. It implements envbridge.Env and
// envbridge.HistoryProvider. Methods are safe for concurrent use (calls are
// serialised).
type Env struct {
	task *Task
	opts Options

	mu        sync.Mutex
	closed    bool
	tmpRun    bool
	workspace string
	start     time.Time
	steps     envbridge.StepBudget // the step-budget rule (Options.MaxSteps)
	truncated bool
	isolation string

	// MLE-Dojo state.
	totalReward        float64
	currentRaw, curPos float64
	bestRaw, bestPos   any // nil or float64
	bestCode           any
	stepCount          int
	history            omap
	actions            []any
	messages           []Message
	submissions        int
	invalidActions     int
}

var _ envbridge.Env = (*Env)(nil)

// New creates an environment for task. Call Reset before Step.
func New(task *Task, opts Options) (*Env, error) {
	if task == nil {
		return nil, errors.New("local env: nil task")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WorkRoot == "" {
		opts.WorkRoot = defaultWorkRoot()
	}
	if err := os.MkdirAll(opts.WorkRoot, 0o755); err != nil {
		return nil, fmt.Errorf("local env: %w", err)
	}
	e := &Env{task: task, opts: opts}
	if e.opts.RunDir == "" {
		d, err := sandbox.NewOwnedDir(opts.WorkRoot, task.Name+"-run-")
		if err != nil {
			return nil, fmt.Errorf("local env: %w", err)
		}
		e.opts.RunDir, e.tmpRun = d, true
	}
	iso := opts.Sandbox.Isolation
	if iso == "" || iso == sandbox.IsolationAuto || iso == sandbox.IsolationBwrap {
		iso, _ = sandbox.Probe()
	}
	e.isolation = iso
	if !e.bwrap() && os.Geteuid() == 0 {
		// The fallback sandbox drops root to another uid, which must be
		// able to reach the workspace by its host path.
		if err := traversable(opts.WorkRoot); err != nil {
			return nil, fmt.Errorf("local env: without bwrap the work root must be reachable by other users: %w", err)
		}
	}
	return e, nil
}

// traversable checks that every directory from / to dir is searchable by
// other users.
func traversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s has mode %v (needs o+x)", d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Task returns the environment's task.
func (e *Env) Task() *Task { return e.task }

// RunDir is the folder holding env_history/ and agent_history/.
func (e *Env) RunDir() string { return e.opts.RunDir }

// Workspace is the current episode's workspace on the host (data/ and
// output/ inside); empty before Reset.
func (e *Env) Workspace() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workspace
}

// bwrap reports whether agent code sees the /workspace paths.
func (e *Env) bwrap() bool { return e.isolation == sandbox.IsolationBwrap }

// dataPath and outputPath are the folders as agent code must name them.
func (e *Env) dataPath() string {
	if e.bwrap() {
		return SandboxDataDir
	}
	return filepath.Join(e.workspace, "data")
}

func (e *Env) outputPath() string {
	if e.bwrap() {
		return SandboxOutputDir
	}
	return filepath.Join(e.workspace, "output")
}

// Reset starts a new episode: a fresh workspace, a fresh history.json and
// an empty trajectory. The seed is recorded; the environment itself has no
// randomness.
func (e *Env) Reset(ctx context.Context, seed int64) (envbridge.Observation, envbridge.Info, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, nil, errors.New("local env: reset after close")
	}
	if err := e.newWorkspace(); err != nil {
		return nil, nil, err
	}
	e.start = e.opts.Now()
	e.steps = envbridge.StepBudget{Max: e.opts.MaxSteps}
	e.truncated, e.submissions, e.invalidActions = false, 0, 0
	e.messages = nil
	e.resetState()
	if err := e.writeHistory(); err != nil {
		return nil, nil, err
	}
	if err := e.writeTrajectory(); err != nil {
		return nil, nil, err
	}
	obs := envbridge.Observation{
		"action_status":          "SUCCESS",
		"feedback":               map[string]any{"base": map[string]any{"feedback_status": "SUCCESS", "feedback": "Environment reset successfully"}},
		"total_reward":           0.0,
		"current_raw_score":      0.0,
		"current_position_score": 0.0,
		"best_raw_score":         nil,
		"best_position_score":    nil,
		"history_summary":        "History initialized",
	}
	e.budget(obs)
	info := envbridge.Info{"competition": e.task.Name, "seed": seed, "metric": e.task.Metric.Name,
		"higher_is_better": e.task.HigherIsBetter, "isolation": e.isolation}
	return obs, info, nil
}

// resetState is MLE-Dojo's reset(): scores, best code and history.
func (e *Env) resetState() {
	e.totalReward, e.currentRaw, e.curPos = 0, 0, 0
	e.bestRaw, e.bestPos, e.bestCode = nil, nil, nil
	e.stepCount = 0
	e.actions = []any{}
	e.history = omap{{"competition", e.task.Name}, {"actions", nil}, {"total_reward", 0.0},
		{"best_code", nil}, {"best_raw_score", nil}, {"best_position_score", nil},
		{"step_count", 0}, {"created_at", isoTime(e.opts.Now())}}
}

func (e *Env) newWorkspace() error {
	if e.workspace != "" && !e.opts.KeepWorkspace {
		sandbox.RemoveWorkspace(e.workspace)
	}
	// Mode 0777 (the sandbox may run agent code under another uid), with
	// the byte and file quota of e.opts.Sandbox where it can be mounted.
	cfg := e.opts.Sandbox
	if !e.bwrap() {
		// The public data is hard-linked into the workspace below; on a
		// quota file system it would be copied, at every Reset.
		cfg.WorkspaceFS = sandbox.WorkspaceFSNone
	}
	ws, _, err := cfg.NewWorkspace(e.opts.WorkRoot, e.task.Name+"-ws-")
	if err != nil {
		return fmt.Errorf("local env: %w", err)
	}
	if err := os.Mkdir(filepath.Join(ws, "output"), 0o777); err != nil {
		return fmt.Errorf("local env: workspace: %w", err)
	}
	os.Chmod(filepath.Join(ws, "output"), 0o777)
	e.workspace = ws
	if !e.bwrap() {
		// Without bwrap there are no binds: give the workspace its own
		// data/ (hard links, or copies across file systems), so that agent
		// code running under another uid never needs to traverse the task
		// folder (which may sit in a private home directory).
		if err := linkTree(e.task.PublicDir, filepath.Join(ws, "data")); err != nil {
			return fmt.Errorf("local env: workspace data: %w", err)
		}
	}
	return nil
}

// linkTree recreates src under dst with directories 0755 and files hard
// linked (copied when linking fails), readable by everyone.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if err := os.Link(p, target); err == nil {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// budget writes remaining_steps / remaining_seconds into obs.
func (e *Env) budget(obs envbridge.Observation) {
	e.steps.Annotate(obs)
	if e.opts.TimeBudget > 0 {
		left := e.opts.TimeBudget - e.opts.Now().Sub(e.start)
		obs[envbridge.KeyRemainingSeconds] = max(0, int(math.Ceil(left.Seconds())))
	}
}

// timeLeft is the remaining time budget (a large value when unlimited).
func (e *Env) timeLeft() time.Duration {
	if e.opts.TimeBudget <= 0 {
		return math.MaxInt64
	}
	return e.opts.TimeBudget - e.opts.Now().Sub(e.start)
}

// Step performs one MLE-Dojo action with the real environment's rules:
// every step uses one action of the budget (envbridge.StepBudget), but a
// step MLE-Dojo's env.step would raise on (an invalid action, an InfoError)
// is not recorded in history.json and is answered like the Python adapter
// answers the raise: an error observation, reward 0, info invalid_action
// and history_recorded false (envbridge.InvalidActionAsObservation's
// shape). get_history and reset run as in MLE-Dojo 667a8fd: recorded, with
// the feedback manager's FAILED "Invalid interface mode" feedback; reset
// also restarts the history and the scores. Only infrastructure failures
// are returned as errors.
func (e *Env) Step(ctx context.Context, a envbridge.Action) (envbridge.StepResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return envbridge.StepResult{}, errors.New("local env: step after close")
	}
	if e.workspace == "" {
		return envbridge.StepResult{}, envbridge.ErrResetNeeded
	}
	if e.truncated {
		return envbridge.StepResult{}, errors.New("local env: episode is over (budget used up); call Reset")
	}
	if msg := envbridge.InvalidReason(a); msg != "" {
		e.invalidActions++
		return e.finish(e.unrecorded(a.Name, msg)), nil
	}
	var (
		result   omap
		reward   float64
		feedback omap
		fbText   string
		err      error
	)
	ok := func(text string) omap {
		return omap{{"base", omap{{"feedback_status", "SUCCESS"}, {"feedback", text}}}}
	}
	switch a.Name {
	case envbridge.ActRequestInfo:
		result = e.requestInfo(a.Params["info_type"].(string))
		if str(result, "status") != "SUCCESS" {
			// MLE-Dojo's get_info returns an InfoError dict, which the
			// info feedback cannot render: env.step raises.
			e.invalidActions++
			return e.finish(e.unrecorded(a.Name, "Error in feedback generation for action 'request_info': "+str(result, "error")+": "+str(result, "details"))), nil
		}
		fbText = infoFeedback(result)
		feedback = ok(fbText)
	case envbridge.ActValidateCode:
		result, err = e.validateCode(ctx, a.Params["code"].(string))
		fbText = validationFeedback(result)
		feedback = ok(fbText)
	case envbridge.ActExecuteCode:
		code := a.Params["code"].(string)
		result, reward, err = e.executeCode(ctx, code)
		fbText = executionFeedback(result, e.bestRaw, e.bestPos)
		feedback = ok(fbText)
	case envbridge.ActGetHistory:
		result = omap{{"status", "SUCCESS"}, {"data", e.historySnapshot()}}
	case envbridge.ActReset:
		e.resetState()
		if rerr := e.clearOutput(); rerr != nil {
			err = rerr
		}
		// MLE-Dojo: the reset observation is the result (no status).
		result = omap{{"feedback", "Environment reset successfully"}, {"total_reward", 0.0}, {"current_raw_score", 0.0},
			{"current_position_score", 0.0}, {"history_summary", "History initialized"}}
	}
	if err != nil {
		return envbridge.StepResult{}, err
	}
	if feedback == nil {
		// MLE-Dojo's FeedbackManager has no processor for this action.
		feedback = omap{{"base", omap{{"feedback_status", "FAILED"}, {"error", invalidModeError(a.Name)}}}}
	}
	if a.Name != envbridge.ActReset {
		e.stepCount++
	}
	e.totalReward += reward
	e.actions = append(e.actions, omap{{"step", e.stepCount}, {"action", a.Name}, {"timestamp", isoTime(e.opts.Now())},
		{"result", result}, {"feedback", feedback}})
	if werr := e.writeHistory(); werr != nil {
		return envbridge.StepResult{}, werr
	}
	var status any
	if v, ok := result.get("status"); ok {
		status = v
	}
	base := map[string]any{"feedback_status": "SUCCESS", "feedback": fbText}
	if fbText == "" {
		base = map[string]any{"feedback_status": "FAILED", "error": invalidModeError(a.Name)}
	}
	obs := envbridge.Observation{
		"action_status":          status,
		"feedback":               map[string]any{"base": base},
		"current_raw_score":      e.currentRaw,
		"current_position_score": e.curPos,
		"best_raw_score":         e.bestRaw,
		"best_position_score":    e.bestPos,
		"history_summary":        e.historySummary(),
	}
	info := envbridge.Info{"action": a.Name, "status": status}
	if s := sub(result, "submission"); s != nil {
		info["submission_status"] = str(s, "status")
		if str(s, "status") == "SUCCESS" {
			info["raw_score"], _ = s.get("raw_score")
			info["position_score"] = reward
		}
	}
	return e.finish(envbridge.StepResult{Obs: obs, Reward: reward, Info: info}), nil
}

// invalidModeError is MLE-Dojo's FeedbackManager error for an action it
// has no feedback processor for (get_history, reset).
func invalidModeError(action string) string {
	return "Invalid interface mode: " + action + ", supported modes: validate_code, execute_code, request_info"
}

// unrecorded answers a step the real env.step raises on; nothing is
// recorded and the scores are unchanged.
func (e *Env) unrecorded(action, msg string) envbridge.StepResult {
	prev := envbridge.Observation{"current_raw_score": e.currentRaw, "current_position_score": e.curPos,
		"best_raw_score": e.bestRaw, "best_position_score": e.bestPos, "history_summary": e.historySummary()}
	return envbridge.StepResult{Obs: envbridge.InvalidActionObservation(msg, prev), Info: envbridge.InvalidActionInfo(action, msg)}
}

// finish applies the budgets to a step's result: one action used
// (envbridge.StepBudget), remaining_seconds, and truncation when either
// budget is gone.
func (e *Env) finish(res envbridge.StepResult) envbridge.StepResult {
	e.steps.Count(&res)
	e.budget(res.Obs)
	res.Info["step"] = e.steps.Used
	if res.Truncated || e.timeLeft() <= 0 {
		res.Truncated, e.truncated = true, true
	}
	return res
}

func (e *Env) clearOutput() error {
	// The output folder is agent-made: removed through safefs, never
	// following a link and within its entry, depth and time bounds.
	ws, err := safefs.OpenDir(e.workspace)
	if err != nil {
		return fmt.Errorf("local env: clearing output: %w", err)
	}
	defer ws.Close()
	if err := ws.RemoveAll("output", safefs.Limits{}); err != nil {
		return fmt.Errorf("local env: clearing output: %w", err)
	}
	if err := ws.Mkdir("output", 0o777); err != nil {
		return fmt.Errorf("local env: %w", err)
	}
	return nil
}

// requestInfo is MLE-Dojo's InfoInterface.get_info.
func (e *Env) requestInfo(infoType string) omap {
	providers := []struct {
		name string
		get  func() (any, error)
	}{
		{"overview", func() (any, error) {
			b, err := os.ReadFile(filepath.Join(e.task.PublicDir, "description.txt"))
			if os.IsNotExist(err) {
				return "No description available", nil
			}
			return string(b), err
		}},
		{"sample_submission", e.sampleSubmission},
		{"data_structure", func() (any, error) {
			if b, err := os.ReadFile(filepath.Join(e.task.PublicDir, "data_structure.txt")); err == nil {
				return string(b), nil
			}
			return buildTree(e.task.PublicDir, "", true, 10), nil
		}},
		{"data_path", func() (any, error) { return e.dataPath(), nil }},
		{"output_path", func() (any, error) { return e.outputPath(), nil }},
		{"name", func() (any, error) { return e.task.Name, nil }},
		{"metadata", func() (any, error) {
			return omap{{"category", "Tabular"}, {"level", "intermediate"}, {"output_type", "submission.csv"},
				{"higher_is_better", e.task.HigherIsBetter}, {"tldr", nil}, {"tags", []any{}}}, nil
		}},
	}
	data := omap{}
	for _, p := range providers {
		if infoType != "all" && infoType != p.name {
			continue
		}
		v, err := p.get()
		if err != nil {
			r := mledojoError("InfoError", "Error retrieving "+p.name, err.Error(), "")
			return r
		}
		data = append(data, kv{p.name, v})
	}
	return omap{{"status", "SUCCESS"}, {"data", data}}
}

// sampleSubmission is pandas' read_csv(...).head(3).to_dict().
func (e *Env) sampleSubmission() (any, error) {
	p := filepath.Join(e.task.PublicDir, "sample_submission.csv")
	t, err := readTable(p)
	if os.IsNotExist(err) {
		return "No sample submission available", nil
	}
	if err != nil {
		return nil, err
	}
	n := min(3, len(t.rows))
	out := omap{}
	for c, h := range t.header {
		col := make([]string, len(t.rows))
		for i, r := range t.rows {
			if c < len(r) {
				col[i] = r[c]
			}
		}
		typed := pandasColumn(col)
		out = append(out, kv{h, intKeyMap(typed[:n])})
	}
	return out, nil
}

// buildTree is MLE-Dojo's build_tree (mledojo/gym/utils.py).
func buildTree(path, prefix string, isLast bool, maxItems int) string {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return prefix + "[Error accessing " + path + "]\n"
	}
	conn := "├── "
	if isLast {
		conn = "└── "
	}
	res := prefix + conn + filepath.Base(path) + "/\n"
	ents, err := os.ReadDir(path)
	if err != nil {
		ext := "│   "
		if isLast {
			ext = "    "
		}
		return res + prefix + ext + "[Permission denied]\n"
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var dirs, files []string
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), ".smtrain") {
			continue
		}
		if d.IsDir() {
			dirs = append(dirs, d.Name())
		} else {
			files = append(files, d.Name())
		}
	}
	np := prefix + "│   "
	if isLast {
		np = prefix + "    "
	}
	shownDirs := dirs[:min(len(dirs), maxItems)]
	for i, d := range shownDirs {
		res += buildTree(filepath.Join(path, d), np, i == len(shownDirs)-1 && len(files) == 0, maxItems)
	}
	if len(dirs) > maxItems {
		res += fmt.Sprintf("%s├── [and %d more directories]\n", np, len(dirs)-maxItems)
	}
	shownFiles := files[:min(len(files), maxItems)]
	for i, f := range shownFiles {
		c := "├── "
		if i == len(shownFiles)-1 {
			c = "└── "
		}
		res += np + c + f + "\n"
	}
	if len(files) > maxItems {
		res += fmt.Sprintf("%s└── [and %d more files]\n", np, len(files)-maxItems)
	}
	return res
}

func (e *Env) historySummary() string {
	if len(e.actions) == 0 {
		return "No actions taken yet."
	}
	last := e.actions[len(e.actions)-1].(omap)
	return fmt.Sprintf("Total Actions: %d, Last Action: %s", len(e.actions), str(last, "action"))
}

func (e *Env) historySummaryLong() string {
	var b strings.Builder
	b.WriteString(e.historySummary())
	for _, a := range e.actions {
		m := a.(omap)
		r := sub(m, "result")
		step, _ := m.get("step")
		fmt.Fprintf(&b, "\nStep %v: %s -> %s", step, str(m, "action"), str(r, "status"))
		if s := sub(r, "submission"); s != nil && str(s, "status") == "SUCCESS" {
			raw, _ := s.get("raw_score")
			fmt.Fprintf(&b, " (raw score %s)", pyRepr(raw))
		}
	}
	fmt.Fprintf(&b, "\nBest Raw Score: %s\nBest Position Score: %s", reprOrNA(e.bestRaw), reprOrNA(e.bestPos))
	return b.String()
}

func (e *Env) historySnapshot() omap {
	h := append(omap(nil), e.history...)
	h.set("actions", append([]any{}, e.actions...))
	h.set("total_reward", e.totalReward)
	h.set("step_count", e.stepCount)
	h.set("best_code", e.bestCode)
	h.set("best_raw_score", e.bestRaw)
	h.set("best_position_score", e.bestPos)
	return h
}

// History returns MLE-Dojo's history.json for the current episode.
func (e *Env) History() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.history == nil {
		return nil, envbridge.ErrResetNeeded
	}
	return json.MarshalIndent(e.historySnapshot(), "", "  ")
}

func (e *Env) writeHistory() error {
	b, err := json.MarshalIndent(e.historySnapshot(), "", "  ")
	if err != nil {
		return fmt.Errorf("local env: history: %w", err)
	}
	return writeAtomic(filepath.Join(e.opts.RunDir, "env_history", "history.json"), b)
}

// AppendMessage appends a chat turn to the episode's trajectory and
// rewrites agent_history/trajectory.json atomically. The agent (rollout,
// expert) appends both its own turns and the user turns it was shown
// (envbridge.FormatInitialPrompt / FormatObservation).
func (e *Env) AppendMessage(role, content string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.history == nil {
		return envbridge.ErrResetNeeded
	}
	e.messages = append(e.messages, Message{role, content})
	return e.writeTrajectory()
}

// Messages returns a copy of the trajectory so far.
func (e *Env) Messages() []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Message(nil), e.messages...)
}

func (e *Env) writeTrajectory() error {
	msgs := e.messages
	if msgs == nil {
		msgs = []Message{}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(msgs); err != nil {
		return fmt.Errorf("local env: trajectory: %w", err)
	}
	return writeAtomic(filepath.Join(e.opts.RunDir, "agent_history", "trajectory.json"), []byte(b.String()))
}

// Stats are counters of the current episode.
type Stats struct {
	Steps, InvalidActions, Submissions int
	TotalReward                        float64
	BestRaw, BestPosition              any
}

// Stats returns the current episode's counters.
func (e *Env) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{e.steps.Used, e.invalidActions, e.submissions, e.totalReward, e.bestRaw, e.bestPos}
}

// Close removes the workspace (and the run folder when it was temporary).
// It is idempotent.
func (e *Env) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if !e.opts.KeepWorkspace && e.workspace != "" {
		sandbox.RemoveWorkspace(e.workspace)
	}
	if e.tmpRun {
		sandbox.RemoveWorkspace(e.opts.RunDir)
	}
	return nil
}

func isoTime(t time.Time) string { return t.Format("2006-01-02T15:04:05.000000") }

// writeAtomic writes b to path (atomicfile.WriteFile), creating its
// directory.
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}
