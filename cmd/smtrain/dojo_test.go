package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCollectTaskSeed: -task_seed chooses the built-in tasks' data draw
// (the one rollout -seed S plays), recorded in collect_summary.json.
func TestCollectTaskSeed(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	out := t.TempDir()
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"collect", "-task", "builtin:flower-species", "-episodes", "1", "-task_seed", "7", "-out", out, "-quiet"}, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	var s struct {
		TaskSeed uint64 `json:"task_seed"`
	}
	b, err := os.ReadFile(filepath.Join(out, "collect_summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil || s.TaskSeed != 7 {
		t.Fatalf("task_seed %d (%v): %s", s.TaskSeed, err, b)
	}
	if code := run(context.Background(), []string{"collect", "-task_seed", "0", "-out", out}, &so, &se); code != 2 {
		t.Fatalf("-task_seed 0: exit %d, want 2", code)
	}
}

// TestDojoScriptEndToEnd runs scripts/dojo.sh (make dojo) at a tiny size:
// expert episodes on two training seeds and one held-out seed, a few fit
// steps, rollouts of every checkpoint, and checks the report files and
// the per-task table.
func TestDojoScriptEndToEnd(t *testing.T) {
	for _, p := range []string{"/usr/bin/python3", "/bin/bash"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("no %s", p)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "smtrain")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	res := filepath.Join(dir, "results")
	cmd := exec.Command("bash", "../../scripts/dojo.sh")
	cmd.Env = append(os.Environ(), "BIN="+bin, "WORK="+filepath.Join(dir, "work"), "RESULTS="+res,
		"N_LAYER=1", "N_EMBD=16", "N_HEAD=2", "N_POSITIONS=1024", "VOCAB=300", "STEPS=2", "CKPT_EVERY=1", "BATCH=2",
		"EPISODES=3", "TRAIN_SEEDS=2024 2025", "HELDOUT_SEEDS=101", "MAX_STEPS=2", "MAX_NEW=48")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dojo.sh: %v\n%s", err, out)
	}
	table, err := os.ReadFile(filepath.Join(res, "table.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| scripted expert | 3 |", "| policy, free decoding | 3 |", "| policy, -constrain action | 3 |",
		"| flower-species |", "| house-prices-lite |", "| loan-default |", "| 1 | 3 |", "| 2 | 3 |", "Wall time"} {
		if !strings.Contains(string(table), want) {
			t.Errorf("table.md lacks %q:\n%s", want, table)
		}
	}
	var sum struct {
		FinalStep int                        `json:"final_step"`
		Runs      map[string]json.RawMessage `json:"runs"`
	}
	b, err := os.ReadFile(filepath.Join(res, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil || sum.FinalStep != 2 || len(sum.Runs) != 3 {
		t.Fatalf("summary.json: final step %d, %d runs (%v)", sum.FinalStep, len(sum.Runs), err)
	}
	svg, err := os.ReadFile(filepath.Join(res, "curve.svg"))
	if err != nil || !strings.Contains(string(svg), "<polyline") {
		t.Fatalf("curve.svg without a curve (%v)", err)
	}
}
