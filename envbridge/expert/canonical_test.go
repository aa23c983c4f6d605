package expert

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/local"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
)

// TestCanonicalStyle: the canonical expert solves every built-in task in
// two turns (all information, then the canonical program), scores, and
// its code reply is the same for every episode of a task whatever the
// expert's RNG and the task's data seed; the program for each kind names
// the task's columns.
func TestCanonicalStyle(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	root := t.TempDir()
	for _, name := range tasks.Names() {
		var codes []string
		for i, seed := range []uint64{tasks.DefaultSeed, 7} {
			dir, err := tasks.Materialize(filepath.Join(root, name), name, seed)
			if err != nil {
				t.Fatal(err)
			}
			task, err := local.LoadTask(dir)
			if err != nil {
				t.Fatal(err)
			}
			run := filepath.Join(t.TempDir(), name)
			env, err := local.New(task, local.Options{MaxSteps: 10, TimeBudget: time.Hour, RunDir: run, WorkRoot: workRoot(t),
				Sandbox: sandbox.Config{Timeout: 30 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), env, int64(i), rand.New(rand.NewPCG(uint64(i), 5)), Options{Style: StyleCanonical})
			env.Close()
			if err != nil {
				t.Fatalf("%s seed %d: %v", name, seed, err)
			}
			if res.Steps != 2 || res.BestPosition <= 0 || len(res.Bugs) != 0 {
				t.Fatalf("%s seed %d: %+v", name, seed, res)
			}
			b, err := os.ReadFile(filepath.Join(run, "agent_history", "trajectory.json"))
			if err != nil {
				t.Fatal(err)
			}
			var msgs []local.Message
			if err := json.Unmarshal(b, &msgs); err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 5 {
				t.Fatalf("%s: %d messages, want 5", name, len(msgs))
			}
			a, err := envbridge.ParseAction(msgs[3].Content)
			if err != nil || a.Name != envbridge.ActExecuteCode {
				t.Fatalf("%s: code turn %v %v", name, a.Name, err)
			}
			c := a.Params["code"].(string)
			if !strings.Contains(c, "ID, TARGET = '"+task.IDColumn+"', '"+task.Targets[0]+"'") {
				t.Fatalf("%s: program does not name the columns:\n%s", name, c)
			}
			codes = append(codes, msgs[3].Content)
			t.Logf("%s seed %d: position %.3f raw %.4g, code %d bytes", name, seed, res.BestPosition, res.BestRaw, len(c))
		}
		if codes[0] != codes[1] {
			t.Fatalf("%s: the canonical code turn differs between episodes", name)
		}
	}
}

// TestUnknownStyle is refused before any step.
func TestUnknownStyle(t *testing.T) {
	if _, err := Run(context.Background(), nil, 0, nil, Options{Style: "fancy"}); err == nil || !strings.Contains(err.Error(), "fancy") {
		t.Fatalf("err = %v", err)
	}
}
