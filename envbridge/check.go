package envbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// Wrap applies the episode rules, outermost first: EpisodeStatistics
// (returns, lengths, invalid actions), TimeLimit (the step budget when
// maxSteps > 0; invalid actions count as steps), InvalidActionAsObservation
// (invalid and unrecorded steps), OrderEnforcing. rollout plays every
// episode through it: an agent loop sends each parsed action, or
// InvalidAction(err) for a reply that did not parse, to Step and reads
// the episode's counts from EpisodeStatistics.Stats.
func Wrap(env Env, maxSteps int) *EpisodeStatistics {
	var e Env = NewOrderEnforcing(env)
	e = NewInvalidActionAsObservation(e)
	if maxSteps > 0 {
		e = NewTimeLimit(e, maxSteps)
	}
	return NewEpisodeStatistics(e)
}

// CheckResetDeterminism verifies, like Gymnasium's env checker, that two
// resets with the same seed give identical observations and infos, and
// that the same action then gives the same step result. Keys listed in
// volatile (e.g. timestamps) are ignored at the top level of observations
// and infos. probe may be the zero Action to skip the step check.
func CheckResetDeterminism(ctx context.Context, env Env, seed int64, probe Action, volatile ...string) error {
	obs1, info1, err := env.Reset(ctx, seed)
	if err != nil {
		return fmt.Errorf("reset #1 (seed %d): %w", seed, err)
	}
	var st1 StepResult
	if probe.Name != "" {
		if st1, err = env.Step(ctx, probe); err != nil {
			return fmt.Errorf("step #1 (%s): %w", probe.Name, err)
		}
	}
	obs2, info2, err := env.Reset(ctx, seed)
	if err != nil {
		return fmt.Errorf("reset #2 (seed %d): %w", seed, err)
	}
	if err := sameJSON("reset observation", obs1, obs2, volatile); err != nil {
		return err
	}
	if err := sameJSON("reset info", info1, info2, volatile); err != nil {
		return err
	}
	if probe.Name == "" {
		return nil
	}
	st2, err := env.Step(ctx, probe)
	if err != nil {
		return fmt.Errorf("step #2 (%s): %w", probe.Name, err)
	}
	if err := sameJSON("step observation", st1.Obs, st2.Obs, volatile); err != nil {
		return err
	}
	if st1.Reward != st2.Reward || st1.Terminated != st2.Terminated || st1.Truncated != st2.Truncated {
		return fmt.Errorf("step after reset(seed %d) not deterministic: reward %v/%v terminated %v/%v truncated %v/%v",
			seed, st1.Reward, st2.Reward, st1.Terminated, st2.Terminated, st1.Truncated, st2.Truncated)
	}
	return sameJSON("step info", st1.Info, st2.Info, volatile)
}

func sameJSON[M ~map[string]any](what string, a, b M, volatile []string) error {
	strip := func(m M) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for _, k := range volatile {
			delete(out, k)
		}
		return out
	}
	ja, err := json.Marshal(strip(a))
	if err != nil {
		return fmt.Errorf("%s: not JSON-encodable: %w", what, err)
	}
	jb, err := json.Marshal(strip(b))
	if err != nil {
		return fmt.Errorf("%s: not JSON-encodable: %w", what, err)
	}
	if !bytes.Equal(ja, jb) {
		return fmt.Errorf("%s differs between two resets with the same seed:\n  %s\n  %s", what, clip(ja), clip(jb))
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
