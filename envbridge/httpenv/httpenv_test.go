package httpenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smtrain/envbridge"
)

// fakeEnv is a tiny deterministic environment for the tests.
//
//	action "echo"   -> observation echoes params, reward n*0.5
//	action "finish" -> terminated, reward 1
//	action "slow"   -> sleeps 50 ms (detects concurrent steps)
//	action "fail"   -> Step returns an error
//	action "panic"  -> Step panics
type fakeEnv struct {
	task    string
	opts    envbridge.Options
	seed    int64
	n       int
	actions []string
	closed  atomic.Bool
	inStep  atomic.Int32
	overlap *atomic.Int32 // counts concurrent Step entries
}

func (e *fakeEnv) Reset(ctx context.Context, seed int64) (envbridge.Observation, envbridge.Info, error) {
	e.seed, e.n, e.actions = seed, 0, nil
	return envbridge.Observation{
			"action_status":  "SUCCESS",
			"task":           e.task,
			"seed":           seed,
			"best_raw_score": math.NaN(),
		}, envbridge.Info{
			"max_steps": e.opts.MaxSteps,
		}, nil
}

func (e *fakeEnv) Step(ctx context.Context, a envbridge.Action) (envbridge.StepResult, error) {
	if e.inStep.Add(1) > 1 && e.overlap != nil {
		e.overlap.Add(1)
	}
	defer e.inStep.Add(-1)
	e.n++
	e.actions = append(e.actions, a.Name)
	switch a.Name {
	case "fail":
		return envbridge.StepResult{}, errors.New("agent broke the env\nsecond line")
	case "panic":
		panic("fake env exploded")
	case "slow":
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return envbridge.StepResult{}, ctx.Err()
		}
	case "block":
		<-ctx.Done()
		return envbridge.StepResult{}, ctx.Err()
	case "finish":
		return envbridge.StepResult{Obs: envbridge.Observation{"action_status": "SUCCESS"}, Reward: 1, Terminated: true}, nil
	case "nanreward":
		return envbridge.StepResult{Obs: envbridge.Observation{}, Reward: math.NaN()}, nil
	}
	return envbridge.StepResult{
		Obs: envbridge.Observation{
			"action_status": "SUCCESS",
			"echo":          a.Params,
			"n":             e.n,
			"seed":          e.seed,
			"inf":           math.Inf(1),
			"nested":        []any{math.NaN(), 1.5, map[string]float64{"x": math.Inf(-1), "y": 2}},
		},
		Reward: float64(e.n) * 0.5,
		Info:   envbridge.Info{"step": e.n},
	}, nil
}

func (e *fakeEnv) Close() error { e.closed.Store(true); return nil }

func (e *fakeEnv) History() ([]byte, error) {
	return json.Marshal(map[string]any{"competition": e.task, "step_count": e.n, "actions": e.actions})
}

// noHistEnv hides History.
type noHistEnv struct{ *fakeEnv }

func (e noHistEnv) History() {} // shadows the method with another signature

type fakeRegistry struct {
	mu      sync.Mutex
	made    []*fakeEnv
	overlap atomic.Int32
}

func (r *fakeRegistry) Tasks() []string { return []string{"beta", "alpha", "wrapped", "nohist"} }

func (r *fakeRegistry) New(ctx context.Context, task string, opts envbridge.Options) (envbridge.Env, error) {
	e := &fakeEnv{task: task, opts: opts, overlap: &r.overlap}
	r.mu.Lock()
	r.made = append(r.made, e)
	r.mu.Unlock()
	switch task {
	case "wrapped":
		return envbridge.NewOrderEnforcing(envbridge.NewTimeLimit(e, 1000)), nil
	case "nohist":
		return noHistEnv{e}, nil
	case "beta":
		return nil, errors.New("beta is broken")
	}
	return e, nil
}

func newTestServer(t *testing.T, opts ServerOptions) (*Server, *httptest.Server, *fakeRegistry) {
	t.Helper()
	reg := &fakeRegistry{}
	srv := NewServer(reg, opts)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return srv, ts, reg
}

// do sends a raw request and decodes the JSON answer.
func do(t *testing.T, method, url, body string) (int, map[string]any, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q, body %s", method, url, ct, raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v: %s", method, url, err, raw)
	}
	return resp.StatusCode, m, string(raw)
}

