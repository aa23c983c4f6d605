package train

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"smtrain/data"
	"smtrain/envbridge"
	"smtrain/envbridge/rollout"
)

// markerEnv is a fake environment whose observations carry a marker text,
// so the test can find them in the replay buffer.
type markerEnv struct {
	id    int
	steps *atomic.Int64
}

func (e *markerEnv) Reset(ctx context.Context, seed int64) (envbridge.Observation, envbridge.Info, error) {
	return envbridge.Observation{"action_status": "SUCCESS", "feedback": fmt.Sprintf("ENVRESET%d: solve it.", e.id)}, nil, nil
}

func (e *markerEnv) Step(ctx context.Context, a envbridge.Action) (envbridge.StepResult, error) {
	e.steps.Add(1)
	return envbridge.StepResult{Obs: envbridge.Observation{"action_status": "SUCCESS", "feedback": "ENVSTEP ok"}, Reward: 0}, nil
}

func (e *markerEnv) Close() error { return nil }

type markerSpec struct{ steps *atomic.Int64 }

func (markerSpec) Task(i int) string { return "marker" }
func (m markerSpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	return &markerEnv{id: i, steps: m.steps}, nil
}

var _ rollout.EnvSpec = markerSpec{}

func envReplayConfig(out string, steps int) Config {
	c := smallConfig(out, steps)
	c.NPositions, c.BatchSize, c.GradAccum = 1024, 4, 1
	c.WarmStart, c.ReplayEvery, c.ReplaySamples, c.ReplayBatch, c.ReplaySize = 0, 2, 2, 2, 32
	c.EvalEvery, c.EvalSamples, c.ValFraction = 0, 0, 0
	c.CkptEvery, c.KeepLast = 1, 10
	c.Objective = "chi2mix"
	return c
}

func envReplayInputs(steps *atomic.Int64) Inputs {
	var eps []data.Episode
	for i := 0; i < 8; i++ {
		eps = append(eps, data.Episode{Messages: []data.Message{{Role: data.RoleUser, Content: "task"},
			{Role: data.RoleAssistant, Content: "a" + strings.Repeat("b", i)}, {Role: data.RoleUser, Content: "obs"}, {Role: data.RoleAssistant, Content: "c"}}})
	}
	return Inputs{Train: eps, Tokenizer: data.ByteTokenizer(),
		EnvReplay: &EnvReplay{Spec: MultiEnvSpec{markerSpec{steps}, markerSpec{steps}}, Describe: "fake", Episodes: 2, MaxSteps: 3, MaxNew: 160,
			Grammar: envbridge.NewActionGrammar()}}
}

// TestEnvReplayFillsBufferWithEpisodes: the replay buffer holds the
// policy's multi-turn episodes (replies constrained to valid actions), with
// the observations the environment returned; every refresh logs its metrics; a run
// resumed from a checkpoint after a refresh continues exactly.
func TestEnvReplayFillsBufferWithEpisodes(t *testing.T) {
	var steps atomic.Int64
	out := t.TempDir()
	tr, err := New(envReplayConfig(out, 4), envReplayInputs(&steps), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tr.replay.Len() == 0 {
		t.Fatal("empty replay buffer")
	}
	tok := data.ByteTokenizer()
	turns, marked := 0, 0
	for _, s := range tr.replay.All() {
		var obs, all []int32
		all = append(all, s.Prompt...)
		for _, it := range s.Items {
			all = append(all, it.Tok)
			if it.Kind == data.KindObs {
				obs = append(obs, it.Tok)
			}
		}
		if s.Set != data.SetG {
			t.Fatalf("buffer sequence in set %v", s.Set)
		}
		if len(obs) > 0 {
			turns++
		}
		if strings.Contains(tok.Decode(all), "ENVSTEP ok") {
			marked++
		}
	}
	if turns == 0 || marked == 0 {
		t.Fatalf("%d buffer sequences: %d with observations after an action, %d with the environment's step text (%d steps)", tr.replay.Len(), turns, marked, steps.Load())
	}
	// Metrics: one env refresh at steps 0 (warm start 0), 2 and 4.
	b, err := os.ReadFile(filepath.Join(out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var refreshes []int
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev struct {
			Step  int            `json:"step"`
			Split string         `json:"split"`
			Extra map[string]any `json:"extra"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Split == "replay" && ev.Extra["source"] == "env" {
			refreshes = append(refreshes, ev.Step)
			for _, k := range []string{"episodes", "mean_reward", "valid_action_rate", "code_error_rate", "backspaces_per_episode", "scoring_rate"} {
				if _, ok := ev.Extra[k]; !ok {
					t.Fatalf("refresh event lacks %s: %s", k, line)
				}
			}
			if ev.Extra["episodes"].(float64) != 2 {
				t.Fatalf("refresh of %v episodes, want 2", ev.Extra["episodes"])
			}
		}
	}
	if !slices.Equal(refreshes, []int{0, 2, 4}) {
		t.Fatalf("env refreshes at steps %v, want [0 2 4]", refreshes)
	}
	if _, err := os.Stat(filepath.Join(out, EnvReplayDir, "step-00000002", "summary.json")); err != nil {
		t.Fatal(err)
	}

	// Resume from step 3 (after the refresh of step 2): same losses.
	out2 := t.TempDir()
	a, err := New(envReplayConfig(out2, 3), envReplayInputs(&steps), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := New(envReplayConfig(out2, 4), envReplayInputs(&steps), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, got := trainLosses(t, filepath.Join(out, MetricsFile)), trainLosses(t, filepath.Join(out2, MetricsFile))
	if !slices.Equal(want, got) {
		t.Fatalf("resumed losses %v, uninterrupted %v", got, want)
	}
}

func trainLosses(t *testing.T, path string) []float64 {
	var out []float64
	for _, r := range readLosses(t, path) {
		if r.Split == "train" && r.Loss != nil {
			out = append(out, *r.Loss)
		}
	}
	return out
}

// TestEnvReplayNeedsReplayObjective: replay_env with MLE is an error.
func TestEnvReplayNeedsReplayObjective(t *testing.T) {
	var steps atomic.Int64
	c := envReplayConfig(t.TempDir(), 1)
	c.Objective = "mle"
	if _, err := New(c, envReplayInputs(&steps), false, nil); err == nil || !strings.Contains(err.Error(), "replay buffer") {
		t.Fatalf("err %v", err)
	}
}
