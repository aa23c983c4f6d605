package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRolloutExitsNonZeroOnFailedEpisodes: when an episode fails the
// command still writes its summary, then exits 1 with a line saying how
// many episodes failed and why (it exited 0 before).
func TestRolloutExitsNonZeroOnFailedEpisodes(t *testing.T) {
	clearKeyEnv(t)
	// An env server that lists the task but cannot create environments.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/healthz":
			w.Write([]byte(`{"ok":true}`))
		case "/v1/tasks":
			w.Write([]byte(`{"tasks":["broken"]}`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"error":{"code":"env_error","message":"creating environment: disk full"}}`))
		}
	}))
	defer ts.Close()
	ckpt, _ := tinyCheckpoint(t)
	var so, se bytes.Buffer
	args := []string{"rollout", "-ckpt", ckpt, "-env", ts.URL + "#broken", "-episodes", "2", "-parallel", "1",
		"-max_steps", "1", "-max_new", "8", "-out", t.TempDir()}
	c := run(context.Background(), args, &so, &se)
	if c != 1 || !strings.Contains(se.String(), "2 of 2 episodes failed") || !strings.Contains(se.String(), "disk full") ||
		!strings.Contains(so.String(), "summary: 2 episodes (2 failed)") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", c, so.String(), se.String())
	}
}