func wantError(t *testing.T, status int, m map[string]any, raw string, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %s", status, wantStatus, raw)
	}
	e, ok := m["error"].(map[string]any)
	if !ok || e["code"] != wantCode || e["message"] == "" || e["message"] == nil {
		t.Fatalf("want error code %q, got %s", wantCode, raw)
	}
	for _, bad := range []string{"goroutine", ".go:", "panic("} {
		if strings.Contains(raw, bad) {
			t.Fatalf("error leaks internals (%q): %s", bad, raw)
		}
	}
}

func TestRoutes(t *testing.T) {
	_, ts, reg := newTestServer(t, ServerOptions{})
	st, m, raw := do(t, "GET", ts.URL+"/v1/healthz", "")
	if st != 200 || m["ok"] != true {
		t.Fatalf("healthz: %d %s", st, raw)
	}
	st, _, raw = do(t, "GET", ts.URL+"/v1/tasks", "")
	if st != 200 || raw != `{"tasks":["alpha","beta","nohist","wrapped"]}`+"\n" {
		t.Fatalf("tasks: %d %s", st, raw)
	}
	st, m, raw = do(t, "POST", ts.URL+"/v1/envs", `{"task":"alpha","seed":7,"max_steps":5,"time_budget_s":60}`)
	if st != 200 {
		t.Fatalf("create: %d %s", st, raw)
	}
	id, _ := m["env_id"].(string)
	obs, _ := m["observation"].(map[string]any)
	if id == "" || obs["seed"] != 7.0 || obs["task"] != "alpha" || !strings.Contains(raw, `"best_raw_score":null`) {
		t.Fatalf("create: %s", raw)
	}
	if info, _ := m["info"].(map[string]any); info["max_steps"] != 5.0 {
		t.Fatalf("options not passed to the registry: %s", raw)
	}
	reg.mu.Lock()
	if o := reg.made[0].opts; o.Seed != 7 || o.MaxSteps != 5 || o.TimeBudget != time.Minute {
		t.Fatalf("options %+v", o)
	}
	reg.mu.Unlock()
	st, m, raw = do(t, "POST", ts.URL+"/v1/envs/"+id+"/step", `{"action":"echo","params":{"code":"print(1)"}}`)
	if st != 200 {
		t.Fatalf("step: %d %s", st, raw)
	}
	obs, _ = m["observation"].(map[string]any)
	echo, _ := obs["echo"].(map[string]any)
	if echo["code"] != "print(1)" || m["reward"] != 0.5 || m["terminated"] != false || m["truncated"] != false {
		t.Fatalf("step: %s", raw)
	}
	if !strings.Contains(raw, `"inf":null`) || !strings.Contains(raw, `"nested":[null,1.5,{"x":null,"y":2}]`) {
		t.Fatalf("non-finite numbers not nulled: %s", raw)
	}
	// params may be omitted.
	st, _, raw = do(t, "POST", ts.URL+"/v1/envs/"+id+"/step", `{"action":"echo"}`)
	if st != 200 {
		t.Fatalf("step without params: %d %s", st, raw)
	}
	st, m, raw = do(t, "POST", ts.URL+"/v1/envs/"+id+"/step", `{"action":"nanreward","params":{}}`)
	if st != 200 || m["reward"] != nil || !strings.Contains(raw, `"reward":null`) {
		t.Fatalf("NaN reward: %d %s", st, raw)
	}
	st, m, raw = do(t, "GET", ts.URL+"/v1/envs/"+id+"/history", "")
	if st != 200 || m["competition"] != "alpha" || m["step_count"] != 3.0 {
		t.Fatalf("history: %d %s", st, raw)
	}
	st, m, raw = do(t, "DELETE", ts.URL+"/v1/envs/"+id, "")
	if st != 200 || m["ok"] != true {
		t.Fatalf("delete: %d %s", st, raw)
	}
	if !reg.made[0].closed.Load() {
		t.Fatal("delete did not close the env")
	}
	st, m, raw = do(t, "DELETE", ts.URL+"/v1/envs/"+id, "")
	wantError(t, st, m, raw, 404, CodeUnknownEnv)
}

