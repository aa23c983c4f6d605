package train

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smtrain/data"
	"smtrain/envbridge"
	"smtrain/envbridge/expert"
	"smtrain/envbridge/local"
	"smtrain/envbridge/rollout"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
)

// TestKeepEpisodes: failed episodes and rewards below the minimum are
// dropped, at most topK per task are kept, highest reward first (ties by
// index), tasks in name order.
func TestKeepEpisodes(t *testing.T) {
	rs := []rollout.EpisodeResult{
		{Index: 0, Task: "b", Reward: 0.5}, {Index: 1, Task: "a", Reward: 0.9}, {Index: 2, Task: "a", Reward: 0.2},
		{Index: 3, Task: "a", Reward: 0.9}, {Index: 4, Task: "a", Reward: 0.95, Failed: "crash"}, {Index: 5, Task: "b", Reward: 0},
		{Index: 6, Task: "a", Reward: 0.7}, {Index: 7, Task: "c", Reward: 0.05},
	}
	got := KeepEpisodes(rs, 0.1, 2)
	var ids []int
	for _, r := range got {
		ids = append(ids, r.Index)
	}
	if want := []int{1, 3, 0}; len(ids) != len(want) || ids[0] != 1 || ids[1] != 3 || ids[2] != 0 {
		t.Fatalf("kept %v, want %v", ids, want)
	}
	if n := len(KeepEpisodes(rs, 0, 0)); n != 7 {
		t.Fatalf("min 0, no top-k: kept %d, want 7 (all but the failed one)", n)
	}
}

// TestCopyEpisodes copies only the run folder's histories, not other files.
func TestCopyEpisodes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "flower-0003")
	for _, f := range []string{"agent_history/trajectory.json", "env_history/history.json", "workspace/big.bin"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := t.TempDir()
	dirs, err := CopyEpisodes([]rollout.EpisodeResult{{Dir: src}}, dst, "iter-2", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 1 || filepath.Base(dirs[0]) != "iter-2-flower-0003" {
		t.Fatalf("dirs %v", dirs)
	}
	b, err := os.ReadFile(filepath.Join(dirs[0], "env_history", "history.json"))
	if err != nil || string(b) != "env_history/history.json" {
		t.Fatalf("history %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "workspace")); !os.IsNotExist(err) {
		t.Fatalf("workspace copied (%v)", err)
	}
	if err := WriteIterSummary(dst, "smtrain iterate -x", []IterRow{{Iteration: 0, HeldoutReward: 0.1, Ckpt: "/elsewhere/run"}, {Iteration: 1, Kept: 2, HeldoutReward: 0.4, Ckpt: filepath.Join(dst, "iter-1", "fit")}}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dst, "summary.md"))
	if err != nil || !strings.Contains(string(md), "| 1 | iter-1/fit | 0 | 0.000 | 2 | 0 | 0 | 0.400 |") {
		t.Fatalf("summary.md %v:\n%s", err, md)
	}
}

// TestCutAfterBest: an episode that scored at its second turn and went on
// acting (an information request, an unparseable reply, more code) is cut
// to the scoring turn and the observation after it; the loader reads the
// result with the same reward and no turn the environment did not see.
func TestCutAfterBest(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	dir, err := tasks.Materialize(t.TempDir(), "flower-species", tasks.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	task, err := local.LoadTask(dir)
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(t.TempDir(), "flower-species-0")
	work := t.TempDir()
	os.Chmod(work, 0o755)
	env, err := local.New(task, local.Options{MaxSteps: 10, TimeBudget: time.Hour, RunDir: run, WorkRoot: work,
		Sandbox: sandbox.Config{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ctx := context.Background()
	res, err := expert.Run(ctx, env, 1, rand.New(rand.NewPCG(1, 2)), expert.Options{Style: expert.StyleCanonical})
	if err != nil || res.BestPosition <= 0 {
		t.Fatalf("expert: %+v %v", res, err)
	}
	// Three more turns after the score: a valid request, a reply that is
	// no action (the environment records nothing), failing code.
	for _, text := range []string{
		envbridge.FormatAction("Again.", envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "overview"}}),
		"no action here",
		envbridge.FormatAction("More.", envbridge.Action{Name: envbridge.ActExecuteCode, Params: map[string]any{"code": "raise SystemExit(3)"}}),
	} {
		if err := env.AppendMessage("assistant", text); err != nil {
			t.Fatal(err)
		}
		act, _ := envbridge.ActionFromText(text)
		r, err := env.Step(ctx, act)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.AppendMessage("user", envbridge.FormatObservation(r.Obs)); err != nil {
			t.Fatal(err)
		}
	}
	full, err := data.Load([]string{run}, false)
	if err != nil || len(full.Episodes) != 1 || full.Episodes[0].NumAssistant() != 5 {
		t.Fatalf("before the cut: %v", err)
	}
	if err := CutAfterBest(run, 2); err != nil {
		t.Fatal(err)
	}
	cut, err := data.Load([]string{run}, false)
	if err != nil || len(cut.Episodes) != 1 {
		t.Fatalf("after the cut: %v", err)
	}
	ep := cut.Episodes[0]
	if ep.NumAssistant() != 2 || len(ep.Messages) != 5 || ep.Reward != full.Episodes[0].Reward || ep.Meta["unrecorded_turns"] != nil {
		t.Fatalf("cut episode: %d turns, %d messages, reward %v (was %v), meta %v", ep.NumAssistant(), len(ep.Messages), ep.Reward, full.Episodes[0].Reward, ep.Meta)
	}
	if ep.StepRewards[1] <= 0 {
		t.Fatalf("the scoring turn lost its reward: %v", ep.StepRewards)
	}
}

// TestDropFailedCode removes the copies with more failed code actions than
// allowed and keeps the others.
func TestDropFailedCode(t *testing.T) {
	mk := func(name string, statuses ...string) string {
		d := filepath.Join(t.TempDir(), name)
		var acts []string
		for _, st := range statuses {
			acts = append(acts, `{"action": "execute_code", "result": {"status": "`+st+`", "execution": {"status": "`+st+`"}}}`)
		}
		if err := os.MkdirAll(filepath.Join(d, "env_history"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "env_history", "history.json"), []byte(`{"actions": [`+strings.Join(acts, ",")+`]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	clean, once, twice := mk("clean", "SUCCESS"), mk("once", "FAILED", "SUCCESS"), mk("twice", "FAILED", "FAILED", "SUCCESS")
	left, err := DropFailedCode([]string{clean, once, twice}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0] != clean || left[1] != once {
		t.Fatalf("left %v", left)
	}
	if _, err := os.Stat(twice); !os.IsNotExist(err) {
		t.Fatalf("%s not removed (%v)", twice, err)
	}
}
