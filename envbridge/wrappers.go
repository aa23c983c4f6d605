package envbridge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Gymnasium-style wrappers. Each embeds an Env and overrides the methods
// it needs (Step, and Reset where it keeps per-episode state).

// ErrResetNeeded is returned by OrderEnforcing when Step is called before
// the first Reset or after Close.
var ErrResetNeeded = errors.New("envbridge: step called before reset")

// Info keys of the episode rules.
const (
	// InfoInvalidAction is true in the info of a step whose action was
	// invalid (unparseable, or failing ValidateAction).
	InfoInvalidAction = "invalid_action"
	// InfoHistoryRecorded is false in the info of a step the environment
	// did not record in its history.json: an invalid action, or a step
	// MLE-Dojo's env.step raised on, or one refused because the time
	// budget was gone (the Python adapter reports it). Absent means
	// recorded.
	InfoHistoryRecorded = "history_recorded"
)

// Unrecorded reports whether a step's info says it left no history entry
// (InfoHistoryRecorded false, or an invalid action). Such a step earns
// nothing and counts as an invalid action, exactly like a reply that did
// not parse: one rule for both, applied by InvalidActionAsObservation and
// counted by EpisodeStatistics.
func Unrecorded(info Info) bool {
	if inv, _ := info[InfoInvalidAction].(bool); inv {
		return true
	}
	rec, ok := info[InfoHistoryRecorded].(bool)
	return ok && !rec
}

// StepBudget is the step-budget rule (the one place it is written): every
// step, invalid ones included, uses one action of Max; the step that uses
// the last one is Truncated unless the episode terminated, and
// observations carry remaining_steps. TimeLimit applies it as a wrapper;
// the local environment applies it to itself for callers that step it
// directly. Max <= 0 means unlimited.
type StepBudget struct {
	Max  int
	Used int
}

// Reset starts a new episode.
func (b *StepBudget) Reset() { b.Used = 0 }

// Over reports whether the budget is used up.
func (b *StepBudget) Over() bool { return b.Max > 0 && b.Used >= b.Max }

// Count uses one action for res and truncates it at the limit.
func (b *StepBudget) Count(res *StepResult) {
	b.Used++
	if b.Over() && !res.Terminated {
		res.Truncated = true
		if res.Info == nil {
			res.Info = Info{}
		}
		res.Info["TimeLimit.truncated"] = true
	}
	b.Annotate(res.Obs)
}

// Annotate writes remaining_steps into obs when this budget is the
// tighter one.
func (b *StepBudget) Annotate(obs Observation) {
	if obs == nil || b.Max <= 0 {
		return
	}
	left := max(0, b.Max-b.Used)
	if cur, ok := intField(obs, KeyRemainingSteps); !ok || left < cur {
		obs[KeyRemainingSteps] = left
	}
}

// TimeLimit truncates an episode after MaxSteps steps (Gymnasium's
// TimeLimit) with the StepBudget rule.
type TimeLimit struct {
	Env
	budget StepBudget
}

var _ Env = (*TimeLimit)(nil)

// NewTimeLimit wraps env with a step limit.
func NewTimeLimit(env Env, maxSteps int) *TimeLimit {
	return &TimeLimit{Env: env, budget: StepBudget{Max: maxSteps}}
}

// Reset resets the step counter.
func (w *TimeLimit) Reset(ctx context.Context, seed int64) (Observation, Info, error) {
	w.budget.Reset()
	obs, info, err := w.Env.Reset(ctx, seed)
	if err == nil {
		w.budget.Annotate(obs)
	}
	return obs, info, err
}

// Step counts the step and truncates at the limit.
func (w *TimeLimit) Step(ctx context.Context, a Action) (StepResult, error) {
	res, err := w.Env.Step(ctx, a)
	if err != nil {
		return res, err
	}
	w.budget.Count(&res)
	return res, nil
}

// OrderEnforcing makes Step before Reset an error (Gymnasium's
// OrderEnforcing), and Step after Close too.
type OrderEnforcing struct {
	Env
	hasReset bool
}

var _ Env = (*OrderEnforcing)(nil)

// NewOrderEnforcing wraps env.
func NewOrderEnforcing(env Env) *OrderEnforcing { return &OrderEnforcing{Env: env} }

// Reset marks the environment as ready.
func (w *OrderEnforcing) Reset(ctx context.Context, seed int64) (Observation, Info, error) {
	obs, info, err := w.Env.Reset(ctx, seed)
	if err == nil {
		w.hasReset = true
	}
	return obs, info, err
}

// Step refuses to run before Reset.
func (w *OrderEnforcing) Step(ctx context.Context, a Action) (StepResult, error) {
	if !w.hasReset {
		return StepResult{}, ErrResetNeeded
	}
	return w.Env.Step(ctx, a)
}

// Close closes the inner env; a later Step needs a Reset again.
func (w *OrderEnforcing) Close() error {
	w.hasReset = false
	return w.Env.Close()
}

// EpisodeStats are the statistics EpisodeStatistics reports.
type EpisodeStats struct {
	Return         float64 `json:"return"`
	Length         int     `json:"length"`
	InvalidActions int     `json:"invalid_actions"`
	TimeSeconds    float64 `json:"time_s"`
}

