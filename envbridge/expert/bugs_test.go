package expert

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/local"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
)

// TestEveryBugFailsAndFixWorks applies each deliberate bug to a real
// solution and checks that the buggy run fails with the error the fix
// message talks about, while the fixed program scores.
func TestEveryBugFailsAndFixWorks(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	dir, err := tasks.Materialize(t.TempDir(), "loan-default", tasks.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	task, err := local.LoadTask(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !trainHasText(task) {
		t.Fatal("loan-default should have a text column")
	}
	env, err := local.New(task, local.Options{WorkRoot: workRoot(t), Sandbox: sandbox.Config{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ctx := context.Background()
	if _, _, err := env.Reset(ctx, 0); err != nil {
		t.Fatal(err)
	}
	res, _ := env.Step(ctx, envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "all"}})
	paths := map[string]string{}
	for _, m := range pathRE.FindAllStringSubmatch(envbridge.FeedbackText(res.Obs), -1) {
		paths[m[1]] = m[2]
	}
	full := program(logistic(rand.New(rand.NewPCG(1, 1))), paths["data_path"], paths["output_path"], "id", "default")
	want := map[string]string{"typo": "NameError", "no-onehot": "could not convert string to float", "missing-import": "name 'math' is not defined",
		"wrong-file": "SubmissionNotFoundError", "wrong-header": "Missing required columns"}
	for _, b := range bugs {
		buggy := b.apply(full)
		if buggy == full {
			t.Fatalf("bug %s does not change the program", b.name)
		}
		res, err := env.Step(ctx, code(envbridge.ActExecuteCode, buggy))
		if err != nil {
			t.Fatal(err)
		}
		fb := envbridge.FeedbackText(res.Obs)
		if res.Obs["action_status"] != "FAILED" || !strings.Contains(fb, want[b.name]) {
			t.Errorf("bug %s: status %v, want %q in\n%.800s", b.name, res.Obs["action_status"], want[b.name], fb)
		}
	}
	res, err = env.Step(ctx, code(envbridge.ActExecuteCode, full))
	if err != nil || res.Obs["action_status"] != "SUCCESS" || res.Reward <= 0 {
		t.Fatalf("fixed program: %v %v\n%s", err, res.Reward, envbridge.FeedbackText(res.Obs))
	}
}
