package expert

import (
	"context"
	"os"
	"testing"
	"time"

	"smtrain/envbridge/local"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
)

// TestExpertWithoutBwrap runs an episode with the sandbox's weak fallback
// (no bwrap): data is linked into the workspace instead of bound, so the
// expert still succeeds even when the task folder is private.
func TestExpertWithoutBwrap(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	root := t.TempDir()
	os.Chmod(root, 0o700)
	dir, err := tasks.Materialize(root, "loan-default", tasks.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	task, err := local.LoadTask(dir)
	if err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp("", "smtrain-none-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	os.Chmod(work, 0o755)
	env, err := local.New(task, local.Options{MaxSteps: 10, WorkRoot: work, Sandbox: sandbox.Config{Timeout: 30 * time.Second, Isolation: sandbox.IsolationNone}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	res, err := Run(context.Background(), env, 0, EpisodeRNG(1, 0), Options{BugRate: 0.99})
	if err != nil {
		t.Fatal(err)
	}
	if res.BestPosition <= 0 {
		t.Fatalf("no reward: %+v", res)
	}
}
