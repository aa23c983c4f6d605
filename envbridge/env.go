// Package envbridge connects policies to environments: the Env interface with
// Gymnasium semantics, the episode rules, action parsing from model text
// (action.go, action_grammar.go) and the observation template (template.go).
// Subpackages hold the local MLE-Dojo-compatible environment (local), its
// sandbox, the HTTP protocol (httpenv), the Python adapter for a real
// MLE-Dojo (python) and the rollout loop (rollout). Environments are made
// by task name through a Registry (registry.go, with the per-episode
// Options and the HistoryProvider and StaleCleaner interfaces): the local
// environment implements it, the HTTP server serves any Registry and
// rollout plays over one, so none of them imports another for the types.
//
// Each episode rule is written once, in wrappers.go: the step budget
// (StepBudget, applied by TimeLimit, by the local environment to itself and
// by the HTTP server's safety net), invalid actions and steps an
// environment did not record in its history (InvalidActionAsObservation,
// Unrecorded, info keys InfoInvalidAction and InfoHistoryRecorded), and the
// episode's counts (EpisodeStatistics). Wrap (check.go) stacks them; rollout
// plays every episode through it.
package envbridge

import "context"

// Observation is what the environment shows the agent after reset or a step.
// For MLE-Dojo-style environments it has the keys action_status,
// feedback (feedback.base.{feedback_status, feedback}), current_raw_score,
// current_position_score, best_raw_score, best_position_score,
// history_summary. Values are JSON-compatible (NaN is replaced by nil).
type Observation map[string]any

// Info carries auxiliary diagnostics (Gymnasium's info dict).
type Info map[string]any

// Action is an MLE-Dojo action: a name (request_info, validate_code,
// execute_code, reset, get_history) and its parameters.
type Action struct {
	Name   string         `json:"action"`
	Params map[string]any `json:"params"`
}

// StepResult is Gymnasium's 5-tuple.
type StepResult struct {
	Obs        Observation `json:"observation"`
	Reward     float64     `json:"reward"`
	Terminated bool        `json:"terminated"`
	Truncated  bool        `json:"truncated"`
	Info       Info        `json:"info"`
}

// Env is an environment with Gymnasium semantics (not MLE-Dojo's 2-tuple).
// Terminated means the task ended; Truncated means an outside limit (step
// or time budget) ended it. Close is idempotent.
type Env interface {
	Reset(ctx context.Context, seed int64) (Observation, Info, error)
	Step(ctx context.Context, a Action) (StepResult, error)
	Close() error
}
