package local

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
)

var ctx = context.Background()

func builtinTask(t testing.TB, name string) *Task {
	t.Helper()
	dir, err := tasks.Materialize(t.TempDir(), name, 11)
	if err != nil {
		t.Fatal(err)
	}
	task, err := LoadTask(dir)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func needPython(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
}

func exec(code string) envbridge.Action {
	return envbridge.Action{Name: envbridge.ActExecuteCode, Params: map[string]any{"code": code}}
}

func step(t *testing.T, env *Env, a envbridge.Action) envbridge.StepResult {
	t.Helper()
	res, err := env.Step(ctx, a)
	if err != nil {
		t.Fatalf("step %s: %v", a.Name, err)
	}
	return res
}

// TestEndToEnd drives the local env on a built-in task with the real
// sandbox: info, a syntax error, malformed submissions, a good one.
func TestEndToEnd(t *testing.T) {
	needPython(t)
	task := builtinTask(t, "loan-default")
	run := t.TempDir()
	env, err := New(task, Options{MaxSteps: 13, TimeBudget: time.Hour, RunDir: run, WorkRoot: workRoot(t),
		Sandbox: sandbox.Config{Timeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	obs, info, err := env.Reset(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("isolation: %v", info["isolation"])
	if obs[envbridge.KeyRemainingSteps] != 13 || obs[envbridge.KeyRemainingSeconds] != 3600 {
		t.Fatalf("budget in reset obs: %v", obs)
	}
	if !strings.Contains(envbridge.FormatInitialPrompt(obs), "You have a total of 13 actions available.") {
		t.Fatal("initial prompt budget")
	}

	res := step(t, env, envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "all"}})
	fb := envbridge.FeedbackText(res.Obs)
	for _, want := range []string{"=== Competition Info ===", "Your requested information: {'overview': '### Description",
		"'sample_submission': {'id': {0: 100001, 1: 100002, 2: 100003}, 'default': {0: 0.5, 1: 0.5, 2: 0.5}}",
		"'data_structure': '└── public/\\n    ├── description.txt\\n    ├── sample_submission.csv\\n    ├── test.csv\\n    └── train.csv\\n'",
		"'name': 'loan-default'", "'higher_is_better': True"} {
		if !strings.Contains(fb, want) {
			t.Errorf("request_info all: missing %q in\n%.600s", want, fb)
		}
	}
	if res.Obs["action_status"] != "SUCCESS" || res.Reward != 0 || res.Obs[envbridge.KeyRemainingSteps] != 12 {
		t.Fatalf("request_info obs: %v", res.Obs)
	}
	dp := step(t, env, envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "data_path"}})
	dataPath := env.dataPath()
	if !strings.Contains(envbridge.FeedbackText(dp.Obs), "{'data_path': '"+dataPath+"'}") {
		t.Fatalf("data_path feedback: %q", envbridge.FeedbackText(dp.Obs))
	}
	outPath := env.outputPath()

	res = step(t, env, envbridge.Action{Name: envbridge.ActValidateCode, Params: map[string]any{"code": "def f(:\n    pass\n"}})
	fb = envbridge.FeedbackText(res.Obs)
	if res.Obs["action_status"] != "FAILED" || !strings.Contains(fb, "=== Code Validation Results ===") || !strings.Contains(fb, "CodeSyntaxError: Code syntax validation failed") {
		t.Fatalf("syntax error feedback:\n%s", fb)
	}
	if !strings.Contains(envbridge.FormatObservation(res.Obs), "#### Error Start ####") {
		t.Fatal("failed action not rendered with the error template")
	}

	// validate_code runs and prints but never scores; the data is visible,
	// the private answers are not.
	res = step(t, env, envbridge.Action{Name: envbridge.ActValidateCode, Params: map[string]any{"code": "import os\nprint(sorted(os.listdir(" + pyStr(dataPath) + ")))\n"}})
	fb = envbridge.FeedbackText(res.Obs)
	if res.Obs["action_status"] != "SUCCESS" || !strings.Contains(fb, "Runtime check passed") ||
		!strings.Contains(fb, "Code output: ['description.txt', 'sample_submission.csv', 'test.csv', 'train.csv']") || res.Reward != 0 {
		t.Fatalf("validate feedback:\n%s", fb)
	}

	writeSub := func(body string) string {
		return "import os\nrows = open(os.path.join(" + pyStr(dataPath) + ", 'test.csv')).read().split('\\n')[1:]\nids = [r.split(',')[0] for r in rows if r]\n" +
			"with open(os.path.join(" + pyStr(outPath) + ", 'submission.csv'), 'w') as f:\n" + body
	}
	bad := []struct{ name, code, want string }{
		{"missing file", "print('no file')\n", "SubmissionNotFoundError"},
		{"wrong rows", writeSub("    f.write('id,default\\n')\n    for i in ids[:10]:\n        f.write(i + ',0.5\\n')\n"), "Number of rows in submission (10) does not match ground truth (300)"},
		{"missing column", writeSub("    f.write('id,prob\\n')\n    for i in ids:\n        f.write(i + ',0.5\\n')\n"), "Missing required columns in submission: default"},
		{"extra column", writeSub("    f.write('id,default,x\\n')\n    for i in ids:\n        f.write(i + ',0.5,1\\n')\n"), "Extra unexpected columns found in submission: x"},
		{"wrong ids", writeSub("    f.write('id,default\\n')\n    for i in ids:\n        f.write(i + '9,0.5\\n')\n"), "do not match between submission and ground truth"},
		{"nan", writeSub("    f.write('id,default\\n')\n    for k, i in enumerate(ids):\n        f.write(i + (',nan\\n' if k == 7 else ',0.5\\n'))\n"), "value is nan"},
		{"text value", writeSub("    f.write('id,default\\n')\n    for k, i in enumerate(ids):\n        f.write(i + (',high\\n' if k == 3 else ',0.5\\n'))\n"), "not a number"},
		{"runtime error", "import os\nx = 1/0\n", "ZeroDivisionError"},
	}
	for _, b := range bad {
		res = step(t, env, exec(b.code))
		fb = envbridge.FeedbackText(res.Obs)
		if res.Obs["action_status"] != "FAILED" || res.Reward != 0 || !strings.Contains(fb, b.want) {
			t.Fatalf("%s: status %v reward %v, want %q in\n%s", b.name, res.Obs["action_status"], res.Reward, b.want, fb)
		}
	}
	// A real (if simple) model: a debt-ratio score.
	good := "import csv, os\nrows = list(csv.DictReader(open(os.path.join(" + pyStr(dataPath) + ", 'test.csv'))))\n" +
		"with open(os.path.join(" + pyStr(outPath) + ", 'submission.csv'), 'w') as f:\n    f.write('id,default\\n')\n" +
		"    for r in rows:\n        f.write('%s,%.4f\\n' % (r['id'], float(r['debt_ratio'])))\nprint('wrote', len(rows))\n"
	res = step(t, env, exec(good))
	fb = envbridge.FeedbackText(res.Obs)
	if res.Obs["action_status"] != "SUCCESS" || res.Reward <= 0 || res.Reward > 1 {
		t.Fatalf("good submission: reward %v\n%s", res.Reward, fb)
	}
	for _, want := range []string{"Execution successful", "Code output: wrote 300", "=== Submission Evaluation ===", "Submission successful", "Private Leaderboard: Position ", "Average Position Score: "} {
		if !strings.Contains(fb, want) {
			t.Errorf("missing %q in\n%s", want, fb)
		}
	}
	raw := res.Info["raw_score"].(float64)
	t.Logf("debt-ratio AUC %.4f, position score %.4f", raw, res.Reward)
	if res.Obs["best_raw_score"] != raw || res.Obs["best_position_score"] != res.Reward {
		t.Fatalf("best scores not updated: %v", res.Obs)
	}

	// history.json: valid JSON in MLE-Dojo's shape, one record per step.
	b, err := os.ReadFile(filepath.Join(run, "env_history", "history.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Competition string `json:"competition"`
		Actions     []struct {
			Step      int            `json:"step"`
			Action    string         `json:"action"`
			Timestamp string         `json:"timestamp"`
			Result    map[string]any `json:"result"`
			Feedback  struct {
				Base struct {
					FeedbackStatus string `json:"feedback_status"`
					Feedback       string `json:"feedback"`
				} `json:"base"`
			} `json:"feedback"`
		} `json:"actions"`
		TotalReward       float64 `json:"total_reward"`
		BestCode          string  `json:"best_code"`
		BestRawScore      float64 `json:"best_raw_score"`
		BestPositionScore float64 `json:"best_position_score"`
		StepCount         int     `json:"step_count"`
		CreatedAt         string  `json:"created_at"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("history.json: %v", err)
	}
	if h.Competition != "loan-default" || len(h.Actions) != 13 || h.StepCount != 13 || h.BestCode != good || h.BestRawScore != raw || h.TotalReward != res.Reward || h.CreatedAt == "" {
		t.Fatalf("history: competition %q actions %d step_count %d total %v", h.Competition, len(h.Actions), h.StepCount, h.TotalReward)
	}
	for i, a := range h.Actions {
		if a.Step != i+1 || a.Feedback.Base.Feedback == "" || a.Timestamp == "" {
			t.Fatalf("history action %d: %+v", i, a)
		}
	}
	if keys := topKeys(t, b); strings.Join(keys, ",") != "competition,actions,total_reward,best_code,best_raw_score,best_position_score,step_count,created_at" {
		t.Errorf("history key order %v", keys)
	}
	last := h.Actions[len(h.Actions)-1].Result
	if _, ok := last["submission"].(map[string]any)["position_score"].(map[string]any)["private"]; !ok {
		t.Errorf("submission result lacks position_score.private: %v", last)
	}
	// The step budget is used up: truncated.
	if !res.Truncated {
		t.Fatal("13th step not truncated")
	}
	if _, err := env.Step(ctx, exec("print(1)")); err == nil {
		t.Fatal("step after truncation accepted")
	}
	served, err := env.History()
	if err != nil || string(served) != string(b) {
		t.Fatal("History() differs from history.json")
	}
}

func topKeys(t *testing.T, b []byte) []string {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.Token()
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	return keys
}

func TestInvalidActionAndDeterminism(t *testing.T) {
	task := builtinTask(t, "flower-species")
	env, err := New(task, Options{MaxSteps: 5, WorkRoot: workRoot(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	probe := envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "overview"}}
	if err := envbridge.CheckResetDeterminism(ctx, env, 3, probe); err != nil {
		t.Fatal(err)
	}
	env.Reset(ctx, 3)
	a, perr := envbridge.ActionFromText("I am not sure what to do.")
	if perr == nil {
		t.Fatal("expected parse error")
	}
	res := step(t, env, a)
	if res.Obs["action_status"] != "FAILED" || res.Info["invalid_action"] != true || !strings.Contains(envbridge.FeedbackText(res.Obs), "Invalid action: parse:") {
		t.Fatalf("invalid action: %+v", res)
	}
	res = step(t, env, envbridge.Action{Name: "train", Params: map[string]any{}})
	if res.Info["invalid_action"] != true || env.Stats().InvalidActions != 2 || res.Obs[envbridge.KeyRemainingSteps] != 3 {
		t.Fatalf("unknown action: %+v stats %+v", res, env.Stats())
	}
	// Invalid actions are not recorded (the real env.step raises on them).
	b, _ := env.History()
	var h map[string]any
	json.Unmarshal(b, &h)
	if n := len(h["actions"].([]any)); n != 0 || res.Info[envbridge.InfoHistoryRecorded] != false {
		t.Fatalf("invalid actions recorded: %d entries, info %v", n, res.Info)
	}
	// reset and get_history actions: recorded, with MLE-Dojo's FAILED
	// "Invalid interface mode" feedback.
	res = step(t, env, envbridge.Action{Name: envbridge.ActGetHistory})
	if envbridge.FeedbackText(res.Obs) != "Invalid interface mode: get_history, supported modes: validate_code, execute_code, request_info" || res.Obs["action_status"] != "SUCCESS" {
		t.Fatalf("get_history: %q", envbridge.FeedbackText(res.Obs))
	}
	res = step(t, env, envbridge.Action{Name: envbridge.ActReset})
	if res.Obs["action_status"] != nil || !strings.HasPrefix(envbridge.FeedbackText(res.Obs), "Invalid interface mode: reset") {
		t.Fatalf("reset action: %+v", res.Obs)
	}
	b, _ = env.History()
	json.Unmarshal(b, &h)
	acts := h["actions"].([]any)
	if n := len(acts); n != 1 || acts[0].(map[string]any)["step"] != 0.0 {
		t.Fatalf("after reset action the history has %d actions (want 1, step 0): %s", n, b)
	}
	if err := env.Close(); err != nil || env.Close() != nil {
		t.Fatal("close not idempotent")
	}
}

func TestLoadTaskErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadTask(dir); err == nil || !strings.Contains(err.Error(), "required path missing") {
		t.Fatalf("empty dir: %v", err)
	}
	task := builtinTask(t, "house-prices-lite")
	if task.Metric.Name != "rmse" || task.HigherIsBetter || task.IDColumn != "id" || task.Targets[0] != "price" {
		t.Fatalf("task: %+v", task)
	}
	os.WriteFile(filepath.Join(task.Dir, "data", "task.json"), []byte(`{"metric": "bogus"}`), 0o644)
	if _, err := LoadTask(task.Dir); err == nil || !strings.Contains(err.Error(), "unknown metric") {
		t.Fatalf("bad metric: %v", err)
	}
	os.WriteFile(filepath.Join(task.Dir, "data", "task.json"), []byte(`{"metric": "rmse", "colour": 1}`), 0o644)
	if _, err := LoadTask(task.Dir); err == nil || !strings.Contains(err.Error(), "task.json") {
		t.Fatalf("unknown key: %v", err)
	}
	os.Remove(filepath.Join(task.Dir, "data", "task.json"))
	if _, err := LoadTask(task.Dir); err == nil || !strings.Contains(err.Error(), "unknown competition") {
		t.Fatalf("no meta: %v", err)
	}
	// A known competition needs no task.json.
	kdir := filepath.Join(t.TempDir(), "titanic")
	os.MkdirAll(filepath.Join(kdir, "data", "public"), 0o755)
	os.MkdirAll(filepath.Join(kdir, "data", "private"), 0o755)
	os.WriteFile(filepath.Join(kdir, "data", "public", "description.txt"), []byte("d"), 0o644)
	os.WriteFile(filepath.Join(kdir, "data", "public", "sample_submission.csv"), []byte("PassengerId,Survived\n892,0\n"), 0o644)
	os.WriteFile(filepath.Join(kdir, "data", "private", "test_answer.csv"), []byte("PassengerId,Survived\n892,1\n893,0\n"), 0o644)
	os.WriteFile(filepath.Join(kdir, "data", "private", "public_leaderboard.csv"), []byte("rank,score\n1,0.9\n2,0.5\n"), 0o644)
	k, err := LoadTask(kdir)
	if err != nil {
		t.Fatal(err)
	}
	if k.Metric.Name != "accuracy" || !k.HigherIsBetter || k.IDColumn != "PassengerId" {
		t.Fatalf("titanic: %+v", k)
	}
	sub := filepath.Join(t.TempDir(), "s.csv")
	os.WriteFile(sub, []byte("PassengerId,Survived\n893,0\n892.0,0\n"), 0o644)
	if s, err := k.scoreSubmission(sub, sub); err != nil || s != 0.5 {
		t.Fatalf("titanic score %v %v", s, err)
	}
}

// TestHostileCodeContained: private answers are unreachable and a hanging
// run is killed, after which the environment keeps serving.
func TestHostileCodeContained(t *testing.T) {
	needPython(t)
	task := builtinTask(t, "loan-default")
	env, err := New(task, Options{WorkRoot: workRoot(t), Sandbox: sandbox.Config{Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	_, info, _ := env.Reset(ctx, 0)
	if info["isolation"] != sandbox.IsolationBwrap {
		t.Skipf("isolation %v: private files are only hidden with bwrap", info["isolation"])
	}
	priv := filepath.Join(task.PrivateDir, "test_answer.csv")
	res := step(t, env, exec("print(open("+pyStr(priv)+").read()[:50])\n"))
	if res.Obs["action_status"] != "FAILED" || !strings.Contains(envbridge.FeedbackText(res.Obs), "No such file or directory") {
		t.Fatalf("private answers readable:\n%s", envbridge.FeedbackText(res.Obs))
	}
	res = step(t, env, exec("import os\nprint(os.listdir('/workspace/data/..'))\nprint(open('/workspace/data/../../data/private/test_answer.csv').read())\n"))
	if res.Obs["action_status"] != "FAILED" {
		t.Fatalf("relative path escaped:\n%s", envbridge.FeedbackText(res.Obs))
	}
	t0 := time.Now()
	res = step(t, env, exec("while True:\n    pass\n"))
	if res.Obs["action_status"] != "FAILED" || !strings.Contains(envbridge.FeedbackText(res.Obs), "TimeoutError") || time.Since(t0) > 15*time.Second {
		t.Fatalf("infinite loop: %v\n%s", time.Since(t0), envbridge.FeedbackText(res.Obs))
	}
	res = step(t, env, envbridge.Action{Name: envbridge.ActValidateCode, Params: map[string]any{"code": "print('still alive')"}})
	if !strings.Contains(envbridge.FeedbackText(res.Obs), "Code output: still alive") {
		t.Fatalf("env not serving after timeout:\n%s", envbridge.FeedbackText(res.Obs))
	}
}

func TestTimeBudgetTruncates(t *testing.T) {
	task := builtinTask(t, "flower-species")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env, err := New(task, Options{TimeBudget: time.Minute, WorkRoot: workRoot(t), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	env.Reset(ctx, 0)
	now = now.Add(20 * time.Second)
	res := step(t, env, envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "name"}})
	if res.Truncated || res.Obs[envbridge.KeyRemainingSeconds] != 40 {
		t.Fatalf("at 20s: truncated %v remaining %v", res.Truncated, res.Obs[envbridge.KeyRemainingSeconds])
	}
	now = now.Add(45 * time.Second)
	res = step(t, env, envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "name"}})
	if !res.Truncated || res.Obs[envbridge.KeyRemainingSeconds] != 0 {
		t.Fatalf("at 65s: truncated %v remaining %v", res.Truncated, res.Obs[envbridge.KeyRemainingSeconds])
	}
}

// workRoot is a temporary work root reachable by other users (the sandbox
// fallback runs agent code under another uid when smtrain runs as root).
func workRoot(t testing.TB) string {
	d := t.TempDir()
	os.Chmod(filepath.Dir(d), 0o755)
	os.Chmod(d, 0o755)
	return d
}

// TestResetClearsAgentOutput: the reset action empties an output folder
// the agent filled with nested folders and links (to a host file and to
// a host folder), removing the links without following them.
func TestResetClearsAgentOutput(t *testing.T) {
	needPython(t)
	task := builtinTask(t, "flower-species")
	env, err := New(task, Options{MaxSteps: 10, TimeBudget: time.Hour, RunDir: t.TempDir(), WorkRoot: workRoot(t),
		Sandbox: sandbox.Config{Timeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if _, _, err := env.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "keep.txt"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(env.workspace, "output")
	if err := os.MkdirAll(filepath.Join(out, "a", "b"), 0o777); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"x.csv", "a/y.csv", "a/b/z.csv"} {
		if err := os.WriteFile(filepath.Join(out, f), []byte("1"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(host, "keep.txt"), filepath.Join(out, "file-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(out, "a", "dir-link")); err != nil {
		t.Fatal(err)
	}
	step(t, env, envbridge.Action{Name: envbridge.ActReset})
	ents, err := os.ReadDir(out)
	if err != nil || len(ents) != 0 {
		t.Fatalf("output after reset: %v %v", ents, err)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o777 {
		t.Fatalf("output folder after reset: %v %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(host, "keep.txt")); err != nil || string(b) != "host" {
		t.Fatalf("host file touched through a link: %q %v", b, err)
	}
}
