package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// countLines returns the number of lines of a file.
func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestFitRefusesExistingRun: fit without -resume into a folder holding a
// run changes nothing and names -resume and -overwrite; -overwrite deletes
// the old run's files (no stale checkpoint stays beside the new ones).
func TestFitRefusesExistingRun(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if code, _, errb := runCLI(tinyFit(run, "6", "-ckpt_every", "3")...); code != 0 {
		t.Fatalf("fit: exit %d: %s", code, errb)
	}
	metrics := filepath.Join(run, "metrics.jsonl")
	before := countLines(t, metrics)
	cfgBefore, _ := os.ReadFile(filepath.Join(run, "config.json"))

	code, _, errb := runCLI(tinyFit(run, "2", "-seed", "7")...)
	if code != 1 || !strings.Contains(errb, "-resume") || !strings.Contains(errb, "-overwrite") {
		t.Fatalf("second fit: exit %d stderr %q, want 1 naming -resume and -overwrite", code, errb)
	}
	if got := countLines(t, metrics); got != before {
		t.Fatalf("metrics.jsonl %d -> %d lines after a refused run", before, got)
	}
	if cfgAfter, _ := os.ReadFile(filepath.Join(run, "config.json")); string(cfgAfter) != string(cfgBefore) {
		t.Fatal("config.json changed by a refused run")
	}

	if code, _, errb := runCLI(tinyFit(run, "2", "-overwrite", "-ckpt_every", "0")...); code != 0 {
		t.Fatalf("fit -overwrite: exit %d: %s", code, errb)
	}
	ents, _ := os.ReadDir(run)
	var ckpts []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "ckpt-") {
			ckpts = append(ckpts, e.Name())
		}
	}
	if len(ckpts) != 1 || ckpts[0] != "ckpt-00000002" {
		t.Fatalf("after -overwrite the run folder holds %v, want only ckpt-00000002", ckpts)
	}
	if code, _, _ := runCLI(tinyFit(run, "2", "-overwrite", "-resume")...); code != 2 {
		t.Fatalf("-resume with -overwrite: exit %d, want 2", code)
	}
}
