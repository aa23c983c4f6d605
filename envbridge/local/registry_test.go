package local

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
	"smtrain/envbridge/tasks"
)

// TestServedOverHTTP serves the built-in registry with the protocol server
// and plays a few steps through the Go client.
func TestServedOverHTTP(t *testing.T) {
	needPython(t)
	reg, err := NewBuiltinRegistry(t.TempDir(), 5)
	if err != nil {
		t.Fatal(err)
	}
	reg.WorkRoot = workRoot(t)
	reg.RunRoot = t.TempDir()
	if got := strings.Join(reg.Tasks(), ","); got != "flower-species,house-prices-lite,loan-default" {
		t.Fatalf("tasks %s", got)
	}
	srv := httpenv.NewServer(reg, httpenv.ServerOptions{})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	defer srv.Close()
	ctx := context.Background()
	c, err := httpenv.Dial(ctx, ts.URL, "flower-species", envbridge.Options{Seed: 1, MaxSteps: 5, TimeBudget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	obs, _, err := c.Reset(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(envbridge.FormatInitialPrompt(obs), "You have a total of 5 actions available.") {
		t.Fatalf("reset obs over HTTP: %v", obs)
	}
	res, err := c.Step(ctx, envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "name"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(envbridge.FeedbackText(res.Obs), "{'name': 'flower-species'}") {
		t.Fatalf("feedback over HTTP: %q", envbridge.FeedbackText(res.Obs))
	}
	h, err := c.History()
	if err != nil {
		t.Fatal(err)
	}
	var hist map[string]any
	if err := json.Unmarshal(h, &hist); err != nil || hist["competition"] != "flower-species" || len(hist["actions"].([]any)) != 1 {
		t.Fatalf("history over HTTP: %v %s", err, h)
	}
	// The run folder is kept under RunRoot.
	m, _ := filepath.Glob(filepath.Join(reg.RunRoot, "flower-species-*", "env_history", "history.json"))
	if len(m) != 1 {
		t.Fatalf("run folders: %v", m)
	}
	if _, err := reg.New(ctx, "nope", envbridge.Options{}); err == nil {
		t.Fatal("unknown task accepted")
	}
}

func TestDirRegistry(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"loan-default", "house-prices-lite"} {
		if _, err := tasks.Materialize(root, n, 1); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "not-a-task"), 0o755)
	reg, err := NewDirRegistry(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(reg.Tasks(), ","); got != "house-prices-lite,loan-default" {
		t.Fatalf("tasks %s", got)
	}
	single, err := NewDirRegistry(filepath.Join(root, "loan-default"))
	if err != nil || len(single.Tasks()) != 1 {
		t.Fatalf("single: %v %v", single, err)
	}
	if _, err := NewDirRegistry(t.TempDir()); err == nil {
		t.Fatal("empty root accepted")
	}
}
