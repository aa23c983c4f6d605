package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"smtrain/internal/apikey"
)

const (
	authKeyA = "env-key-a-3f9c2b7e1d0a4c5b"
	authKeyB = "env-key-b-8e7d6c5b4a392817"
	authKeyS = "sk-serve-5a4b3c2d1e0f9a8b"
)

// keyFile writes a key file (mode 0600) and returns its path.
func keyFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clearKeyEnv keeps the caller's key variables out of a test.
func clearKeyEnv(t *testing.T) {
	for _, v := range []string{apikey.EnvKey, apikey.EnvKeysFile, apikey.ServeKey} {
		t.Setenv(v, "")
	}
}

// startEnvServe runs `smtrain env serve -builtin` with extra flags and
// returns its URL and output, stopping it at cleanup.
func startEnvServe(t *testing.T, extra ...string) (string, *lockedBuf) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &lockedBuf{}, &lockedBuf{}
	code := make(chan int, 1)
	args := append([]string{"env", "serve", "-builtin", "-addr", "127.0.0.1:0", "-isolation", "none"}, extra...)
	go func() { code <- run(ctx, args, stdout, stderr) }()
	re := regexp.MustCompile(`on (http://[0-9.:]+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			t.Cleanup(func() {
				cancel()
				select {
				case <-code:
				case <-time.After(20 * time.Second):
					t.Error("env serve did not stop")
				}
			})
			return m[1], stderr
		}
		select {
		case c := <-code:
			cancel()
			t.Fatalf("env serve exited with %d: %s%s", c, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("env serve printed no address: %s%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNonLoopbackBindNeedsKey: both servers refuse a non-loopback address
// without a key, with a message saying how to set one; -insecure_no_auth
// allows it with a warning; a key allows it.
func TestNonLoopbackBindNeedsKey(t *testing.T) {
	clearKeyEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	ckpt, _ := tinyCheckpoint(t)
	for _, cmd := range [][]string{
		{"env", "serve", "-builtin", "-isolation", "none", "-addr", "0.0.0.0:0"},
		{"serve", "-ckpt", ckpt, "-addr", "0.0.0.0:0"},
		{"serve", "-ckpt", ckpt, "-addr", ":0"},
	} {
		var so, se bytes.Buffer
		c := run(context.Background(), cmd, &so, &se)
		msg := se.String()
		if c == 0 || !strings.Contains(msg, "refusing to listen") || !strings.Contains(msg, "-api_key_file FILE") ||
			!strings.Contains(msg, "$SMTRAIN_") || !strings.Contains(msg, "-insecure_no_auth") || strings.Contains(so.String(), "listening on") {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", cmd, c, so.String(), msg)
		}
	}
	// Allowed with -insecure_no_auth (loudly) or with a key; the started
	// server is stopped at once.
	for _, extra := range [][]string{{"-insecure_no_auth"}, {"-api_key_file", keyFile(t, "k", authKeyA+"\n")}} {
		ctx, cancel := context.WithCancel(context.Background())
		so, se := &lockedBuf{}, &lockedBuf{}
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, append([]string{"serve", "-ckpt", ckpt, "-addr", "0.0.0.0:0"}, extra...), so, se)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(so.String(), "listening on") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if c := <-done; c != 0 {
			t.Fatalf("%v: exit %d %s", extra, c, se.String())
		}
		if extra[0] == "-insecure_no_auth" && !strings.Contains(se.String(), "WITHOUT AUTHENTICATION") {
			t.Fatalf("no warning: %s", se.String())
		}
		if strings.Contains(so.String()+se.String(), authKeyA) {
			t.Fatalf("output shows the key: %s%s", so.String(), se.String())
		}
	}
}

// TestRolloutTwoEnvServersWithKeys: a rollout spread over two env servers
// with different keys, each key given per endpoint in -env_key_file; with
// a wrong key the rollout fails at once with a 401 that says how to set
// the key; no key appears in any output.
func TestRolloutTwoEnvServersWithKeys(t *testing.T) {
	clearKeyEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	urlA, logA := startEnvServe(t, "-api_key_file", keyFile(t, "a", "# server A\n"+authKeyA+"\n"))
	urlB, logB := startEnvServe(t, "-api_key_file", keyFile(t, "b", authKeyB+"\n"))
	ckpt, _ := tinyCheckpoint(t)
	clientKeys := keyFile(t, "client", urlA+" "+authKeyA+"\n"+urlB+"/ "+authKeyB+"\n")
	out := t.TempDir()
	var so, se bytes.Buffer
	args := []string{"rollout", "-ckpt", ckpt, "-env", urlA + "," + urlB + "#house-prices-lite", "-episodes", "2", "-parallel", "1",
		"-max_steps", "1", "-max_new", "8", "-env_key_file", clientKeys, "-out", out}
	if c := run(context.Background(), args, &so, &se); c != 0 {
		t.Fatalf("rollout: exit %d\n%s%s", c, so.String(), se.String())
	}
	var sum struct {
		Episodes, Failed int
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil || json.Unmarshal(b, &sum) != nil || sum.Episodes != 2 || sum.Failed != 0 {
		t.Fatalf("summary %s %v\n%s", b, err, so.String())
	}
	for name, l := range map[string]*lockedBuf{"A": logA, "B": logB} {
		if !strings.Contains(l.String(), "created (key 1)") {
			t.Fatalf("server %s ran no episode:\n%s", name, l.String())
		}
	}
	// B's key for both: the rollout stops before its first episode with
	// a 401 that names server A and says how to set the key.
	so.Reset()
	se.Reset()
	args[len(args)-3] = keyFile(t, "wrong", authKeyB+"\n")
	args[len(args)-1] = t.TempDir()
	c := run(context.Background(), args, &so, &se)
	if all := so.String() + se.String(); c != 1 || strings.Contains(so.String(), "episode ") || !strings.Contains(se.String(), urlA) ||
		strings.Contains(se.String(), urlB) || !strings.Contains(all, "unauthorized") || !strings.Contains(all, "-env_key_file") {
		t.Fatalf("wrong key for A: exit %d\n%s", c, all)
	}
	all := so.String() + se.String() + logA.String() + logB.String()
	for _, k := range []string{authKeyA, authKeyB} {
		if strings.Contains(all, k) {
			t.Fatalf("a key appears in the output:\n%s", all)
		}
	}
	if !strings.Contains(logA.String(), "401 GET /v1/tasks") {
		t.Fatalf("server A did not log the refusal:\n%s", logA.String())
	}
}

// openaiKeyJS calls `smtrain serve` with the openai client's apiKey, then
// with a wrong one.
const openaiKeyJS = `
const OpenAI = require('openai');
(async () => {
  const out = {};
  const good = new OpenAI({ baseURL: process.argv[2], apiKey: process.argv[3], maxRetries: 0, timeout: 60000 });
  out.models = (await good.models.list()).data.map(m => m.id);
  const c = await good.chat.completions.create({ model: (await good.models.list()).data[0].id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, seed: 1 });
  out.object = c.object;
  const bad = new OpenAI({ baseURL: process.argv[2], apiKey: 'sk-wrong-0000000000000000', maxRetries: 0, timeout: 60000 });
  try {
    await bad.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    out.err = null;
  } catch (e) {
    out.err = { status: e.status, name: e.constructor.name, code: e.code, type: e.type, message: e.message };
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e && e.stack || e); process.exit(1); });
`

// TestServeOpenAIClientAPIKey: the official openai npm client's apiKey
// authenticates against `smtrain serve -api_key_file`, and a wrong key is
// its AuthenticationError (401, code invalid_api_key).
func TestServeOpenAIClientAPIKey(t *testing.T) {
	clearKeyEnv(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	nodePath := openaiNodePath()
	if nodePath == "" {
		t.Skip("npm package openai not installed (npm install -g openai@6, or set SMTRAIN_NODE_PATH)")
	}
	base, _, stdout, _ := startServe(t, "-api_key_file", keyFile(t, "keys", "# serve keys\n"+authKeyS+"\n"))
	script := filepath.Join(t.TempDir(), "client.cjs")
	if err := os.WriteFile(script, []byte(openaiKeyJS), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, base, authKeyS)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, stderr.String())
	}
	var res struct {
		Models []string `json:"models"`
		Object string   `json:"object"`
		Err    *struct {
			Status int    `json:"status"`
			Name   string `json:"name"`
			Code   string `json:"code"`
			Type   string `json:"type"`
		} `json:"err"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("client output %s: %v", b, err)
	}
	if len(res.Models) != 1 || res.Object != "chat.completion" {
		t.Fatalf("with the key: %s", b)
	}
	if e := res.Err; e == nil || e.Status != 401 || e.Name != "AuthenticationError" || e.Code != "invalid_api_key" || e.Type != "invalid_request_error" {
		t.Fatalf("wrong key: %s", b)
	}
	if !strings.Contains(stdout.String(), "1 API key(s)") {
		t.Fatalf("banner: %s", stdout.String())
	}
}
