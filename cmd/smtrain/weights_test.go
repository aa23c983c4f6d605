package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWeightsFlag: sample, serve and rollout take -weights f32|f16, say
// which they use, and refuse another value as a usage error (exit 2).
func TestWeightsFlag(t *testing.T) {
	dir, _ := tinyCheckpoint(t)
	for _, w := range []string{"f32", "f16"} {
		code, out, errs := runSampleCmd(t, "-ckpt", dir, "-prompt", "2+2=", "-greedy", "-max_new", "6", "-weights", w)
		if code != 0 || !strings.HasPrefix(out, "=== sample 0") || !strings.Contains(errs, w+" weights") {
			t.Errorf("sample -weights %s: exit %d\n%s%s", w, code, out, errs)
		}
	}
	_, _, stdout, stop := startServe(t, "-weights", "f16")
	if code := stop(); code != 0 || !strings.Contains(stdout.String(), "f16 weights") {
		t.Errorf("serve -weights f16: exit %d, stdout %q", code, stdout.String())
	}
	// rollout against an env server that cannot create environments: the
	// policy (and its f16 weights) is loaded, the episodes fail (exit 1)
	clearKeyEnv(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		body, ok := map[string]string{"/v1/healthz": `{"ok":true}`, "/v1/tasks": `{"tasks":["broken"]}`}[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			body = `{"error":{"code":"env_error","message":"no environments here"}}`
		}
		w.Write([]byte(body))
	}))
	defer ts.Close()
	rollout := []string{"rollout", "-ckpt", dir, "-env", ts.URL + "#broken", "-episodes", "1", "-max_steps", "1", "-max_new", "8", "-out", t.TempDir()}
	var so, se bytes.Buffer
	if c := run(context.Background(), append(rollout, "-weights", "f16"), &so, &se); c != 1 || !strings.Contains(se.String(), "f16 weights") {
		t.Errorf("rollout -weights f16: exit %d, stderr %q", c, se.String())
	}
	for _, args := range [][]string{
		{"sample", "-ckpt", dir, "-weights", "bf16"},
		{"serve", "-ckpt", dir, "-weights", "f8"},
		append(rollout, "-weights", "int8"),
	} {
		var so, se bytes.Buffer
		if c := run(context.Background(), args, &so, &se); c != 2 || !strings.Contains(se.String(), "must be f32 or f16") {
			t.Errorf("%s -weights %s: exit %d, want 2 (%q)", args[0], args[len(args)-1], c, se.String())
		}
	}
}
