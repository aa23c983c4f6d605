package expert

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/local"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
)

// TestExpertSolvesBuiltinTasks runs the expert on every built-in task with
// several seeds (covering the bug-then-fix paths) through the real sandbox
// and checks it reaches a positive reward and writes a consistent
// trajectory.
func TestExpertSolvesBuiltinTasks(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	root := t.TempDir()
	seeds := 3
	if testing.Short() {
		seeds = 2
	}
	bugsSeen := map[string]bool{}
	for _, name := range tasks.Names() {
		dir, err := tasks.Materialize(root, name, tasks.DefaultSeed)
		if err != nil {
			t.Fatal(err)
		}
		task, err := local.LoadTask(dir)
		if err != nil {
			t.Fatal(err)
		}
		for s := 0; s < seeds; s++ {
			run := filepath.Join(t.TempDir(), name)
			env, err := local.New(task, local.Options{MaxSteps: 10, TimeBudget: time.Hour, RunDir: run, WorkRoot: workRoot(t),
				Sandbox: sandbox.Config{Timeout: 30 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(uint64(s), 99))
			res, err := Run(context.Background(), env, int64(s), r, Options{BugRate: 0.6})
			if err != nil {
				t.Fatalf("%s seed %d: %v", name, s, err)
			}
			t.Logf("%s seed %d: steps %d reward %.3f best raw %.4f position %.3f models %v bugs %v in %v",
				name, s, res.Steps, res.TotalReward, res.BestRaw, res.BestPosition, res.Models, res.Bugs, res.Duration.Round(time.Millisecond))
			if res.BestPosition <= 0 || res.TotalReward <= 0 {
				t.Errorf("%s seed %d: no positive reward: %+v", name, s, res)
			}
			for _, b := range res.Bugs {
				bugsSeen[b] = true
			}
			// The trajectory alternates user/assistant, starts with the
			// instruction prompt and each assistant turn parses.
			var msgs []local.Message
			b, err := os.ReadFile(filepath.Join(run, "agent_history", "trajectory.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &msgs); err != nil {
				t.Fatal(err)
			}
			if len(msgs) < 2 || msgs[0].Role != "user" || msgs[0].Content != envbridge.InstructionPrompt(10, 3600) {
				t.Fatalf("trajectory start: %d messages", len(msgs))
			}
			nAssist := 0
			for i, m := range msgs {
				want := "user"
				if i%2 == 1 {
					want = "assistant"
					nAssist++
					if _, err := envbridge.ParseAction(m.Content); err != nil {
						t.Fatalf("assistant turn %d does not parse: %v", i, err)
					}
				}
				if m.Role != want {
					t.Fatalf("message %d role %s", i, m.Role)
				}
			}
			if nAssist != res.Steps {
				t.Fatalf("%d assistant turns for %d steps", nAssist, res.Steps)
			}
			env.Close()
		}
	}
	t.Logf("bugs exercised: %v", bugsSeen)
}

// workRoot is a temporary work root reachable by other users (the sandbox
// fallback runs agent code under another uid when smtrain runs as root).
func workRoot(t testing.TB) string {
	d := t.TempDir()
	os.Chmod(filepath.Dir(d), 0o755)
	os.Chmod(d, 0o755)
	return d
}
