package envbridge

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fakeEnv is a tiny deterministic Env: reset draws a target from the seed;
// each valid step rewards 1 when the code equals the target. It terminates
// after `term` steps when term > 0.
type fakeEnv struct {
	target string
	steps  int
	term   int
	seen   []string
	closed bool
}

func (e *fakeEnv) Reset(_ context.Context, seed int64) (Observation, Info, error) {
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	e.target = string(rune('a' + r.IntN(26)))
	e.steps = 0
	return Observation{"action_status": "SUCCESS", "feedback": "reset", "hint": e.target}, Info{"seed": seed}, nil
}

func (e *fakeEnv) Step(_ context.Context, a Action) (StepResult, error) {
	e.steps++
	e.seen = append(e.seen, a.Name)
	r := 0.0
	if c, _ := a.Params["code"].(string); c == e.target {
		r = 1
	}
	return StepResult{Obs: Observation{"action_status": "SUCCESS", "feedback": "ok"}, Reward: r,
		Terminated: e.term > 0 && e.steps >= e.term, Info: Info{}}, nil
}

func (e *fakeEnv) Close() error { e.closed = true; return nil }

var ctx = context.Background()

func code(s string) Action { return Action{Name: ActExecuteCode, Params: map[string]any{"code": s}} }

func TestTimeLimit(t *testing.T) {
	env := NewTimeLimit(&fakeEnv{}, 3)
	obs, _, _ := env.Reset(ctx, 1)
	if obs[KeyRemainingSteps] != 3 {
		t.Fatalf("remaining after reset = %v", obs[KeyRemainingSteps])
	}
	for i := 1; i <= 3; i++ {
		res, err := env.Step(ctx, code("x"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Truncated != (i == 3) {
			t.Fatalf("step %d truncated=%v", i, res.Truncated)
		}
		if res.Obs[KeyRemainingSteps] != 3-i {
			t.Fatalf("step %d remaining %v", i, res.Obs[KeyRemainingSteps])
		}
	}
	env.Reset(ctx, 1)
	if res, _ := env.Step(ctx, code("x")); res.Truncated {
		t.Fatal("counter not reset")
	}
	// A terminating step is not also truncated.
	env2 := NewTimeLimit(&fakeEnv{term: 2}, 2)
	env2.Reset(ctx, 1)
	env2.Step(ctx, code("x"))
	if res, _ := env2.Step(ctx, code("x")); !res.Terminated || res.Truncated {
		t.Fatalf("terminated %v truncated %v", res.Terminated, res.Truncated)
	}
}

func TestOrderEnforcing(t *testing.T) {
	env := NewOrderEnforcing(&fakeEnv{})
	if _, err := env.Step(ctx, code("x")); !errors.Is(err, ErrResetNeeded) {
		t.Fatalf("step before reset: %v", err)
	}
	env.Reset(ctx, 0)
	if _, err := env.Step(ctx, code("x")); err != nil {
		t.Fatal(err)
	}
	env.Close()
	if _, err := env.Step(ctx, code("x")); !errors.Is(err, ErrResetNeeded) {
		t.Fatalf("step after close: %v", err)
	}
}

func TestEpisodeStatisticsAndInvalid(t *testing.T) {
	inner := &fakeEnv{}
	env := Wrap(inner, 4)
	obs, _, _ := env.Reset(ctx, 5)
	target := obs["hint"].(string)
	bad, perr := ActionFromText("no json here")
	if perr == nil || bad.Name != ActInvalid {
		t.Fatalf("ActionFromText: %+v %v", bad, perr)
	}
	res, err := env.Step(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if res.Obs["action_status"] != "FAILED" || res.Info["invalid_action"] != true || res.Reward != 0 {
		t.Fatalf("invalid step: %+v", res)
	}
	if !strings.Contains(FeedbackText(res.Obs), "Invalid action") {
		t.Fatalf("feedback %q", FeedbackText(res.Obs))
	}
	// An action that fails validation never reaches the env either.
	env.Step(ctx, Action{Name: ActRequestInfo, Params: map[string]any{"info_type": "nope"}})
	if len(inner.seen) != 0 {
		t.Fatalf("invalid actions reached the env: %v", inner.seen)
	}
	env.Step(ctx, code(target))
	res, _ = env.Step(ctx, code("zz"))
	if !res.Truncated {
		t.Fatal("not truncated at 4 steps")
	}
	st, ok := res.Info["episode"].(EpisodeStats)
	if !ok {
		t.Fatalf("no episode stats in info: %v", res.Info)
	}
	if st.Return != 1 || st.Length != 4 || st.InvalidActions != 2 || st.TimeSeconds < 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCheckResetDeterminism(t *testing.T) {
	if err := CheckResetDeterminism(ctx, &fakeEnv{}, 42, code("q")); err != nil {
		t.Fatal(err)
	}
	// A non-deterministic env is caught.
	if err := CheckResetDeterminism(ctx, &flakyEnv{}, 42, Action{}); err == nil {
		t.Fatal("flaky env passed the checker")
	}
}

type flakyEnv struct {
	fakeEnv
	n int
}

func (e *flakyEnv) Reset(ctx context.Context, seed int64) (Observation, Info, error) {
	e.n++
	return Observation{"n": e.n}, Info{}, nil
}

// TestInvalidActionKeepsBudget: an invalid action's observation copies the
// last observation's budget, remaining_seconds reduced by the time since
// it, and is marked unrecorded; an inner step the env reports as
// unrecorded earns nothing and counts as invalid.
func TestInvalidActionKeepsBudget(t *testing.T) {
	inner := &unrecEnv{}
	w := NewInvalidActionAsObservation(inner)
	now := time.Unix(1000, 0)
	w.now = func() time.Time { return now }
	if _, _, err := w.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30*time.Second + 400*time.Millisecond)
	res, err := w.Step(ctx, InvalidAction("junk", errors.New("parse: no json")))
	if err != nil {
		t.Fatal(err)
	}
	if res.Obs[KeyRemainingSeconds] != 70 || res.Obs[KeyRemainingSteps] != 5 || !Unrecorded(res.Info) || inner.steps != 0 {
		t.Fatalf("invalid action: %+v (inner steps %d)", res, inner.steps)
	}
	stats := NewEpisodeStatistics(w)
	stats.Reset(ctx, 1)
	res, err = stats.Step(ctx, code("x"))
	if err != nil || res.Reward != 0 || stats.Stats().InvalidActions != 1 {
		t.Fatalf("unrecorded inner step: %+v %v stats %+v", res, err, stats.Stats())
	}
}

// unrecEnv reports every step as unrecorded with a reward the rules must
// drop (as an adapter might for a step MLE-Dojo raised on).
type unrecEnv struct{ steps int }

func (e *unrecEnv) Reset(context.Context, int64) (Observation, Info, error) {
	return Observation{KeyRemainingSteps: 5, KeyRemainingSeconds: 100.0}, nil, nil
}
func (e *unrecEnv) Step(context.Context, Action) (StepResult, error) {
	e.steps++
	return StepResult{Obs: Observation{}, Reward: 1, Info: Info{InfoHistoryRecorded: false}}, nil
}
func (e *unrecEnv) Close() error { return nil }
