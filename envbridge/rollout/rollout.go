// Package rollout drives a policy through environments: each episode is a
// chat (the environment's observations as user turns, the policy's replies
// as assistant turns), actions are parsed from the replies, and every episode
// is written in MLE-Dojo's run-folder layout as it goes, so `smtrain fit`
// reads rollouts back (closed loop).
//
// Where the episode rules live: every episode is played through
// envbridge.Wrap, so the step budget (envbridge.StepBudget via TimeLimit),
// invalid actions and steps the environment did not record
// (InvalidActionAsObservation: a reply that does not parse is sent to Step
// as envbridge.InvalidAction) and the counts (EpisodeStatistics) are
// written once, in envbridge. The environment's history.json is written by
// the environment itself into the episode folder (a local environment gets
// the folder as its run folder); an environment that only serves its
// history (the HTTP client) has it copied byte for byte after each step.
// Turns the environment did not record have no history entry: the loader
// (data.ParseMLEDojo) aligns turns with entries and gives them reward 0.
//
// Failures: an episode whose environment server could not be reached
// (httpenv.ErrServerGone) is not recorded as done, so running the same
// rollout again resumes it; any other failure is recorded. Until an episode
// finishes, its folder holds data.PartialMarker, which the loaders skip.
package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"smtrain/data"
	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
	"smtrain/internal/atomicfile"
)

// Reply is one policy turn.
type Reply struct {
	Text       string
	NumBkspc   int
	NumActions int
	HitCap     bool
	// BkspcInCode counts the <bkspc> actions taken inside an action's
	// code string (BkspcInCode), where a deleted token is a code edit.
	BkspcInCode int
	// PromptCut says the history was cut to fit the context with the
	// reply budget: the policy saw less than the whole episode so far.
	PromptCut bool
}

// Policy writes the next assistant turn for a chat history.
type Policy interface {
	Act(ctx context.Context, msgs []data.Message, seed uint64) (Reply, error)
}

// EnvSpec creates the environment of each episode.
type EnvSpec interface {
	// Task names the task of episode i (its folder is OUT/<task>-<i>).
	Task(episode int) string
	// Open creates the environment of episode i (Reset by the caller).
	// runDir is the episode's folder: an environment that writes MLE-Dojo's
	// env_history/history.json itself writes it there.
	Open(ctx context.Context, episode int, runDir string) (envbridge.Env, error)
}

// Options configure a rollout.
type Options struct {
	Episodes int
	Parallel int
	MaxSteps int
	Seed     int64
	Out      string
}

// EpisodeResult is the record of one finished (or failed) episode.
type EpisodeResult struct {
	Index         int     `json:"index"`
	Task          string  `json:"task"`
	Dir           string  `json:"dir"`
	Steps         int     `json:"steps"`
	Reward        float64 `json:"reward"` // best position score (MLE-Dojo's episode score)
	TotalReward   float64 `json:"total_reward"`
	ValidActions  int     `json:"valid_actions"`
	InvalidAction int     `json:"invalid_actions"`
	Backspaces    int     `json:"backspaces"`
	// BackspacesInCode counts the backspaces inside code strings.
	BackspacesInCode int `json:"backspaces_in_code"`
	PolicyActions    int `json:"policy_actions"`
	// PromptCuts counts the replies whose history was cut to fit the
	// context with the reply budget (Reply.PromptCut).
	PromptCuts int `json:"prompt_cuts"`
	// BestStep is the policy turn (1-based) whose action first reached the
	// episode's best reward; 0 when no action earned a positive reward.
	BestStep int    `json:"best_step,omitempty"`
	HitCap   int    `json:"hit_cap"`
	Failed   string `json:"failed,omitempty"`
	// Unreachable marks a failure because the environment server could not
	// be reached: the episode is not recorded as done and a rerun plays it.
	Unreachable bool    `json:"unreachable,omitempty"`
	WallS       float64 `json:"wall_s"`
}

// Summary aggregates a rollout.
type Summary struct {
	Episodes int `json:"episodes"`
	// Failed counts the failed episodes, Unreachable among them (not
	// recorded as done: a rerun plays them again).
	Failed          int     `json:"failed"`
	Unreachable     int     `json:"unreachable"`
	MeanReward      float64 `json:"mean_reward"`
	BestReward      float64 `json:"best_reward"`
	ValidActionRate float64 `json:"valid_action_rate"`
	MeanSteps       float64 `json:"mean_steps"`
	Backspaces      int     `json:"backspaces"`
	// BackspacesInCode counts the backspaces inside code strings.
	BackspacesInCode int `json:"backspaces_in_code"`
	// PromptCuts counts the replies whose history was cut (Reply.PromptCut).
	PromptCuts int             `json:"prompt_cuts"`
	WallS      float64         `json:"wall_s"`
	Results    []EpisodeResult `json:"results"`
}

