package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"smtrain/data"
	"smtrain/envbridge"
	"smtrain/envbridge/local"
)

// scriptPolicy replies with a fixed sequence of texts (cycling).
type scriptPolicy struct {
	texts []string
	calls atomic.Int64
}

func (p *scriptPolicy) Act(ctx context.Context, msgs []data.Message, seed uint64) (Reply, error) {
	n := 0
	for _, m := range msgs {
		if m.Role == data.RoleAssistant {
			n++
		}
	}
	p.calls.Add(1)
	return Reply{Text: p.texts[n%len(p.texts)], NumActions: 3, NumBkspc: 1}, nil
}

type builtinSpec struct {
	reg *local.Registry
}

func (b builtinSpec) Task(i int) string { return b.reg.Tasks()[i%len(b.reg.Tasks())] }

func (b builtinSpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	return b.reg.NewIn(ctx, b.Task(i), envbridge.Options{MaxSteps: 10}, runDir)
}

func TestRolloutWritesLoadableEpisodesAndResumes(t *testing.T) {
	reg, err := local.NewBuiltinRegistry(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	info := envbridge.FormatAction("Let me look at the task.", envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "overview"}})
	pol := &scriptPolicy{texts: []string{"no action here", info}}
	out := t.TempDir()
	o := Options{Episodes: 3, Parallel: 2, MaxSteps: 3, Seed: 5, Out: out}
	s, err := Run(context.Background(), pol, builtinSpec{reg}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Episodes != 3 || s.Failed != 0 {
		t.Fatalf("summary %+v", s)
	}
	// 3 steps per episode: invalid, valid, invalid.
	if got := s.ValidActionRate; got < 0.33 || got > 0.34 {
		t.Fatalf("valid-action rate %.3f, want 1/3", got)
	}
	if s.Backspaces != 9 {
		t.Fatalf("backspaces %d, want 9", s.Backspaces)
	}
	// The fit loader reads every episode back, aligned.
	res, err := data.Load([]string{out}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Episodes) != 3 {
		t.Fatalf("loaded %d episodes", len(res.Episodes))
	}
	for _, e := range res.Episodes {
		if e.NumAssistant() != 3 {
			t.Fatalf("%s: %d assistant turns", e.Source, e.NumAssistant())
		}
		if !strings.Contains(e.Messages[2].Content, "Parsing Error") && !strings.Contains(strings.ToLower(e.Messages[2].Content), "invalid") {
			t.Fatalf("%s: the invalid action's feedback is missing: %q", e.Source, e.Messages[2].Content)
		}
	}
	var hist map[string]any
	b, _ := os.ReadFile(filepath.Join(s.Results[0].Dir, "env_history", "history.json"))
	if err := json.Unmarshal(b, &hist); err != nil {
		t.Fatal(err)
	}
	// The environment wrote its own history into the episode folder: the
	// one valid action; the invalid ones were never recorded.
	acts := hist["actions"].([]any)
	if len(acts) != 1 || acts[0].(map[string]any)["action"] != "request_info" {
		t.Fatalf("history actions: %v", acts)
	}
	if _, err := os.Stat(filepath.Join(s.Results[0].Dir, data.PartialMarker)); !os.IsNotExist(err) {
		t.Fatalf("finished episode still marked partial: %v", err)
	}
	// Running again replays nothing.
	before := pol.calls.Load()
	o.Episodes = 4
	s2, err := Run(context.Background(), pol, builtinSpec{reg}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Episodes != 4 || pol.calls.Load()-before != 3 {
		t.Fatalf("resume: %d episodes, %d new policy calls (want 4 and 3)", s2.Episodes, pol.calls.Load()-before)
	}
}

type failingSpec struct{}

func (failingSpec) Task(i int) string { return "count" }

func (failingSpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	if i == 1 {
		return nil, errors.New("no such task")
	}
	return &countEnv{}, nil
}

type countEnv struct{ n int }

func (e *countEnv) Reset(ctx context.Context, seed int64) (envbridge.Observation, envbridge.Info, error) {
	return envbridge.Observation{"action_status": "SUCCESS"}, nil, nil
}
func (e *countEnv) Step(ctx context.Context, a envbridge.Action) (envbridge.StepResult, error) {
	e.n++
	return envbridge.StepResult{Obs: envbridge.Observation{"action_status": "SUCCESS"}, Reward: 0.25 * float64(e.n)}, nil
}
func (e *countEnv) Close() error { return nil }

func TestRolloutFailedEnvDoesNotStopOthers(t *testing.T) {
	info := envbridge.FormatAction("ok", envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "overview"}})
	out := t.TempDir()
	s, err := Run(context.Background(), &scriptPolicy{texts: []string{info}}, failingSpec{}, Options{Episodes: 3, Parallel: 1, MaxSteps: 2, Out: out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Episodes != 3 || s.Failed != 1 || s.BestReward != 0.5 {
		t.Fatalf("summary %+v", s)
	}
	// An environment without its own history gets a minimal history.json
	// that the loader accepts.
	res, err := data.Load([]string{out}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Episodes) != 2 {
		t.Fatalf("loaded %d episodes, want 2", len(res.Episodes))
	}
}

// budgetEnv reports its own step budget (10 actions) and time budget like
// the local environment does.
type budgetEnv struct{ n int }

func (e *budgetEnv) Reset(ctx context.Context, seed int64) (envbridge.Observation, envbridge.Info, error) {
	e.n = 0
	return envbridge.Observation{"action_status": "SUCCESS", envbridge.KeyRemainingSteps: 10, envbridge.KeyRemainingSeconds: 3600}, nil, nil
}
func (e *budgetEnv) Step(ctx context.Context, a envbridge.Action) (envbridge.StepResult, error) {
	e.n++
	return envbridge.StepResult{Obs: envbridge.Observation{"action_status": "SUCCESS",
		"feedback":                  map[string]any{"base": map[string]any{"feedback_status": "SUCCESS", "feedback": "ok"}},
		envbridge.KeyRemainingSteps: 10 - e.n, envbridge.KeyRemainingSeconds: 3600}}, nil
}
func (e *budgetEnv) Close() error { return nil }

type budgetSpec struct{}

func (budgetSpec) Task(i int) string { return "budget" }

func (budgetSpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	return &budgetEnv{}, nil
}

// TestRolloutBudgetAfterInvalidActions: every observation the agent sees
// states the actions it really has left. Invalid actions use up the
// rollout's steps (the environment never sees them), so neither the
// environment's own count nor the count copied from the previous
// observation may be shown.
func TestRolloutBudgetAfterInvalidActions(t *testing.T) {
	info := envbridge.FormatAction("ok", envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "overview"}})
	pol := &scriptPolicy{texts: []string{"no action", "still none", info, "none again"}}
	out := t.TempDir()
	s, err := Run(context.Background(), pol, budgetSpec{}, Options{Episodes: 1, Parallel: 1, MaxSteps: 4, Out: out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Failed != 0 || s.Results[0].Steps != 4 || s.Results[0].InvalidAction != 3 {
		t.Fatalf("summary %+v", s.Results[0])
	}
	res, err := data.Load([]string{out}, false)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, m := range res.Episodes[0].Messages {
		if m.Role == data.RoleUser {
			users = append(users, m.Content)
		}
	}
	// initial prompt, then after invalid, invalid, valid, invalid
	want := []string{"a total of 4 actions", "still have 3 actions", "still have 2 actions", "still have 1 actions", "still have 0 actions"}
	if len(users) != len(want) {
		t.Fatalf("%d user turns, want %d", len(users), len(want))
	}
	for i, w := range want {
		if !strings.Contains(users[i], w) {
			t.Errorf("user turn %d does not say %q:\n%s", i, w, users[i])
		}
	}
	// The minimal history (this env keeps none) records the one recorded
	// step, with the budget the agent saw.
	var hist struct {
		Actions []struct {
			Action string         `json:"action"`
			Result map[string]any `json:"result"`
		} `json:"actions"`
	}
	b, _ := os.ReadFile(filepath.Join(s.Results[0].Dir, "env_history", "history.json"))
	if err := json.Unmarshal(b, &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist.Actions) != 1 || hist.Actions[0].Result[envbridge.KeyRemainingSteps] != 1.0 {
		t.Errorf("history: %s", b)
	}
	if ep := res.Episodes[0]; ep.Meta["unrecorded_turns"] != 3 {
		t.Errorf("loader: %v", ep.Meta)
	}
}

// TestRolloutResetActionAsInMLEDojo: a reset action restarts the
// environment's history (MLE-Dojo 667a8fd: its entry is step 0); the
// episode folder holds that history as the environment wrote it, and the
// loader aligns the five turns with it (the turns before the last reset
// are unrecorded).
func TestRolloutResetActionAsInMLEDojo(t *testing.T) {
	reg, err := local.NewBuiltinRegistry(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	info := envbridge.FormatAction("First the overview.", envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "overview"}})
	reset := envbridge.FormatAction("Start over.", envbridge.Action{Name: "reset"})
	pol := &scriptPolicy{texts: []string{info, reset, "no action", reset, info}}
	out := t.TempDir()
	s, err := Run(context.Background(), pol, builtinSpec{reg}, Options{Episodes: 1, Parallel: 1, MaxSteps: 5, Seed: 2, Out: out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Failed != 0 || s.Results[0].ValidActions != 4 {
		t.Fatalf("summary %+v, result %+v", s, s.Results[0])
	}
	var hist struct {
		Actions []struct {
			Step   int    `json:"step"`
			Action string `json:"action"`
		} `json:"actions"`
	}
	b, err := os.ReadFile(filepath.Join(s.Results[0].Dir, "env_history", "history.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist.Actions) != 2 || hist.Actions[0].Action != "reset" || hist.Actions[0].Step != 0 || hist.Actions[1].Step != 1 {
		t.Fatalf("history: %s", b)
	}
	res, err := data.Load([]string{out}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Episodes) != 1 || res.Episodes[0].NumAssistant() != 5 || res.Episodes[0].Meta["unrecorded_turns"] != 3 {
		t.Fatalf("loaded %+v", res.Episodes)
	}
}
