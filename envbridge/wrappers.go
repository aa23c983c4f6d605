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

// TimeLimit truncates an episode after MaxSteps steps (Gymnasium's
// TimeLimit): the step that reaches the limit returns Truncated=true unless
// the episode already terminated. It also writes remaining_steps into the
// observation when its own limit is the tighter one.
type TimeLimit struct {
	Env
	MaxSteps int
	steps    int
}

var _ Env = (*TimeLimit)(nil)

// NewTimeLimit wraps env with a step limit.
func NewTimeLimit(env Env, maxSteps int) *TimeLimit { return &TimeLimit{Env: env, MaxSteps: maxSteps} }

// Reset resets the step counter.
func (w *TimeLimit) Reset(ctx context.Context, seed int64) (Observation, Info, error) {
	w.steps = 0
	obs, info, err := w.Env.Reset(ctx, seed)
	if err == nil {
		w.annotate(obs)
	}
	return obs, info, err
}

// Step counts the step and truncates at the limit.
func (w *TimeLimit) Step(ctx context.Context, a Action) (StepResult, error) {
	res, err := w.Env.Step(ctx, a)
	if err != nil {
		return res, err
	}
	w.steps++
	if w.MaxSteps > 0 && w.steps >= w.MaxSteps && !res.Terminated {
		res.Truncated = true
		if res.Info == nil {
			res.Info = Info{}
		}
		res.Info["TimeLimit.truncated"] = true
	}
	w.annotate(res.Obs)
	return res, nil
}

func (w *TimeLimit) annotate(obs Observation) {
	if obs == nil || w.MaxSteps <= 0 {
		return
	}
	left := w.MaxSteps - w.steps
	if cur, ok := intField(obs, KeyRemainingSteps); !ok || left < cur {
		obs[KeyRemainingSteps] = left
	}
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
// RecordEpisodeStatistics). An action counts as invalid when the step's
// info has "invalid_action": true (see InvalidActionAsObservation).
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
	if inv, _ := res.Info["invalid_action"].(bool); inv {
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

// InvalidActionAsObservation answers an invalid action (ActInvalid from
// InvalidAction, or any action failing ValidateAction) with an error
// observation in MLE-Dojo's shape instead of passing it to the inner env,
// with reward 0 and info "invalid_action": true. It keeps the last
// observation's score fields so the agent still sees its best score.
type InvalidActionAsObservation struct {
	Env
	last    Observation
	Invalid int // invalid actions since the last Reset
}

var _ Env = (*InvalidActionAsObservation)(nil)

// NewInvalidActionAsObservation wraps env.
func NewInvalidActionAsObservation(env Env) *InvalidActionAsObservation {
	return &InvalidActionAsObservation{Env: env}
}

// Reset clears the counter.
func (w *InvalidActionAsObservation) Reset(ctx context.Context, seed int64) (Observation, Info, error) {
	w.Invalid = 0
	obs, info, err := w.Env.Reset(ctx, seed)
	w.last = obs
	return obs, info, err
}

// Step intercepts invalid actions.
func (w *InvalidActionAsObservation) Step(ctx context.Context, a Action) (StepResult, error) {
	var msg string
	if a.Name == ActInvalid {
		msg, _ = a.Params["error"].(string)
		if msg == "" {
			msg = "invalid action"
		}
	} else if err := ValidateAction(a); err != nil {
		msg = err.Error()
	}
	if msg == "" {
		res, err := w.Env.Step(ctx, a)
		if err == nil {
			w.last = res.Obs
		}
		return res, err
	}
	w.Invalid++
	obs := InvalidActionObservation(msg, w.last)
	return StepResult{Obs: obs, Reward: 0, Info: Info{"invalid_action": true, "action": a.Name, "status": "FAILED", "error": msg}}, nil
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
