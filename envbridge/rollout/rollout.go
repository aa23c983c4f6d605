// Package rollout drives a policy through environments: each episode is a
// chat (the environment's observations as user turns, the policy's replies
// as assistant turns), actions are parsed from the replies, and every episode
// is written in MLE-Dojo's run-folder layout as it goes, so `smtrain fit`
// reads rollouts back (closed loop).
package rollout

import (
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
}

// Policy writes the next assistant turn for a chat history.
type Policy interface {
	Act(ctx context.Context, msgs []data.Message, seed uint64) (Reply, error)
}

// EnvSpec creates the environment of episode i; Name names its task (used
// in the episode folder name).
type EnvSpec interface {
	Open(ctx context.Context, episode int) (env envbridge.Env, task string, err error)
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
	PolicyActions int     `json:"policy_actions"`
	HitCap        int     `json:"hit_cap"`
	Failed        string  `json:"failed,omitempty"`
	WallS         float64 `json:"wall_s"`
}

// Summary aggregates a rollout.
type Summary struct {
	Episodes        int             `json:"episodes"`
	Failed          int             `json:"failed"`
	MeanReward      float64         `json:"mean_reward"`
	BestReward      float64         `json:"best_reward"`
	ValidActionRate float64         `json:"valid_action_rate"`
	MeanSteps       float64         `json:"mean_steps"`
	Backspaces      int             `json:"backspaces"`
	WallS           float64         `json:"wall_s"`
	Results         []EpisodeResult `json:"results"`
}

const stateFile = "rollout_state.json"

// Run plays o.Episodes episodes, o.Parallel at a time. Finished episodes
// recorded in OUT/rollout_state.json are not replayed, so an interrupted
// rollout resumes. A failing environment (server gone) marks that episode
// failed and the others go on.
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
	s := summarise(done, o.Episodes)
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

func summarise(done map[int]EpisodeResult, n int) Summary {
	s := Summary{BestReward: math.Inf(-1)}
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
	r = EpisodeResult{Index: i}
	defer func() { r.WallS = time.Since(start).Seconds() }()
	env, task, err := spec.Open(ctx, i)
	if err != nil {
		r.Failed = err.Error()
		return r
	}
	defer env.Close()
	r.Task = task
	r.Dir = filepath.Join(o.Out, fmt.Sprintf("%s-%d", task, i))
	seed := o.Seed*1000003 + int64(i)
	obs, _, err := env.Reset(ctx, seed)
	if err != nil {
		r.Failed = "reset: " + err.Error()
		return r
	}
	obsAt := time.Now() // when the environment reported obs
	msgs := []data.Message{{Role: data.RoleUser, Content: envbridge.FormatInitialPrompt(withBudget(obs, o.MaxSteps, 0))}}
	best := math.Inf(-1)
	// invalid[k] holds the error observation of assistant turn k when its
	// action could not be parsed (the environment never saw it).
	var invalid []envbridge.Observation
	// recorded[j] is the environment's history entry of the j-th valid
	// action, kept as it happens: a reset action clears the environment's
	// own history (MLE-Dojo semantics), and history.json must still hold
	// one entry per assistant turn.
	var recorded []map[string]json.RawMessage
	var hist *historyLog
	if _, ok := env.(httpenv.HistoryProvider); !ok {
		hist = newHistoryLog(task)
	}
	write := func() error {
		if err := writeJSON(filepath.Join(r.Dir, "agent_history", "trajectory.json"), msgs); err != nil {
			return err
		}
		if hp, ok := env.(httpenv.HistoryProvider); ok {
			b, err := hp.History()
			if err != nil {
				return err
			}
			if b, err = mergeInvalid(b, invalid, &recorded); err != nil {
				return fmt.Errorf("history: %w", err)
			}
			return writeFile(filepath.Join(r.Dir, "env_history", "history.json"), b)
		}
		return writeJSON(filepath.Join(r.Dir, "env_history", "history.json"), hist)
	}
	for step := 0; step < o.MaxSteps; step++ {
		rep, err := pol.Act(ctx, msgs, uint64(seed)<<8|uint64(step))
		if err != nil {
			r.Failed = "policy: " + err.Error()
			break
		}
		r.Backspaces += rep.NumBkspc
		r.PolicyActions += rep.NumActions
		if rep.HitCap {
			r.HitCap++
		}
		msgs = append(msgs, data.Message{Role: data.RoleAssistant, Content: rep.Text})
		act, perr := envbridge.ParseAction(rep.Text)
		if perr != nil {
			// Invalid output: the environment's inner step is not called,
			// the agent sees MLE-Dojo-style error feedback and the step
			// counts against its budget.
			r.InvalidAction++
			r.Steps++
			ob := withBudget(envbridge.InvalidActionObservation(perr.Error(), obs), o.MaxSteps-r.Steps, time.Since(obsAt))
			invalid = append(invalid, ob)
			if hist != nil {
				hist.add(step+1, "invalid", ob, 0)
			}
			msgs = append(msgs, data.Message{Role: data.RoleUser, Content: envbridge.FormatObservation(ob)})
			if err := write(); err != nil {
				r.Failed = "write: " + err.Error()
				break
			}
			continue
		}
		res, err := env.Step(ctx, act)
		if err != nil {
			r.Failed = "step: " + err.Error()
			_ = write()
			break
		}
		invalid = append(invalid, nil)
		r.ValidActions++
		r.Steps++
		r.TotalReward += res.Reward
		best = math.Max(best, res.Reward)
		obs, obsAt = withBudget(res.Obs, o.MaxSteps-r.Steps, 0), time.Now()
		if hist != nil {
			hist.add(step+1, act.Name, obs, res.Reward)
		}
		msgs = append(msgs, data.Message{Role: data.RoleUser, Content: envbridge.FormatObservation(obs)})
		if err := write(); err != nil {
			r.Failed = "write: " + err.Error()
			break
		}
		if res.Terminated || res.Truncated {
			break
		}
	}
	if r.Failed == "" {
		if err := write(); err != nil {
			r.Failed = "write: " + err.Error()
		}
	}
	if !math.IsInf(best, -1) {
		r.Reward = math.Max(best, 0)
	}
	return r
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
	Reward    float64               `json:"reward"`
}