const stateFile = "rollout_state.json"

// Run plays o.Episodes episodes, o.Parallel at a time, and writes each to
// OUT/<task>-<i> and the summary to OUT/summary.json. Finished episodes
// recorded in OUT/rollout_state.json are not replayed, so an interrupted
// rollout resumes. A failing episode does not stop the others; the summary
// counts the failures (Summary.Failed), and episodes whose server could not
// be reached (Summary.Unreachable) are left for a rerun. It is the library
// entry point for other loops (expert iteration, replay): it returns the
// summary with one EpisodeResult per episode, whose Dir the data loaders
// read.
func Run(ctx context.Context, pol Policy, spec EnvSpec, o Options, progress func(EpisodeResult)) (Summary, error) {
	if o.Episodes <= 0 || o.Parallel <= 0 || o.MaxSteps <= 0 {
		return Summary{}, fmt.Errorf("rollout: episodes, parallel and max steps must be positive (%d, %d, %d)", o.Episodes, o.Parallel, o.MaxSteps)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return Summary{}, err
	}
	start := time.Now()
	done, err := readState(o.Out)
	if err != nil {
		return Summary{}, err
	}
	var mu sync.Mutex
	var lost []EpisodeResult
	save := func(r EpisodeResult) error {
		mu.Lock()
		defer mu.Unlock()
		done[r.Index] = r
		if progress != nil {
			progress(r)
		}
		return writeState(o.Out, done)
	}
	jobs := make(chan int)
	errc := make(chan error, o.Parallel)
	var wg sync.WaitGroup
	for w := 0; w < o.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := runEpisode(ctx, pol, spec, o, i)
				if ctx.Err() != nil && r.Failed != "" {
					continue // interrupted: not recorded, replayed on resume
				}
				if r.Unreachable {
					mu.Lock()
					lost = append(lost, r)
					if progress != nil {
						progress(r)
					}
					mu.Unlock()
					continue // not recorded: a rerun plays it
				}
				if err := save(r); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for i := 0; i < o.Episodes; i++ {
		mu.Lock()
		_, ok := done[i]
		mu.Unlock()
		if ok {
			continue
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return Summary{}, err
	}
	s := summarise(done, lost, o.Episodes)
	s.WallS = time.Since(start).Seconds()
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(o.Out, "summary.json"), append(b, '\n')); err != nil {
		return s, err
	}
	if ctx.Err() != nil {
		return s, ctx.Err()
	}
	return s, nil
}

func summarise(done map[int]EpisodeResult, lost []EpisodeResult, n int) (s Summary) {
	s = Summary{BestReward: math.Inf(-1)}
	valid, total := 0, 0
	for i := 0; i < n; i++ {
		r, ok := done[i]
		if !ok {
			continue
		}
		s.Results = append(s.Results, r)
		s.Episodes++
		if r.Failed != "" {
			s.Failed++
		}
		s.MeanReward += r.Reward
		s.BestReward = math.Max(s.BestReward, r.Reward)
		s.MeanSteps += float64(r.Steps)
		s.Backspaces += r.Backspaces
		s.BackspacesInCode += r.BackspacesInCode
		s.PromptCuts += r.PromptCuts
		valid += r.ValidActions
		total += r.ValidActions + r.InvalidAction
	}
	if s.Episodes > 0 {
		s.MeanReward /= float64(s.Episodes)
		s.MeanSteps /= float64(s.Episodes)
	} else {
		s.BestReward = 0
	}
	if total > 0 {
		s.ValidActionRate = float64(valid) / float64(total)
	}
	// Unreachable episodes are listed and counted as failed, but take no
	// part in the means above.
	for _, r := range lost {
		s.Results = append(s.Results, r)
		s.Episodes++
		s.Failed++
		s.Unreachable++
	}
	sort.Slice(s.Results, func(i, j int) bool { return s.Results[i].Index < s.Results[j].Index })
	return s
}

func readState(out string) (map[int]EpisodeResult, error) {
	done := map[int]EpisodeResult{}
	b, err := os.ReadFile(filepath.Join(out, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	var rs []EpisodeResult
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(out, stateFile), err)
	}
	for _, r := range rs {
		done[r.Index] = r
	}
	return done, nil
}

