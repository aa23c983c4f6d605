package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNotEpisodeFiles: MLE-Dojo files without the agent's messages (the
// environment history, a feedback list, an action list) passed as data get
// an error that names them and says what to pass (a valid
// env_history.json got "unexpected end of JSON (truncated file?)"); a
// one-line chat in a .json file still loads.
func TestNotEpisodeFiles(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"env_history.json": "{\n  \"competition\": \"titanic\",\n  \"actions\": [{\"step\": 1, \"action\": \"request_info\"}]\n}\n",
		"feedback.json":    "[\n {\"action\": \"request_info\", \"status\": \"SUCCESS\", \"feedback\": {}}\n]\n",
		"actions.json":     "[[\"request_info\", {\"info_type\": \"name\"}],\n [\"validate_code\", {\"code\": \"1\"}]]\n",
	}
	want := map[string]string{"env_history.json": "environment history", "feedback.json": "feedback list", "actions.json": "list of actions"}
	for name, text := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		if _, err := Load([]string{p}, false); err == nil || !strings.Contains(err.Error(), want[name]) || !strings.Contains(err.Error(), "agent_trajectory.json") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The real MLE-Dojo files, when present.
	for _, rel := range []string{"trajectories/env_history.json", "real-feedback/history.json", "real-feedback/feedback.json"} {
		p := filepath.Join("/work/shared/mledojo", rel)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if _, err := Load([]string{p}, false); err == nil || strings.Contains(err.Error(), "truncated") {
			t.Errorf("%s: %v", rel, err)
		}
	}
	one := filepath.Join(dir, "one.json")
	os.WriteFile(one, []byte(`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`+"\n"), 0o644)
	if res, err := Load([]string{one}, false); err != nil || len(res.Episodes) != 1 {
		t.Fatalf("one-line chat: %v", err)
	}
}

// TestRunFoldersAsData: a folder holding training runs (README's 'fit
// -data runs/') loads its episodes and skips the runs' metrics.jsonl
// (which failed with 'unknown field "step"'); metrics.jsonl given by name
// says what it is.
func TestRunFoldersAsData(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "fit1")
	os.MkdirAll(run, 0o755)
	os.WriteFile(filepath.Join(run, "metrics.jsonl"), []byte(`{"step":1,"split":"train","loss":2.5}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "eps.jsonl"), []byte(`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`+"\n"), 0o644)
	res, err := Load([]string{dir}, false)
	if err != nil || len(res.Episodes) != 1 {
		t.Fatalf("load a folder with a run: %v", err)
	}
	if _, err := Load([]string{filepath.Join(run, "metrics.jsonl")}, false); err == nil || !strings.Contains(err.Error(), "training log") {
		t.Fatalf("metrics.jsonl by name: %v", err)
	}
}
