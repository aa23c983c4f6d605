package python

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
)

// python3 finds the interpreter: Debian's /usr/bin/python3 first.
func python3(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("SKIP: python3 not found; the adapter test needs it")
	}
	return p
}

// adapter is a running mledojo_adapter.py.
type adapter struct {
	cmd    *exec.Cmd
	url    string
	stdout *bytes.Buffer
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

func (a *adapter) stderrText() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stderr.String()
}

// prepared writes one MLE-Dojo prepared competition under root.
func prepared(t *testing.T, root, name string) {
	t.Helper()
	for rel, body := range map[string]string{
		"data/public/description.txt":       "STAND-IN competition " + name + "\n",
		"data/public/sample_submission.csv": "id,target\n1,0\n",
		"data/public/train.csv":             "id,x,target\n1,0.5,1\n",
		"data/private/test_answer.csv":      "id,target\n1,1\n",
	} {
		p := filepath.Join(root, name, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var listenRE = regexp.MustCompile(`listening on (http://[0-9.]+:[0-9]+)`)

func startAdapter(t *testing.T, extra ...string) *adapter {
	t.Helper()
	py := python3(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "prepared")
	prepared(t, data, "toy-comp")
	prepared(t, data, "other-comp")
	if err := os.MkdirAll(filepath.Join(data, "not-a-comp"), 0o755); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	args := append([]string{"-u", filepath.Join(wd, "mledojo_adapter.py"),
		"--data-dir", data, "--output-dir", filepath.Join(dir, "out"),
		"--host", "127.0.0.1", "--port", "0", "--execution-timeout", "30"}, extra...)
	cmd := exec.Command(py, args...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(wd, "testdata", "fake_mledojo"), "PYTHONDONTWRITEBYTECODE=1")
	a := &adapter{cmd: cmd, stdout: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = a.stdout
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		defer close(a.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			a.mu.Lock()
			a.stderr.WriteString(line + "\n")
			a.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil && !sent {
				urlc <- m[1]
				sent = true
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-a.done
		_ = cmd.Wait()
	})
	select {
	case a.url = <-urlc:
	case <-a.done:
		t.Fatalf("adapter exited before listening:\n%s", a.stderrText())
	case <-time.After(30 * time.Second):
		t.Fatalf("adapter did not start:\n%s", a.stderrText())
	}
	return a
}

// raw sends a request and returns the status and decoded JSON body.
func raw(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON (%v): %q", method, url, err, b)
	}
	if strings.Contains(string(b), "Traceback") || strings.Contains(string(b), "NaN") {
		t.Fatalf("%s %s: response leaks a traceback or NaN: %s", method, url, b)
	}
	return resp.StatusCode, m
}

func wantErr(t *testing.T, st int, m map[string]any, status int, code string) {
	t.Helper()
	e, _ := m["error"].(map[string]any)
	if st != status || e == nil || e["code"] != code || e["message"] == "" {
		t.Fatalf("want %d %s, got %d %v", status, code, st, m)
	}
}

func TestAdapterProtocol(t *testing.T) {
	a := startAdapter(t)
	ctx := context.Background()
	c, err := httpenv.Dial(ctx, a.url, "toy-comp", envbridge.Options{MaxSteps: 5})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := c.Tasks(ctx)
	if err != nil || strings.Join(tasks, ",") != "other-comp,toy-comp" {
		t.Fatalf("tasks %v %v", tasks, err)
	}
	obs, info, err := c.Reset(ctx, 3)
	if err != nil || obs["feedback"] != "Environment reset successfully" || info["output_dir"] == nil {
		t.Fatalf("reset: %v %v %v", obs, info, err)
	}
	// The budget is in the observations (the prompt's "You have a total
	// of N actions"), and the step timeout is announced.
	if obs[envbridge.KeyRemainingSteps] != 5.0 || info["step_timeout_s"] != 90.0 {
		t.Fatalf("reset budget: obs %v info %v", obs, info)
	}
	// 1: request_info.
	res, err := c.Step(ctx, envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "overview"}})
	if err != nil || res.Obs["action_status"] != "SUCCESS" || res.Truncated || res.Terminated {
		t.Fatalf("request_info: %+v %v", res, err)
	}
	if res.Obs["best_raw_score"] != nil {
		t.Fatalf("NaN best_raw_score not nulled: %v", res.Obs["best_raw_score"])
	}
	if res.Info[envbridge.InfoHistoryRecorded] != true || res.Obs[envbridge.KeyRemainingSteps] != 4.0 {
		t.Fatalf("recorded step: info %v obs %v", res.Info, res.Obs)
	}
	// 2: ValueError (unknown action) -> error observation, not an HTTP error.
	res, err = c.Step(ctx, envbridge.Action{Name: "dance"})
	if err != nil {
		t.Fatalf("invalid action gave an error instead of an observation: %v", err)
	}
	fb, _ := res.Obs["feedback"].(map[string]any)
	base, _ := fb["base"].(map[string]any)
	if res.Obs["action_status"] != "FAILED" || base["feedback_status"] != "FAILED" ||
		!strings.Contains(base["feedback"].(string), "Invalid action") || res.Info["invalid_action"] != true || res.Reward != 0 {
		t.Fatalf("error observation: %+v", res)
	}
	if !envbridge.Unrecorded(res.Info) {
		t.Fatalf("a step MLE-Dojo raised on is not marked unrecorded: %v", res.Info)
	}
	// 3: a bad info_type raises with a two-line message: all of it is kept.
	res, err = c.Step(ctx, envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "secrets"}})
	if err != nil || res.Info[envbridge.InfoHistoryRecorded] != false || !strings.Contains(envbridge.FeedbackText(res.Obs), "Details: Available info types: overview, all") {
		t.Fatalf("bad info_type: %+v %v", res, err)
	}
	// 4: a scored submission.
	res, err = c.Step(ctx, envbridge.Action{Name: "execute_code", Params: map[string]any{"code": "SUBMIT = 1"}})
	if err != nil || res.Reward != 0.75 || res.Obs["best_raw_score"] != 0.5 || res.Truncated {
		t.Fatalf("submission: %+v %v", res, err)
	}
	// 5: NaN raw score -> null; the 5th step truncates (max_steps 5).
	res, err = c.Step(ctx, envbridge.Action{Name: "execute_code", Params: map[string]any{"code": "NAN"}})
	if err != nil || !res.Truncated || res.Terminated {
		t.Fatalf("5th step not truncated: %+v %v", res, err)
	}
	if v, ok := res.Obs["current_raw_score"]; !ok || v != nil {
		t.Fatalf("NaN current_raw_score not null: %v", res.Obs)
	}
	_, err = c.Step(ctx, envbridge.Action{Name: "request_info"})
	var ae *httpenv.APIError
	if !errors.As(err, &ae) || ae.Code != "episode_over" || ae.Status != 409 {
		t.Fatalf("step after truncation: %v", err)
	}
	// History: MLE-Dojo's history.json with NaN replaced.
	h, err := c.History()
	if err != nil {
		t.Fatal(err)
	}
	var hist struct {
		Competition  string           `json:"competition"`
		Actions      []map[string]any `json:"actions"`
		StepCount    int              `json:"step_count"`
		BestRawScore *float64         `json:"best_raw_score"`
	}
	if err := json.Unmarshal(h, &hist); err != nil {
		t.Fatalf("history not JSON: %v: %s", err, h)
	}
	// The two ValueError steps were rejected by the env before counting.
	if hist.Competition != "toy-comp" || len(hist.Actions) != 3 || hist.BestRawScore == nil || *hist.BestRawScore != 0.5 {
		t.Fatalf("history: %s", h)
	}
	id := c.EnvID()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	st, m := raw(t, "POST", a.url+"/v1/envs/"+id+"/step", `{"action":"request_info"}`)
	wantErr(t, st, m, 404, "unknown_env")

	// Raw protocol errors.
	st, m = raw(t, "GET", a.url+"/v1/healthz", "")
	if st != 200 || m["ok"] != true {
		t.Fatalf("healthz %d %v", st, m)
	}
	st, m = raw(t, "POST", a.url+"/v1/envs", `{"task":`)
	wantErr(t, st, m, 400, "bad_request")
	st, m = raw(t, "POST", a.url+"/v1/envs", `{"task":"nope"}`)
	wantErr(t, st, m, 404, "unknown_task")
	st, m = raw(t, "POST", a.url+"/v1/envs", `{"task":"toy-comp","max_steps":-2}`)
	wantErr(t, st, m, 400, "bad_request")
	st, m = raw(t, "GET", a.url+"/v1/nothing", "")
	wantErr(t, st, m, 404, "not_found")
	st, m = raw(t, "DELETE", a.url+"/v1/envs/abc", "")
	wantErr(t, st, m, 404, "unknown_env")
	st, m = raw(t, "GET", a.url+"/v1/envs/abc/history", "")
	wantErr(t, st, m, 404, "unknown_env")

	// The env's prints went to stderr, never to stdout.
	time.Sleep(100 * time.Millisecond)
	if a.stdout.Len() != 0 {
		t.Fatalf("adapter wrote to stdout: %q", a.stdout.String())
	}
	if errText := a.stderrText(); !strings.Contains(errText, "stdout pollution") || !strings.Contains(errText, "raw fd-1 pollution") {
		t.Fatalf("env prints not found on stderr:\n%s", errText)
	}
}