// EpisodeStatistics accumulates the return, length, invalid-action count
// and wall time of the episode, and puts them in info["episode"] (an
// EpisodeStats) on the step that ends it (Gymnasium's
// RecordEpisodeStatistics). An action counts as invalid when the step was
// Unrecorded.
type EpisodeStatistics struct {
	Env
	cur   EpisodeStats
	start time.Time
	now   func() time.Time
}

var _ Env = (*EpisodeStatistics)(nil)

// NewEpisodeStatistics wraps env.
func NewEpisodeStatistics(env Env) *EpisodeStatistics {
	return &EpisodeStatistics{Env: env, now: time.Now}
}

// Reset starts a new episode's statistics.
func (w *EpisodeStatistics) Reset(ctx context.Context, seed int64) (Observation, Info, error) {
	w.cur = EpisodeStats{}
	w.start = w.now()
	return w.Env.Reset(ctx, seed)
}

// Step accumulates and reports at episode end.
func (w *EpisodeStatistics) Step(ctx context.Context, a Action) (StepResult, error) {
	res, err := w.Env.Step(ctx, a)
	if err != nil {
		return res, err
	}
	w.cur.Return += res.Reward
	w.cur.Length++
	if Unrecorded(res.Info) {
		w.cur.InvalidActions++
	}
	if res.Terminated || res.Truncated {
		w.cur.TimeSeconds = w.now().Sub(w.start).Seconds()
		if res.Info == nil {
			res.Info = Info{}
		}
		res.Info["episode"] = w.cur
	}
	return res, nil
}

// Stats returns the statistics of the current (or last) episode so far.
func (w *EpisodeStatistics) Stats() EpisodeStats { return w.cur }

// InvalidActionAsObservation is the invalid-action rule (the one place it
// is written). An invalid action (ActInvalid from InvalidAction, or any
// action failing ValidateAction) is answered with an error observation in
// MLE-Dojo's shape instead of reaching the inner env: reward 0, info
// invalid_action true and history_recorded false (the environment never
// saw it, as MLE-Dojo's env.step raises on it). A step the inner env
// reports as Unrecorded earns 0 too. The observation keeps the last
// observation's score fields and budget, remaining_seconds reduced by the
// time since that observation, so the agent still sees its best score and
// what is left.
type InvalidActionAsObservation struct {
	Env
	last    Observation
	lastAt  time.Time
	Invalid int // invalid actions since the last Reset
	now     func() time.Time
}

var _ Env = (*InvalidActionAsObservation)(nil)

// NewInvalidActionAsObservation wraps env.
func NewInvalidActionAsObservation(env Env) *InvalidActionAsObservation {
	return &InvalidActionAsObservation{Env: env, now: time.Now}
}

// Reset clears the counter.
func (w *InvalidActionAsObservation) Reset(ctx context.Context, seed int64) (Observation, Info, error) {
	w.Invalid = 0
	obs, info, err := w.Env.Reset(ctx, seed)
	w.last, w.lastAt = obs, w.now()
	return obs, info, err
}

// InvalidReason returns why a is not an action an environment may run
// ("" when it is valid).
func InvalidReason(a Action) string {
	if a.Name == ActInvalid {
		if msg, _ := a.Params["error"].(string); msg != "" {
			return msg
		}
		return "invalid action"
	}
	if err := ValidateAction(a); err != nil {
		return err.Error()
	}
	return ""
}

// Step intercepts invalid actions.
func (w *InvalidActionAsObservation) Step(ctx context.Context, a Action) (StepResult, error) {
	msg := InvalidReason(a)
	if msg == "" {
		res, err := w.Env.Step(ctx, a)
		if err != nil {
			return res, err
		}
		if Unrecorded(res.Info) {
			res.Reward = 0
		}
		w.last, w.lastAt = res.Obs, w.now()
		return res, nil
	}
	w.Invalid++
	obs := InvalidActionObservation(msg, w.last)
	if secs, ok := intField(obs, KeyRemainingSeconds); ok {
		obs[KeyRemainingSeconds] = max(0, secs-int(w.now().Sub(w.lastAt).Seconds()))
	}
	return StepResult{Obs: obs, Reward: 0, Info: InvalidActionInfo(a.Name, msg)}, nil
}

// InvalidActionInfo is the info of an invalid action's step.
func InvalidActionInfo(action, msg string) Info {
	return Info{InfoInvalidAction: true, InfoHistoryRecorded: false, "action": action, "status": "FAILED", "error": msg}
}

// InvalidActionObservation builds the error observation for an invalid
// action. Score and budget fields are copied from prev when given.
func InvalidActionObservation(msg string, prev Observation) Observation {
	fb := fmt.Sprintf("=== Action Parsing Error ===\n                            Invalid action: %s\n                            Respond with your reasoning followed by exactly one ```json block: {\"action\": \"request_info\" | \"validate_code\" | \"execute_code\", \"params\": {...}}", msg)
	obs := Observation{
		"action_status": "FAILED",
		"feedback": map[string]any{"base": map[string]any{
			"feedback_status": "SUCCESS",
			"feedback":        fb,
		}},
		"current_raw_score":      nil,
		"current_position_score": nil,
		"best_raw_score":         nil,
		"best_position_score":    nil,
		"history_summary":        "",
	}
	for _, k := range []string{"current_raw_score", "current_position_score", "best_raw_score", "best_position_score", "history_summary", KeyRemainingSteps, KeyRemainingSeconds} {
		if v, ok := prev[k]; ok {
			obs[k] = v
		}
	}
	return obs
}
