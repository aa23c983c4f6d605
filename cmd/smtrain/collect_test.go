package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smtrain/data"
)

func TestCollectCommand(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	out := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var so, se bytes.Buffer
	code := run(context.Background(), []string{"collect", "-task", "builtin:flower-species,builtin:house-prices-lite", "-episodes", "3", "-seed", "5", "-out", out, "-quiet"}, &so, &se)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	for _, d := range []string{"flower-species-0000", "house-prices-lite-0001", "flower-species-0002"} {
		for _, f := range []string{"agent_history/trajectory.json", "env_history/history.json"} {
			b, err := os.ReadFile(filepath.Join(out, d, f))
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Fatalf("%s/%s is not valid JSON", d, f)
			}
		}
	}
	if !strings.Contains(so.String(), "3 episodes (0 already present)") {
		t.Fatalf("summary: %s", so.String())
	}
	// The data loaders read the episodes back, rewards aligned.
	lr, err := data.Load([]string{out}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Episodes) != 3 {
		t.Fatalf("data.Load found %d episodes", len(lr.Episodes))
	}
	for _, ep := range lr.Episodes {
		if !(ep.Reward > 0 && ep.Reward <= 1) {
			t.Errorf("%s: reward %v", ep.Source, ep.Reward)
		}
	}
	// Re-running keeps the finished episodes.
	so.Reset()
	if code := run(context.Background(), []string{"collect", "-task", "builtin:flower-species,builtin:house-prices-lite", "-episodes", "3", "-seed", "5", "-out", out, "-quiet"}, &so, &se); code != 0 {
		t.Fatalf("rerun exit %d: %s", code, se.String())
	}
	if !strings.Contains(so.String(), "0 episodes (3 already present)") {
		t.Fatalf("rerun summary: %s", so.String())
	}
	// Usage errors exit 2.
	for _, args := range [][]string{{"collect"}, {"collect", "-out", out, "-task", "titanic"}, {"collect", "-out", out, "-task", "builtin:nope"}, {"collect", "-out", out, "-max_steps", "2"}} {
		se.Reset()
		if code := run(context.Background(), args, &so, &se); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, se.String())
		}
	}
}
