package httpenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/internal/apikey"
	"smtrain/internal/apikey/apikeytest"
)

const (
	testKeyA = "key-a-0123456789abcdef"
	testKeyB = "key-b-fedcba9876543210"
)

// logSink collects a server's log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func mustKeys(t *testing.T, keys ...string) *apikey.Keys {
	t.Helper()
	k, err := apikey.Parse("test", keys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// doKey is do with an Authorization header ("" for none).
func doKey(t *testing.T, method, url, body, auth string) (int, map[string]any, string) {
	t.Helper()
	status, raw, _ := apikeytest.Do(t, method, url, body, auth)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v: %s", method, url, err, raw)
	}
	return status, m, string(raw)
}

// TestAuthEveryRoute: with keys, every route but the health check is a
// 401 in the protocol's error JSON without a key or with a wrong one; the
// right key works; another key cannot touch an environment it did not
// create; no key reaches the log or an error body.
func TestAuthEveryRoute(t *testing.T) {
	logs := &logSink{}
	_, ts, _ := newTestServer(t, ServerOptions{Keys: mustKeys(t, testKeyA, testKeyB), Logf: logs.logf})
	st, m, raw := doKey(t, "GET", ts.URL+"/v1/healthz", "", "")
	if st != 200 || m["ok"] != true {
		t.Fatalf("healthz without a key: %d %s", st, raw)
	}
	st, m, raw = doKey(t, "POST", ts.URL+"/v1/envs", `{"task":"alpha"}`, "Bearer "+testKeyA)
	if st != 200 {
		t.Fatalf("create with key A: %d %s", st, raw)
	}
	id, _ := m["env_id"].(string)
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/tasks", ""},
		{"POST", "/v1/envs", `{"task":"alpha"}`},
		{"POST", "/v1/envs/" + id + "/step", `{"action":"echo"}`},
		{"GET", "/v1/envs/" + id + "/history", ""},
		{"DELETE", "/v1/envs/" + id, ""},
		{"GET", "/v1/nope", ""},
		{"POST", "/v1/healthz", ""},
	}
	wrong := []string{"", "Bearer", "Bearer " + testKeyA + "x", "Bearer " + testKeyA[:len(testKeyA)-1], "Basic " + testKeyA, testKeyA}
	for _, rt := range routes {
		for _, auth := range wrong {
			st, m, raw := doKey(t, rt.method, ts.URL+rt.path, rt.body, auth)
			wantError(t, st, m, raw, 401, CodeUnauthorized)
			if strings.Contains(raw, testKeyA[:12]) {
				t.Fatalf("%s %s: 401 body shows the key: %s", rt.method, rt.path, raw)
			}
		}
	}
	// Key B does not see key A's environment.
	for _, rt := range routes[2:5] {
		st, m, raw := doKey(t, rt.method, ts.URL+rt.path, rt.body, "Bearer "+testKeyB)
		wantError(t, st, m, raw, 404, CodeUnknownEnv)
	}
	// The right key works on every route.
	for _, rt := range routes[:5] {
		st, _, raw := doKey(t, rt.method, ts.URL+rt.path, rt.body, "Bearer "+testKeyA)
		if st != 200 {
			t.Fatalf("%s %s with key A: %d %s", rt.method, rt.path, st, raw)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "401 POST /v1/envs") || !strings.Contains(out, "(key 1)") {
		t.Fatalf("log should record refusals and the key's number:\n%s", out)
	}
	for _, k := range []string{testKeyA, testKeyB} {
		if strings.Contains(out, k[:12]) {
			t.Fatalf("log shows a key:\n%s", out)
		}
	}
}