func TestHistoryThroughWrappers(t *testing.T) {
	_, ts, _ := newTestServer(t, ServerOptions{})
	for task, wantOK := range map[string]bool{"wrapped": true, "nohist": false} {
		st, m, raw := do(t, "POST", ts.URL+"/v1/envs", fmt.Sprintf(`{"task":%q}`, task))
		if st != 200 {
			t.Fatalf("%s: %s", task, raw)
		}
		id := m["env_id"].(string)
		st, m, raw = do(t, "GET", ts.URL+"/v1/envs/"+id+"/history", "")
		if wantOK {
			if st != 200 || m["competition"] != "wrapped" {
				t.Fatalf("history through wrappers: %d %s", st, raw)
			}
		} else {
			wantError(t, st, m, raw, 404, CodeNoHistory)
		}
	}
}

func TestErrorResponses(t *testing.T) {
	_, ts, _ := newTestServer(t, ServerOptions{MaxBodyBytes: 1 << 10})
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/envs", `{"task":`, 400, CodeBadRequest},
		{"POST", "/v1/envs", ``, 400, CodeBadRequest},
		{"POST", "/v1/envs", `{"task":"alpha"} {"x":1}`, 400, CodeBadRequest},
		{"POST", "/v1/envs", `["alpha"]`, 400, CodeBadRequest},
		{"POST", "/v1/envs", `{"seed":1}`, 400, CodeBadRequest},
		{"POST", "/v1/envs", `{"task":"alpha","max_steps":-1}`, 400, CodeBadRequest},
		{"POST", "/v1/envs", `{"task":"gamma"}`, 404, CodeUnknownTask},
		{"POST", "/v1/envs", `{"task":"beta"}`, 500, CodeEnvError},
		{"POST", "/v1/envs", `{"task":"alpha","pad":"` + strings.Repeat("x", 2000) + `"}`, 413, CodeTooLarge},
		{"POST", "/v1/envs/nope/step", `{"action":"echo"}`, 404, CodeUnknownEnv},
		{"GET", "/v1/envs/nope/history", ``, 404, CodeUnknownEnv},
		{"DELETE", "/v1/envs/nope", ``, 404, CodeUnknownEnv},
		{"GET", "/v2/whatever", ``, 404, CodeNotFound},
		{"GET", "/v1/envs", ``, 405, CodeMethod},
	}
	for _, c := range cases {
		st, m, raw := do(t, c.method, ts.URL+c.path, c.body)
		t.Run(c.method+c.path+c.body[:min(len(c.body), 20)], func(t *testing.T) {
			wantError(t, st, m, raw, c.status, c.code)
		})
	}
	// Errors inside an env: step error, panic, bad step body.
	_, m, _ := do(t, "POST", ts.URL+"/v1/envs", `{"task":"alpha"}`)
	id := m["env_id"].(string)
	st, m, raw := do(t, "POST", ts.URL+"/v1/envs/"+id+"/step", `{"action":"fail"}`)
	wantError(t, st, m, raw, 500, CodeEnvError)
	if strings.Contains(raw, "second line") {
		t.Fatalf("multi-line error not cut to one line: %s", raw)
	}
	st, m, raw = do(t, "POST", ts.URL+"/v1/envs/"+id+"/step", `{"action":"panic"}`)
	wantError(t, st, m, raw, 500, CodeEnvError)
	st, m, raw = do(t, "POST", ts.URL+"/v1/envs/"+id+"/step", `{"params":{}}`)
	wantError(t, st, m, raw, 400, CodeBadRequest)
	st, m, raw = do(t, "POST", ts.URL+"/v1/envs/"+id+"/step", `not json`)
	wantError(t, st, m, raw, 400, CodeBadRequest)
	// The env survives all that.
	st, _, raw = do(t, "POST", ts.URL+"/v1/envs/"+id+"/step", `{"action":"echo"}`)
	if st != 200 {
		t.Fatalf("env unusable after errors: %d %s", st, raw)
	}
}

func TestHandlerPanicIsJSON(t *testing.T) {
	srv := NewServer(panicRegistry{}, ServerOptions{})
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	st, m, raw := do(t, "GET", ts.URL+"/v1/tasks", "")
	wantError(t, st, m, raw, 500, CodeInternal)
	st, m, raw = do(t, "POST", ts.URL+"/v1/envs", `{"task":"x"}`)
	wantError(t, st, m, raw, 500, CodeInternal)
}

type panicRegistry struct{}

func (panicRegistry) Tasks() []string { panic("registry exploded") }
func (panicRegistry) New(context.Context, string, envbridge.Options) (envbridge.Env, error) {
	panic("registry exploded")
}