func TestAdapterTimeBudgetAndLimits(t *testing.T) {
	a := startAdapter(t, "--max-envs", "2")
	ctx := context.Background()
	c, err := httpenv.Dial(ctx, a.url, "other-comp", envbridge.Options{TimeBudget: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	res, err := c.Step(ctx, envbridge.Action{Name: "validate_code", Params: map[string]any{"code": "print(1)"}})
	if err != nil || res.Truncated {
		t.Fatalf("first step %+v %v", res, err)
	}
	// The run timeout (30 s on the command line) was capped at the 1 s
	// left of the budget.
	h, err := c.History()
	if err != nil || !strings.Contains(string(h), `"timeout": 1`) {
		t.Fatalf("execution timeout not capped by the budget: %s %v", h, err)
	}
	time.Sleep(400 * time.Millisecond)
	res, err = c.Step(ctx, envbridge.Action{Name: "validate_code", Params: map[string]any{"code": "print(1)"}})
	if err != nil || !res.Truncated || res.Info["time_budget_exhausted"] != true {
		t.Fatalf("step past the budget: %+v %v", res, err)
	}
	// max_envs: one live (c), one more allowed, the third refused.
	c2, _ := httpenv.NewClient(a.url, "toy-comp", envbridge.Options{}, httpenv.ClientOptions{})
	defer c2.Close()
	if _, _, err := c2.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	st, m := raw(t, "POST", a.url+"/v1/envs", `{"task":"toy-comp"}`)
	wantErr(t, st, m, 503, "too_many_envs")
}

func TestAdapterKilledMidEpisode(t *testing.T) {
	a := startAdapter(t)
	ctx := context.Background()
	c, err := httpenv.Dial(ctx, a.url, "toy-comp", envbridge.Options{}, httpenv.ClientOptions{Retries: 1, Backoff: 10 * time.Millisecond, RetryFor: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Step(ctx, envbridge.Action{Name: "request_info"}); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	_, err = c.Step(ctx, envbridge.Action{Name: "request_info"})
	if !errors.Is(err, httpenv.ErrServerGone) {
		t.Fatalf("step after the adapter died: want ErrServerGone, got %v", err)
	}
}

// TestStandInDetectsThreads is the control for the main-thread rule: the
// stand-in, like MLE-Dojo's Sandbox, installs signal handlers and so cannot
// be constructed off the main thread; the adapter tests above prove the
// adapter constructs on it.
func TestStandInDetectsThreads(t *testing.T) {
	py := python3(t)
	wd, _ := os.Getwd()
	code := `
import threading
from mledojo.gym.env import Sandbox
err = []
def f():
    try:
        Sandbox(execution_timeout=1)
    except (RuntimeError, ValueError) as e:
        err.append(str(e))
t = threading.Thread(target=f); t.start(); t.join()
print("refused" if err and "main thread" in err[0] else "accepted")
`
	cmd := exec.Command(py, "-c", code)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(wd, "testdata", "fake_mledojo"), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "refused" {
		t.Fatalf("stand-in main-thread check: %v: %s", err, out)
	}
}