func writeState(out string, done map[int]EpisodeResult) error {
	rs := make([]EpisodeResult, 0, len(done))
	for _, r := range done {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Index < rs[j].Index })
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(out, stateFile), append(b, '\n'))
}

// runEpisode plays one episode and writes its folder.
func runEpisode(ctx context.Context, pol Policy, spec EnvSpec, o Options, i int) (r EpisodeResult) {
	start := time.Now()
	r = EpisodeResult{Index: i, Task: spec.Task(i)}
	defer func() { r.WallS = time.Since(start).Seconds() }()
	fail := func(what string, err error) {
		r.Failed = what + err.Error()
		r.Unreachable = errors.Is(err, httpenv.ErrServerGone)
	}
	r.Dir = filepath.Join(o.Out, fmt.Sprintf("%s-%d", r.Task, i))
	// A folder left by an interrupted run is redone from scratch; the
	// marker stays until the episode finishes.
	if err := os.RemoveAll(r.Dir); err != nil {
		fail("episode folder: ", err)
		return r
	}
	if err := writeFile(filepath.Join(r.Dir, data.PartialMarker), []byte("episode in progress or failed; the loaders skip this folder\n")); err != nil {
		fail("episode folder: ", err)
		return r
	}
	raw, err := spec.Open(ctx, i, r.Dir)
	if err != nil {
		fail("open: ", err)
		return r
	}
	defer raw.Close()
	env := envbridge.Wrap(raw, o.MaxSteps)
	rec := newRecorder(raw, r.Dir, r.Task)
	seed := o.Seed*1000003 + int64(i)
	obs, _, err := env.Reset(ctx, seed)
	if err != nil {
		fail("reset: ", err)
		return r
	}
	msgs := []data.Message{{Role: data.RoleUser, Content: envbridge.FormatInitialPrompt(obs)}}
	write := func() error {
		if err := writeJSON(filepath.Join(r.Dir, "agent_history", "trajectory.json"), msgs); err != nil {
			return err
		}
		return rec.write(ctx)
	}
	if err := write(); err != nil {
		fail("write: ", err)
		return r
	}
	best, bestStep := math.Inf(-1), 0
	for step := 0; step < o.MaxSteps; step++ {
		rep, err := pol.Act(ctx, msgs, uint64(seed)<<8|uint64(step))
		if err != nil {
			fail("policy: ", err)
			break
		}
		r.Backspaces += rep.NumBkspc
		r.BackspacesInCode += rep.BkspcInCode
		if rep.PromptCut {
			r.PromptCuts++
		}
		r.PolicyActions += rep.NumActions
		if rep.HitCap {
			r.HitCap++
		}
		msgs = append(msgs, data.Message{Role: data.RoleAssistant, Content: rep.Text})
		// A reply that does not parse goes through Step like any other
		// action: the rules answer it (envbridge.Wrap).
		act, _ := envbridge.ActionFromText(rep.Text)
		res, err := env.Step(ctx, act)
		if err != nil {
			fail("step: ", err)
			_ = writeJSON(filepath.Join(r.Dir, "agent_history", "trajectory.json"), msgs)
			break
		}
		r.TotalReward += res.Reward
		if res.Reward > best {
			best, bestStep = res.Reward, step+1
		}
		rec.add(act.Name, res)
		msgs = append(msgs, data.Message{Role: data.RoleUser, Content: envbridge.FormatObservation(res.Obs)})
		if err := write(); err != nil {
			fail("write: ", err)
			break
		}
		if res.Terminated || res.Truncated {
			break
		}
	}
	st := env.Stats()
	r.Steps, r.InvalidAction = st.Length, st.InvalidActions
	r.ValidActions = st.Length - st.InvalidActions
	if !math.IsInf(best, -1) {
		r.Reward = math.Max(best, 0)
	}
	if best > 0 {
		r.BestStep = bestStep
	}
	if r.Failed == "" {
		if err := os.Remove(filepath.Join(r.Dir, data.PartialMarker)); err != nil {
			fail("episode folder: ", err)
		}
	}
	return r
}

// recorder puts the environment's history.json into the episode folder
// when the environment does not write it there itself: the served bytes
// of an environment that only serves it (the HTTP client), unchanged, or
// a minimal history (one entry per recorded step) for one without any.
type recorder struct {
	path   string
	served envbridge.HistoryProvider
	own    *historyLog // nil when the env writes or serves its history
}