func TestClientEpisode(t *testing.T) {
	srv, ts, reg := newTestServer(t, ServerOptions{})
	ctx := context.Background()
	c, err := Dial(ctx, ts.URL+"/", "alpha", envbridge.Options{MaxSteps: 3})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := c.Tasks(ctx)
	if err != nil || len(tasks) != 4 {
		t.Fatalf("tasks %v %v", tasks, err)
	}
	if _, err := c.Step(ctx, envbridge.Action{Name: "echo"}); !errors.Is(err, envbridge.ErrResetNeeded) {
		t.Fatalf("step before reset: %v", err)
	}
	obs, _, err := c.Reset(ctx, 11)
	if err != nil || obs["seed"] != 11.0 || obs["best_raw_score"] != nil {
		t.Fatalf("reset %v %v", obs, err)
	}
	var last envbridge.StepResult
	for i := 1; i <= 3; i++ {
		last, err = c.Step(ctx, envbridge.Action{Name: "echo", Params: map[string]any{"i": i}})
		if err != nil {
			t.Fatal(err)
		}
		if last.Reward != float64(i)*0.5 || last.Obs["n"] != float64(i) {
			t.Fatalf("step %d: %+v", i, last)
		}
		if wantTrunc := i == 3; last.Truncated != wantTrunc || last.Terminated {
			t.Fatalf("step %d: truncated %v", i, last.Truncated)
		}
	}
	_, err = c.Step(ctx, envbridge.Action{Name: "echo"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeEpisodeOver || ae.Status != 409 || errors.Is(err, ErrServerGone) {
		t.Fatalf("step after truncation: %v", err)
	}
	h, err := c.History()
	if err != nil || !json.Valid(h) || !strings.Contains(string(h), `"step_count":3`) {
		t.Fatalf("history %s %v", h, err)
	}
	first := c.EnvID()
	// A second Reset replaces the server-side env.
	if _, _, err := c.Reset(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if c.EnvID() == first || srv.NumEnvs() != 1 || !reg.made[0].closed.Load() {
		t.Fatalf("reset did not replace the env: %d live", srv.NumEnvs())
	}
	res, err := c.Step(ctx, envbridge.Action{Name: "finish"})
	if err != nil || !res.Terminated || res.Reward != 1 {
		t.Fatalf("finish: %+v %v", res, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if srv.NumEnvs() != 0 {
		t.Fatalf("%d envs after Close", srv.NumEnvs())
	}
	if _, err := c.Step(ctx, envbridge.Action{Name: "echo"}); err == nil {
		t.Fatal("step after close succeeded")
	}
	// Unknown task is an API error, not "server gone".
	c2, _ := NewClient(ts.URL, "gamma", envbridge.Options{}, ClientOptions{})
	if _, _, err := c2.Reset(ctx, 1); !errors.As(err, &ae) || ae.Code != CodeUnknownTask || errors.Is(err, ErrServerGone) {
		t.Fatalf("unknown task: %v", err)
	}
}

func TestTimeBudgetTruncates(t *testing.T) {
	_, ts, _ := newTestServer(t, ServerOptions{})
	c, _ := NewClient(ts.URL, "alpha", envbridge.Options{TimeBudget: 100 * time.Millisecond}, ClientOptions{})
	defer c.Close()
	ctx := context.Background()
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	res, err := c.Step(ctx, envbridge.Action{Name: "echo"})
	if err != nil || res.Truncated {
		t.Fatalf("first step %+v %v", res, err)
	}
	time.Sleep(150 * time.Millisecond)
	res, err = c.Step(ctx, envbridge.Action{Name: "echo"})
	if err != nil || !res.Truncated {
		t.Fatalf("step past budget %+v %v", res, err)
	}
}

func TestServerKilledMidEpisode(t *testing.T) {
	reg := &fakeRegistry{}
	srv := NewServer(reg, ServerOptions{})
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	ctx := context.Background()
	c, err := Dial(ctx, ts.URL, "alpha", envbridge.Options{}, ClientOptions{Retries: 1, Backoff: 10 * time.Millisecond, RetryFor: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Step(ctx, envbridge.Action{Name: "echo"}); err != nil {
		t.Fatal(err)
	}
	// Kill the server while a step is in flight.
	errc := make(chan error, 1)
	go func() {
		_, err := c.Step(ctx, envbridge.Action{Name: "block"})
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ts.CloseClientConnections()
	ts.Close()
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("client did not notice the dead server")
	}
	if !errors.Is(err, ErrServerGone) {
		t.Fatalf("in-flight step: want ErrServerGone, got %v", err)
	}
	// The next step finds nobody listening.
	_, err = c.Step(ctx, envbridge.Action{Name: "echo"})
	if !errors.Is(err, ErrServerGone) {
		t.Fatalf("step to dead server: want ErrServerGone, got %v", err)
	}
	if err := c.Healthz(ctx); !errors.Is(err, ErrServerGone) {
		t.Fatalf("healthz: %v", err)
	}
	// Close to a dead server reports an error but does not hang or panic.
	done := make(chan struct{})
	go func() { _ = c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung")
	}
}

func TestEnvForgottenIsServerGone(t *testing.T) {
	srv, ts, _ := newTestServer(t, ServerOptions{IdleTimeout: 100 * time.Millisecond})
	c, _ := NewClient(ts.URL, "alpha", envbridge.Options{}, ClientOptions{})
	ctx := context.Background()
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.NumEnvs() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if srv.NumEnvs() != 0 {
		t.Fatal("idle env not reaped")
	}
	_, err := c.Step(ctx, envbridge.Action{Name: "echo"})
	if !errors.Is(err, ErrServerGone) {
		t.Fatalf("step on reaped env: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close of a forgotten env: %v", err)
	}
}

func TestConcurrentEnvs(t *testing.T) {
	srv, ts, reg := newTestServer(t, ServerOptions{MaxEnvs: 16})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := NewClient(ts.URL, "alpha", envbridge.Options{}, ClientOptions{})
			defer c.Close()
			if _, _, err := c.Reset(ctx, int64(g)); err != nil {
				errs <- err
				return
			}
			for i := 1; i <= 10; i++ {
				res, err := c.Step(ctx, envbridge.Action{Name: "echo", Params: map[string]any{"g": g}})
				if err != nil {
					errs <- err
					return
				}
				if res.Obs["seed"] != float64(g) || res.Obs["n"] != float64(i) {
					errs <- fmt.Errorf("goroutine %d step %d: crossed episodes: %v", g, i, res.Obs)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if srv.NumEnvs() != 0 {
		t.Fatalf("%d envs left", srv.NumEnvs())
	}
	// Steps of one env are serialized even when a client misbehaves.
	c, _ := NewClient(ts.URL, "alpha", envbridge.Options{}, ClientOptions{})
	defer c.Close()
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var wg2 sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			if _, err := c.Step(ctx, envbridge.Action{Name: "slow"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg2.Wait()
	if n := reg.overlap.Load(); n != 0 {
		t.Fatalf("%d overlapping steps on one env", n)
	}
}

func TestMaxEnvs(t *testing.T) {
	_, ts, _ := newTestServer(t, ServerOptions{MaxEnvs: 2})
	for i := 0; i < 2; i++ {
		if st, _, raw := do(t, "POST", ts.URL+"/v1/envs", `{"task":"alpha"}`); st != 200 {
			t.Fatal(raw)
		}
	}
	st, m, raw := do(t, "POST", ts.URL+"/v1/envs", `{"task":"alpha"}`)
	wantError(t, st, m, raw, 503, CodeTooManyEnvs)
}

func TestRetriesOnlyForIdempotentCalls(t *testing.T) {
	var tasksCalls, stepCalls atomic.Int32
	flaky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/tasks":
			if tasksCalls.Add(1) <= 2 {
				writeError(w, 503, "busy", "try later")
				return
			}
			writeJSON(w, 200, map[string]any{"tasks": []string{"a"}})
		case strings.HasSuffix(r.URL.Path, "/step"):
			stepCalls.Add(1)
			writeError(w, 503, "busy", "try later")
		case r.URL.Path == "/v1/envs":
			writeJSON(w, 200, map[string]any{"env_id": "e1", "observation": map[string]any{}, "info": map[string]any{}})
		default:
			writeError(w, 404, CodeNotFound, "no")
		}
	})
	ts := httptest.NewServer(flaky)
	defer ts.Close()
	c, _ := NewClient(ts.URL, "a", envbridge.Options{}, ClientOptions{Retries: 3, Backoff: 5 * time.Millisecond})
	ctx := context.Background()
	tasks, err := c.Tasks(ctx)
	if err != nil || len(tasks) != 1 || tasksCalls.Load() != 3 {
		t.Fatalf("tasks %v %v after %d calls", tasks, err, tasksCalls.Load())
	}
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	_, err = c.Step(ctx, envbridge.Action{Name: "x"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 503 || stepCalls.Load() != 1 {
		t.Fatalf("step: %v after %d calls (want exactly 1)", err, stepCalls.Load())
	}
	// Retries give up.
	c2, _ := NewClient("http://127.0.0.1:1", "a", envbridge.Options{}, ClientOptions{Retries: 2, Backoff: 5 * time.Millisecond, RetryFor: -1})
	if err := c2.Healthz(ctx); !errors.Is(err, ErrServerGone) {
		t.Fatalf("healthz to closed port: %v", err)
	}
}

func TestClientTimeout(t *testing.T) {
	_, ts, _ := newTestServer(t, ServerOptions{})
	c, _ := NewClient(ts.URL, "alpha", envbridge.Options{}, ClientOptions{StepTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.Step(ctx, envbridge.Action{Name: "block"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("step timeout: %v after %v", err, time.Since(start))
	}
}

func TestPool(t *testing.T) {
	_, tsA, _ := newTestServer(t, ServerOptions{})
	_, tsB, _ := newTestServer(t, ServerOptions{})
	if _, err := ParseURLs(" , "); err == nil {
		t.Fatal("empty list accepted")
	}
	if _, err := ParseURLs("http://a,ftp://b"); err == nil {
		t.Fatal("bad scheme accepted")
	}
	p, err := NewPool(tsA.URL+", "+tsB.URL+","+tsA.URL, ClientOptions{Retries: -1, RetryFor: -1})
	if err != nil || len(p.URLs()) != 2 {
		t.Fatalf("%v %v", p.URLs(), err)
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
		used[e.Server()]++
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if used[tsA.URL] != 2 || used[tsB.URL] != 2 {
		t.Fatalf("episodes not spread: %v", used)
	}
	// One server dies mid-episode: that episode fails with ErrServerGone,
	// the next ones go to the survivor.
	e := p.Env("alpha", envbridge.Options{})
	if _, _, err := e.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	dead := e.Server()
	if dead == tsA.URL {
		tsA.CloseClientConnections()
		tsA.Close()
	} else {
		tsB.CloseClientConnections()
		tsB.Close()
	}
	if _, err := e.Step(ctx, envbridge.Action{Name: "echo"}); !errors.Is(err, ErrServerGone) {
		t.Fatalf("step on dead server: %v", err)
	}
	for i := 0; i < 3; i++ {
		e2 := p.Env("alpha", envbridge.Options{})
		if _, _, err := e2.Reset(ctx, int64(i)); err != nil {
			t.Fatalf("reset after one server died: %v", err)
		}
		if e2.Server() == dead {
			t.Fatal("episode sent to the dead server")
		}
		if _, err := e2.Step(ctx, envbridge.Action{Name: "echo"}); err != nil {
			t.Fatal(err)
		}
		e2.Close()
	}
	// Unknown task fails at once, not after trying every server.
	if _, _, err := p.Env("gamma", envbridge.Options{}).Reset(ctx, 1); err == nil || errors.Is(err, ErrServerGone) {
		t.Fatalf("unknown task: %v", err)
	}
}

func TestSanitize(t *testing.T) {
	type point struct {
		X float64 `json:"x"`
	}
	in := envbridge.Observation{
		"a": math.NaN(),
		"b": []float64{1, math.Inf(1)},
		"c": map[string]any{"d": float32(math.Inf(-1)), "e": envbridge.Info{"f": math.NaN()}},
		"g": point{X: 2},
		"h": nil,
		"i": map[int]string{3: "x"},
		"j": []byte("hi"),
		"k": &point{X: 1},
	}
	b, err := json.Marshal(sanitize(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":null,"b":[1,null],"c":{"d":null,"e":{"f":null}},"g":{"x":2},"h":null,"i":{"3":"x"},"j":"aGk=","k":{"x":1}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestListenLoopbackDefault(t *testing.T) {
	ln, err := Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); host != "127.0.0.1" {
		t.Fatalf("listening on %s, want loopback", ln.Addr())
	}
}

func TestServeListenerShutdownClosesEnvs(t *testing.T) {
	reg := &fakeRegistry{}
	srv := NewServer(reg, ServerOptions{})
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	c, err := Dial(context.Background(), "http://"+ln.Addr().String(), "alpha", envbridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Reset(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !reg.made[0].closed.Load() {
		t.Fatal("shutdown left the env open")
	}
}
