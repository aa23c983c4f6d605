package local

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"smtrain/envbridge"
)

// realFeedbackDir holds what the real MLE-Dojo environment (667a8fd)
// answered to 11 actions on a made-up titanic dataset.
const realFeedbackDir = "../../../shared/mledojo/real-feedback"

// realTitanic lays out the golden data as a competition folder in a temp
// dir (public files, answers, and the titanic leaderboards of
// ../shared/mledojo/competitions).
func realTitanic(t *testing.T) *Task {
	t.Helper()
	if _, err := os.Stat(filepath.Join(realFeedbackDir, "actions.json")); err != nil {
		t.Skipf("SKIP: %s absent (the real MLE-Dojo golden data lives outside the repo): %v", realFeedbackDir, err)
	}
	dir := filepath.Join(t.TempDir(), "titanic")
	cp := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"train.csv", "test.csv", "description.txt", "sample_submission.csv"} {
		cp(filepath.Join(realFeedbackDir, "data", "public", f), filepath.Join(dir, "data", "public", f))
	}
	cp(filepath.Join(realFeedbackDir, "data", "private", "test_answer.csv"), filepath.Join(dir, "data", "private", "test_answer.csv"))
	for _, f := range []string{"public_leaderboard.csv", "private_leaderboard.csv"} {
		cp(filepath.Join(realFeedbackDir, "..", "competitions", "titanic", "info", f), filepath.Join(dir, "data", "private", f))
	}
	task, err := LoadTask(dir)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

var (
	execTimeRE = regexp.MustCompile(`\d+\.\d\ds`)
	codeFileRE = regexp.MustCompile(`File \\"[^"\\]*\\", line`)
	// Each competition's metric.py words its validation errors; titanic's
	// row-count message lacks the sentence most others (and the local
	// env) add.
	rowsSentence = " Please ensure both have the same number of rows."
)

// TestLocalMatchesRealFeedback replays the golden actions against the
// local environment and compares, step by step, the observation's
// action_status, feedback object and reward, and the history entries
// (action, step, result, feedback) with what the real environment wrote.
// Paths become {DATA}/{OUT}/{TMP} and execution times are not compared.
func TestLocalMatchesRealFeedback(t *testing.T) {
	task := realTitanic(t)
	var actions [][2]json.RawMessage
	readJSON(t, filepath.Join(realFeedbackDir, "actions.json"), &actions)
	var golden []struct {
		Action   string         `json:"action"`
		Status   any            `json:"status"`
		Feedback map[string]any `json:"feedback"`
		Reward   float64        `json:"reward"`
		Raised   any            `json:"raised"`
	}
	readJSON(t, filepath.Join(realFeedbackDir, "feedback.json"), &golden)
	var goldenHist map[string]any
	readJSON(t, filepath.Join(realFeedbackDir, "history.json"), &goldenHist)

	run := t.TempDir()
	env, err := New(task, Options{WorkRoot: workRoot(t), RunDir: run})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if _, _, err := env.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	dataPath, outPath := env.dataPath(), env.outputPath()
	norm := func(s string) string {
		s = strings.ReplaceAll(s, dataPath, "{DATA}")
		s = strings.ReplaceAll(s, outPath, "{OUT}")
		s = codeFileRE.ReplaceAllString(s, `File \"{TMP}\", line`)
		s = strings.ReplaceAll(s, rowsSentence, "")
		return execTimeRE.ReplaceAllString(s, "T")
	}
	normJSON := func(v any) string {
		b, _ := json.Marshal(v)
		var back any
		json.Unmarshal(b, &back)
		b, _ = json.Marshal(back) // sorted keys
		return norm(string(b))
	}
	if len(actions) != len(golden) {
		t.Fatalf("%d actions, %d golden answers", len(actions), len(golden))
	}
	for i, a := range actions {
		var name string
		var params map[string]any
		json.Unmarshal(a[0], &name)
		json.Unmarshal(a[1], &params)
		if c, ok := params["code"].(string); ok {
			c = strings.ReplaceAll(c, "{DATA}", dataPath)
			params["code"] = strings.ReplaceAll(c, "{OUT}", outPath)
		}
		res, err := env.Step(ctx, envbridge.Action{Name: name, Params: params})
		if err != nil {
			t.Fatalf("step %d (%s): %v", i+1, name, err)
		}
		g := golden[i]
		if got := res.Obs["action_status"]; got != g.Status {
			t.Errorf("step %d (%s): action_status %v, real %v", i+1, name, got, g.Status)
		}
		if got, want := normJSON(res.Obs["feedback"]), normJSON(g.Feedback); got != want {
			t.Errorf("step %d (%s): feedback differs:\n local %s\n real  %s", i+1, name, got, want)
		}
		if res.Reward != g.Reward {
			t.Errorf("step %d (%s): reward %v, real %v", i+1, name, res.Reward, g.Reward)
		}
		if recorded := !envbridge.Unrecorded(res.Info); recorded != (g.Raised == nil) {
			t.Errorf("step %d (%s): recorded %v, real raised %v", i+1, name, recorded, g.Raised)
		}
	}
	var hist map[string]any
	readJSON(t, filepath.Join(run, "env_history", "history.json"), &hist)
	ga, la := goldenHist["actions"].([]any), hist["actions"].([]any)
	if len(ga) != len(la) {
		t.Fatalf("history: %d actions, real %d", len(la), len(ga))
	}
	for i := range ga {
		g, l := ga[i].(map[string]any), la[i].(map[string]any)
		for _, k := range []string{"step", "action", "result", "feedback"} {
			if k == "result" && g["action"] == "get_history" {
				continue // holds the history itself (timestamps); compared below
			}
			if got, want := normJSON(l[k]), normJSON(g[k]); got != want {
				t.Errorf("history actions[%d].%s differs:\n local %s\n real  %s", i, k, got, want)
			}
		}
	}
	for _, k := range []string{"competition", "total_reward", "best_code", "best_raw_score", "best_position_score", "step_count"} {
		if got, want := normJSON(hist[k]), normJSON(goldenHist[k]); got != want {
			t.Errorf("history %s: local %s, real %s", k, got, want)
		}
	}
	var keys []string
	for k := range hist {
		keys = append(keys, k)
	}
	if len(keys) != len(goldenHist) {
		t.Errorf("history keys %v, real has %d", keys, len(goldenHist))
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