// TestAuthPerKeyLimit: with several keys one key cannot take every slot.
func TestAuthPerKeyLimit(t *testing.T) {
	_, ts, _ := newTestServer(t, ServerOptions{MaxEnvs: 4, Keys: mustKeys(t, testKeyA, testKeyB)})
	create := func(key string) (int, map[string]any, string) {
		return doKey(t, "POST", ts.URL+"/v1/envs", `{"task":"alpha"}`, "Bearer "+key)
	}
	var ids []string
	for i := 0; i < 2; i++ {
		st, m, raw := create(testKeyA)
		if st != 200 {
			t.Fatal(raw)
		}
		ids = append(ids, m["env_id"].(string))
	}
	st, m, raw := create(testKeyA)
	wantError(t, st, m, raw, 429, CodeTooManyEnvs)
	if !strings.Contains(raw, "its limit is 2") {
		t.Fatalf("message should give the key's limit: %s", raw)
	}
	for i := 0; i < 2; i++ {
		if st, _, raw := create(testKeyB); st != 200 {
			t.Fatalf("key B's share: %s", raw)
		}
	}
	// Deleting frees the key's slot.
	if st, _, raw := doKey(t, "DELETE", ts.URL+"/v1/envs/"+ids[0], "", "Bearer "+testKeyA); st != 200 {
		t.Fatal(raw)
	}
	if st, _, raw := create(testKeyA); st != 200 {
		t.Fatalf("after a delete: %s", raw)
	}

	// An explicit per-key limit.
	_, ts1, _ := newTestServer(t, ServerOptions{MaxEnvs: 4, MaxEnvsPerKey: 1, Keys: mustKeys(t, testKeyA)})
	if st, _, raw := doKey(t, "POST", ts1.URL+"/v1/envs", `{"task":"alpha"}`, "Bearer "+testKeyA); st != 200 {
		t.Fatal(raw)
	}
	st, m, raw = doKey(t, "POST", ts1.URL+"/v1/envs", `{"task":"alpha"}`, "Bearer "+testKeyA)
	wantError(t, st, m, raw, 429, CodeTooManyEnvs)
}

func writeKeysFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "env-keys")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuthPoolKeysPerEndpoint: a pool over two servers with different
// keys sends each its own; a wrong key is a 401 whose error says how to
// set the key and shows no key.
func TestAuthPoolKeysPerEndpoint(t *testing.T) {
	t.Setenv(apikey.EnvKeysFile, "")
	t.Setenv(apikey.EnvKey, "")
	_, tsA, _ := newTestServer(t, ServerOptions{Keys: mustKeys(t, testKeyA)})
	_, tsB, _ := newTestServer(t, ServerOptions{Keys: mustKeys(t, testKeyB)})
	keys, err := apikey.LoadClientFile(writeKeysFile(t, tsA.URL+" "+testKeyA+"\n"+tsB.URL+"/ "+testKeyB+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(tsA.URL+","+tsB.URL, ClientOptions{Keys: keys, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	used := map[string]int{}
	for i := 0; i < 4; i++ {
		e := p.Env("alpha", envbridge.Options{})
		if _, _, err := e.Reset(ctx, int64(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Step(ctx, envbridge.Action{Name: "echo"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.History(); err != nil {
			t.Fatal(err)
		}
		used[e.Server()]++
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if used[tsA.URL] != 2 || used[tsB.URL] != 2 {
		t.Fatalf("episodes not spread: %v", used)
	}

	// Swapped keys: 401, with a hint and no key in the error.
	swapped, _ := apikey.LoadClientFile(writeKeysFile(t, tsA.URL+" "+testKeyB+"\n"+tsB.URL+" "+testKeyA+"\n"))
	c, err := NewClient(tsA.URL, "alpha", envbridge.Options{}, ClientOptions{Keys: swapped, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Reset(ctx, 1)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != CodeUnauthorized || !strings.Contains(err.Error(), "-env_key_file") {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(err.Error(), testKeyA[:12]) || strings.Contains(err.Error(), testKeyB[:12]) {
		t.Fatalf("error shows a key: %v", err)
	}
	// No key at all: the hint says none was sent.
	c, _ = NewClient(tsA.URL, "alpha", envbridge.Options{}, ClientOptions{Retries: -1})
	if _, err := c.Tasks(ctx); err == nil || !strings.Contains(err.Error(), "no key was sent") {
		t.Fatalf("no key: %v", err)
	}
	// Healthz needs no key (Dial works before keys are right).
	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAuthClientKeyFromEnv: a client given no keys sends the key of
// $SMTRAIN_ENV_API_KEY (how fit and compare reach keyed servers).
func TestAuthClientKeyFromEnv(t *testing.T) {
	t.Setenv(apikey.EnvKeysFile, "")
	t.Setenv(apikey.EnvKey, testKeyB)
	_, ts, _ := newTestServer(t, ServerOptions{Keys: mustKeys(t, testKeyB)})
	c, err := NewClient(ts.URL, "alpha", envbridge.Options{}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tasks(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Setenv(apikey.EnvKey, "short")
	if _, err := NewPool(ts.URL, ClientOptions{}); err == nil || strings.Contains(err.Error(), "short") {
		t.Fatalf("bad env key: %v", err)
	}
}

// slowRegistry's New waits for release, so creations stay in flight.
type slowRegistry struct {
	fakeRegistry
	release chan struct{}
}

func (r *slowRegistry) New(ctx context.Context, task string, opts envbridge.Options) (envbridge.Env, error) {
	<-r.release
	return r.fakeRegistry.New(ctx, task, opts)
}

// TestAuthPerKeyLimitCountsCreationsInFlight: concurrent creations with
// one key cannot exceed its share while they are still being created.
func TestAuthPerKeyLimitCountsCreationsInFlight(t *testing.T) {
	reg := &slowRegistry{release: make(chan struct{})}
	srv := NewServer(reg, ServerOptions{MaxEnvs: 8, MaxEnvsPerKey: 2, Keys: mustKeys(t, testKeyA, testKeyB)})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	const n = 6
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() { // no t.Fatal off the test goroutine: a transport error is status -1
			req, _ := http.NewRequest("POST", ts.URL+"/v1/envs", strings.NewReader(`{"task":"alpha"}`))
			req.Header.Set("Authorization", "Bearer "+testKeyA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	// The refusals come back while two creations wait in New.
	got := map[int]int{}
	for i := 0; i < n-2; i++ {
		select {
		case c := <-codes:
			got[c]++
		case <-time.After(10 * time.Second):
			close(reg.release)
			t.Fatalf("only %v answered while creations were in flight: the limit let more through", got)
		}
	}
	close(reg.release)
	for i := 0; i < 2; i++ {
		got[<-codes]++
	}
	if got[200] != 2 || got[429] != n-2 {
		t.Fatalf("statuses %v, want 2 x 200 and %d x 429", got, n-2)
	}
	if srv.NumEnvs() != 2 {
		t.Fatalf("%d environments live, want 2", srv.NumEnvs())
	}
}

// TestAuthPoolCheckKeys: CheckKeys reports each server whose key is
// missing or wrong (naming it, showing no key) and ignores a dead server.
func TestAuthPoolCheckKeys(t *testing.T) {
	t.Setenv(apikey.EnvKeysFile, "")
	t.Setenv(apikey.EnvKey, "")
	_, tsA, _ := newTestServer(t, ServerOptions{Keys: mustKeys(t, testKeyA)})
	_, tsB, _ := newTestServer(t, ServerOptions{Keys: mustKeys(t, testKeyB)})
	_, tsDead, _ := newTestServer(t, ServerOptions{})
	tsDead.Close()
	ctx := context.Background()
	good, _ := apikey.LoadClientFile(writeKeysFile(t, tsA.URL+" "+testKeyA+"\n"+tsB.URL+" "+testKeyB+"\n"))
	p, err := NewPool(tsA.URL+","+tsB.URL+","+tsDead.URL, ClientOptions{Keys: good})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.CheckKeys(ctx); err != nil {
		t.Fatalf("right keys: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("CheckKeys waited %v on the dead server", d)
	}
	onlyA, _ := apikey.LoadClientFile(writeKeysFile(t, testKeyA+"\n"))
	p, _ = NewPool(tsA.URL+","+tsB.URL, ClientOptions{Keys: onlyA})
	err = p.CheckKeys(ctx)
	if err == nil || !strings.Contains(err.Error(), tsB.URL) || strings.Contains(err.Error(), tsA.URL) || strings.Contains(err.Error(), testKeyA[:12]) {
		t.Fatalf("A's key everywhere: %v", err)
	}
}

// TestAuthBehindTLSProxy: the documented TLS set-up, a reverse proxy
// terminating TLS in front of a keyed server, with the client given the
// https:// URL and its key for that URL.
func TestAuthBehindTLSProxy(t *testing.T) {
	_, backend, _ := newTestServer(t, ServerOptions{Keys: mustKeys(t, testKeyA)})
	u, _ := url.Parse(backend.URL)
	proxy := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(u))
	t.Cleanup(proxy.Close)
	if !strings.HasPrefix(proxy.URL, "https://") {
		t.Fatalf("proxy URL %s", proxy.URL)
	}
	keys, err := apikey.LoadClientFile(writeKeysFile(t, proxy.URL+" "+testKeyA+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := Dial(ctx, proxy.URL, "alpha", envbridge.Options{}, ClientOptions{HTTPClient: proxy.Client(), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Step(ctx, envbridge.Action{Name: "echo"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the key, the 401 comes back through the proxy.
	c, _ = NewClient(proxy.URL, "alpha", envbridge.Options{}, ClientOptions{HTTPClient: proxy.Client(), Keys: &apikey.ClientKeys{}, Retries: -1})
	var ae *APIError
	if _, err := c.Tasks(ctx); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("no key through the proxy: %v", err)
	}
}