func newHistoryLog(task string) *historyLog {
	return &historyLog{Competition: task, Actions: []historyEntry{}, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano)}
}

func (h *historyLog) add(step int, action string, obs envbridge.Observation, reward float64) {
	h.Actions = append(h.Actions, historyEntry{Step: step, Action: action, Timestamp: time.Now().UTC().Format(time.RFC3339Nano), Result: obs, Reward: reward})
	h.TotalReward += reward
	h.BestPositionScore = math.Max(h.BestPositionScore, reward)
	h.StepCount = step
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, b)
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}

// mergeInvalid inserts entries for the policy's invalid actions (which the
// environment never saw) into the environment's history.json, so that
// assistant message k stays aligned with history action k-1, and renumbers
// the steps 1, 2, .... The valid actions' entries come from recorded, which
// it first extends with the environment's latest entries for valid actions
// not recorded yet (those since the last call; the environment's own list
// restarts at a reset action).
func mergeInvalid(hist []byte, invalid []envbridge.Observation, recorded *[]map[string]json.RawMessage) ([]byte, error) {
	var h map[string]json.RawMessage
	if err := json.Unmarshal(hist, &h); err != nil {
		return nil, err
	}
	var envActs []map[string]json.RawMessage
	if raw, ok := h["actions"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &envActs); err != nil {
			return nil, fmt.Errorf("actions: %w", err)
		}
	}
	valid := 0
	for _, ob := range invalid {
		if ob == nil {
			valid++
		}
	}
	if missing := valid - len(*recorded); missing > 0 {
		if missing > len(envActs) {
			return nil, fmt.Errorf("%d environment actions, fewer than the %d valid policy actions since the last record", len(envActs), missing)
		}
		*recorded = append(*recorded, envActs[len(envActs)-missing:]...)
	}
	// one entry per assistant turn: the valid ones' from recorded (which
	// now holds exactly one per valid action), in order
	merged := make([]map[string]json.RawMessage, 0, len(invalid))
	rec := *recorded
	for _, ob := range invalid {
		if ob == nil {
			merged, rec = append(merged, rec[0]), rec[1:]
			continue
		}
		res, err := json.Marshal(ob)
		if err != nil {
			return nil, err
		}
		ts, _ := json.Marshal(time.Now().UTC().Format("2006-01-02T15:04:05.000000"))
		merged = append(merged, map[string]json.RawMessage{"action": json.RawMessage(`"invalid"`), "timestamp": ts, "result": res})
	}
	for i, e := range merged {
		e["step"] = json.RawMessage(fmt.Sprint(i + 1))
	}
	b, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	h["actions"] = b
	h["step_count"] = json.RawMessage(fmt.Sprint(len(merged)))
	return json.MarshalIndent(h, "", "  ")
}

// withBudget returns a shallow copy of ob whose budget fields describe what
// the agent actually has left. remaining_steps becomes the smaller of the
// environment's own count (as reported in ob) and the rollout's, left:
// invalid actions use up the rollout's steps but never reach the
// environment, so its count alone would overstate the budget, and an
// invalid action's observation copies the count of the observation before
// it. remaining_seconds, when ob has it, is reduced by elapsed, the time
// since the environment reported it (non-zero for the copied fields of an
// invalid action's observation).
func withBudget(ob envbridge.Observation, left int, elapsed time.Duration) envbridge.Observation {
	out := make(envbridge.Observation, len(ob)+1)
	for k, v := range ob {
		out[k] = v
	}
	left = max(left, 0)
	if v, ok := numField(ob, envbridge.KeyRemainingSteps); !ok || int(v) > left {
		out[envbridge.KeyRemainingSteps] = left
	}
	if v, ok := numField(ob, envbridge.KeyRemainingSeconds); ok && elapsed > 0 {
		out[envbridge.KeyRemainingSeconds] = max(0, int(v)-int(elapsed.Seconds()))
	}
	return out
}

// numField reads a numeric observation field (int from a local
// environment, float64 or json.Number after a JSON round trip).
func numField(ob envbridge.Observation, key string) (float64, bool) {
	switch v := ob[key].(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case float64:
		return v, !math.IsNaN(v) && !math.IsInf(v, 0)
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}
