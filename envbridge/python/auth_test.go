package python

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
	"smtrain/internal/apikey"
	"smtrain/internal/apikey/apikeytest"
)

const (
	adapterKeyA = "adapter-key-a-6b1f0c9e2d7a"
	adapterKeyB = "adapter-key-b-0e5d4c3b2a19"
)

func noKeyEnv(t *testing.T) {
	t.Setenv(apikey.EnvKey, "")
	t.Setenv(apikey.EnvKeysFile, "")
}

// rawAuth sends a request with an Authorization header ("" for none).
func rawAuth(t *testing.T, method, url, body, auth string) (int, map[string]any, http.Header) {
	t.Helper()
	status, b, h := apikeytest.Do(t, method, url, body, auth)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON (%v): %q", method, url, err, b)
	}
	return status, m, h
}

// TestAdapterAuth: with keys, every route but the health check is a 401
// in the protocol's error JSON without a key or with a wrong one, the
// right key works (Go client included), another key cannot see the
// environment, each of two keys holds at most half of --max-envs, and no
// key reaches the log.
func TestAdapterAuth(t *testing.T) {
	noKeyEnv(t)
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("# adapter keys\n"+adapterKeyA+"\n\n"+adapterKeyB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAdapter(t, "--api-key-file", keys, "--max-envs", "2")
	if !strings.Contains(a.stderrText(), "authentication: 2 API key(s)") {
		t.Fatalf("start-up log: %s", a.stderrText())
	}
	if st, m, _ := rawAuth(t, "GET", a.url+"/v1/healthz", "", ""); st != 200 || m["ok"] != true {
		t.Fatalf("healthz without a key: %d %v", st, m)
	}
	st, m, _ := rawAuth(t, "POST", a.url+"/v1/envs", `{"task":"toy-comp"}`, "Bearer "+adapterKeyA)
	id, _ := m["env_id"].(string)
	if st != 200 || id == "" {
		t.Fatalf("create with key A: %d %v", st, m)
	}
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/tasks", ""},
		{"POST", "/v1/envs", `{"task":"toy-comp"}`},
		{"POST", "/v1/envs/" + id + "/step", `{"action":"request_info"}`},
		{"GET", "/v1/envs/" + id + "/history", ""},
		{"DELETE", "/v1/envs/" + id, ""},
		{"GET", "/v1/nope", ""},
	}
	for _, rt := range routes {
		for _, auth := range []string{"", "Bearer " + adapterKeyA + "x", "Basic " + adapterKeyA, adapterKeyA} {
			st, m, h := rawAuth(t, rt.method, a.url+rt.path, rt.body, auth)
			wantErr(t, st, m, 401, "unauthorized")
			if h.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s %s: 401 without WWW-Authenticate", rt.method, rt.path)
			}
		}
	}
	for _, rt := range routes[2:5] {
		st, m, _ := rawAuth(t, rt.method, a.url+rt.path, rt.body, "Bearer "+adapterKeyB)
		wantErr(t, st, m, 404, "unknown_env")
	}
	// Key A's share is 1 of 2: its second environment is refused, key B's
	// first is not.
	st, m, _ = rawAuth(t, "POST", a.url+"/v1/envs", `{"task":"toy-comp"}`, "Bearer "+adapterKeyA)
	wantErr(t, st, m, 429, "too_many_envs")
	for _, rt := range routes[2:5] {
		if st, m, _ := rawAuth(t, rt.method, a.url+rt.path, rt.body, "Bearer "+adapterKeyA); st != 200 {
			t.Fatalf("%s %s with key A: %d %v", rt.method, rt.path, st, m)
		}
	}
	// The Go client with key B.
	ck, err := apikey.DefaultKey(adapterKeyB)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := httpenv.Dial(ctx, a.url, "toy-comp", envbridge.Options{MaxSteps: 3}, httpenv.ClientOptions{Keys: ck})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Step(ctx, envbridge.Action{Name: "request_info"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	log := a.stderrText()
	if !strings.Contains(log, "401 POST /v1/envs") || !strings.Contains(log, "(key 2)") {
		t.Fatalf("log should record refusals and key numbers:\n%s", log)
	}
	if strings.Contains(log, adapterKeyA) || strings.Contains(log, adapterKeyB) || strings.Contains(log, "adapter-key") {
		t.Fatalf("log shows a key:\n%s", log)
	}
}

// TestAdapterKeyFromEnv: $SMTRAIN_ENV_API_KEY sets the adapter's keys,
// and the Go client sends the same variable's key.
func TestAdapterKeyFromEnv(t *testing.T) {
	noKeyEnv(t)
	t.Setenv(apikey.EnvKey, adapterKeyA)
	a := startAdapter(t)
	st, m, _ := rawAuth(t, "GET", a.url+"/v1/tasks", "", "")
	wantErr(t, st, m, 401, "unauthorized")
	c, err := httpenv.NewClient(a.url, "toy-comp", envbridge.Options{}, httpenv.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tasks(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestAdapterRefusesNonLoopbackWithoutKey: --host 0.0.0.0 without a key
// exits 2 with a message naming --api-key-file; with --insecure-no-auth
// it serves and warns; a bad key file is refused naming its line, never
// showing the key.
func TestAdapterRefusesNonLoopbackWithoutKey(t *testing.T) {
	noKeyEnv(t)
	py := python3(t)
	wd, _ := os.Getwd()
	dir := t.TempDir()
	prepared(t, filepath.Join(dir, "prepared"), "toy-comp")
	runAdapter := func(extra ...string) (int, string) {
		args := append([]string{"-u", filepath.Join(wd, "mledojo_adapter.py"), "--data-dir", filepath.Join(dir, "prepared"),
			"--output-dir", filepath.Join(dir, "out"), "--port", "0"}, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, py, args...)
		cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(wd, "testdata", "fake_mledojo"), "PYTHONDONTWRITEBYTECODE=1")
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := runAdapter("--host", "0.0.0.0")
	if code != 2 || !strings.Contains(out, "refusing to listen") || !strings.Contains(out, "--api-key-file FILE") ||
		!strings.Contains(out, "$SMTRAIN_ENV_API_KEY") || strings.Contains(out, "listening on") {
		t.Fatalf("non-loopback without a key: exit %d\n%s", code, out)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte(adapterKeyA+"\nsecret-shorty\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = runAdapter("--api-key-file", short)
	if code != 2 || !strings.Contains(out, short+":2:") || strings.Contains(out, "secret-shorty") || strings.Contains(out, adapterKeyA) {
		t.Fatalf("bad key file: exit %d\n%s", code, out)
	}
	a := startAdapter(t, "--host", "0.0.0.0", "--insecure-no-auth")
	if !strings.Contains(a.stderrText(), "WITHOUT AUTHENTICATION") {
		t.Fatalf("no warning:\n%s", a.stderrText())
	}
}