func newRecorder(env envbridge.Env, dir, task string) *recorder {
	rc := &recorder{path: filepath.Join(dir, "env_history", "history.json")}
	if rd, ok := env.(interface{ RunDir() string }); ok && filepath.Clean(rd.RunDir()) == filepath.Clean(dir) {
		return rc // writes it there itself
	}
	if hp, ok := env.(envbridge.HistoryProvider); ok {
		rc.served = hp
		return rc
	}
	rc.own = newHistoryLog(task)
	return rc
}

func (rc *recorder) add(action string, res envbridge.StepResult) {
	if rc.own != nil && !envbridge.Unrecorded(res.Info) {
		rc.own.add(action, res.Obs, res.Reward)
	}
}

func (rc *recorder) write(ctx context.Context) error {
	switch {
	case rc.own != nil:
		return writeJSON(rc.path, rc.own)
	case rc.served != nil:
		var b []byte
		var err error
		if hc, ok := rc.served.(interface {
			HistoryContext(context.Context) ([]byte, error)
		}); ok {
			b, err = hc.HistoryContext(ctx)
		} else {
			b, err = rc.served.History()
		}
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		return writeFile(rc.path, b)
	}
	return nil
}

// historyLog is a minimal MLE-Dojo history.json for environments that do
// not provide one.
type historyLog struct {
	Competition       string         `json:"competition"`
	Actions           []historyEntry `json:"actions"`
	TotalReward       float64        `json:"total_reward"`
	BestPositionScore float64        `json:"best_position_score"`
	StepCount         int            `json:"step_count"`
	CreatedAt         string         `json:"created_at"`
}

type historyEntry struct {
	Step      int                   `json:"step"`
	Action    string                `json:"action"`
	Timestamp string                `json:"timestamp"`
	Result    envbridge.Observation `json:"result"`
	Feedback  any                   `json:"feedback,omitempty"`
	Reward    float64               `json:"reward"`
}

func newHistoryLog(task string) *historyLog {
	return &historyLog{Competition: task, Actions: []historyEntry{}, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano)}
}

func (h *historyLog) add(action string, obs envbridge.Observation, reward float64) {
	h.StepCount++
	h.Actions = append(h.Actions, historyEntry{Step: h.StepCount, Action: action, Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
		Result: obs, Feedback: obs["feedback"], Reward: reward})
	h.TotalReward += reward
	h.BestPositionScore = math.Max(h.BestPositionScore, reward)
}

// writeJSON writes v indented, without HTML escaping (code and feedback
// keep their <, > and &).
func writeJSON(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return writeFile(path, b.Bytes())
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}

// FailureLine summarises a rollout's failures in one line ("" when none):
// how many, how many because the environment server was unreachable (left
// for a rerun), and the most common other reasons.
func (s Summary) FailureLine() string {
	if s.Failed == 0 {
		return ""
	}
	reasons := map[string]int{}
	for _, r := range s.Results {
		if r.Failed != "" && !r.Unreachable {
			msg := r.Failed
			if len(msg) > 120 {
				msg = msg[:120] + "..."
			}
			reasons[msg]++
		}
	}
	keys := data.KeysByCount(reasons)
	line := fmt.Sprintf("%d of %d episodes failed", s.Failed, s.Episodes)
	if s.Unreachable > 0 {
		line += fmt.Sprintf("; %d because the environment server was unreachable (not recorded: rerun the same command to play them)", s.Unreachable)
	}
	for i, k := range keys {
		if i == 3 {
			line += "; ..."
			break
		}
		line += fmt.Sprintf("; %d × %s", reasons[k], k)
	}
	return line
}

// CodeErrors counts the code actions (validate_code, execute_code) of an
// episode folder's env_history/history.json and those whose execution
// failed.
func CodeErrors(dir string) (failed, total int, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "env_history", "history.json"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	var h struct {
		Actions []struct {
			Action string          `json:"action"`
			Result json.RawMessage `json:"result"`
		} `json:"actions"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", filepath.Join(dir, "env_history", "history.json"), err)
	}
	for _, a := range h.Actions {
		if a.Action != "validate_code" && a.Action != "execute_code" {
			continue
		}
		total++
		var r struct {
			Status    string `json:"status"`
			Execution *struct {
				Status string `json:"status"`
			} `json:"execution"`
		}
		if json.Unmarshal(a.Result, &r) != nil {
			continue
		}
		if (r.Execution != nil && r.Execution.Status == "FAILED") || (r.Execution == nil && r.Status == "FAILED") {
			failed++ // the code raised (a failed submission check after a clean run is not a code error)
		}
	}
	return failed, total, nil
}
