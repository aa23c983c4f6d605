package python

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
)

// The adapter against the real MLE-Dojo code, when it is at hand:
//
//	SMTRAIN_MLEDOJO_SRC=/path/to/MLE-Dojo go test -run TestAdapterWithRealMLEDojo -v ./envbridge/python/
//
// needs /usr/bin/python3 (or python3) with pandas and numpy, and the golden
// titanic data of ../shared/mledojo/real-feedback. gymnasium is stubbed
// when it is not installed (MLE-Dojo only subclasses gym.Env and builds
// spaces). Skipped otherwise, with the reason.
const realFeedback = "../../../shared/mledojo/real-feedback"

const gymStub = `class Env:
    metadata = {}
class _Space:
    def __init__(self, *a, **k):
        pass
class spaces:
    Text = Box = Dict = Discrete = Sequence = Tuple = _Space
`

func TestAdapterWithRealMLEDojo(t *testing.T) {
	src := os.Getenv("SMTRAIN_MLEDOJO_SRC")
	if src == "" {
		t.Skip("SKIP: set SMTRAIN_MLEDOJO_SRC to an MLE-Dojo checkout to run the adapter against the real code")
	}
	if _, err := os.Stat(filepath.Join(src, "mledojo", "gym", "env.py")); err != nil {
		t.Skipf("SKIP: %s is not an MLE-Dojo checkout: %v", src, err)
	}
	if _, err := os.Stat(filepath.Join(realFeedback, "data", "private", "test_answer.csv")); err != nil {
		t.Skipf("SKIP: %s absent: %v", realFeedback, err)
	}
	py := python3(t)
	if out, err := exec.Command(py, "-c", "import pandas, numpy").CombinedOutput(); err != nil {
		t.Skipf("SKIP: %s has no pandas/numpy: %s", py, out)
	}
	dir := t.TempDir()
	pypath := src
	if exec.Command(py, "-c", "import gymnasium").Run() != nil {
		stub := filepath.Join(dir, "stub")
		os.MkdirAll(filepath.Join(stub, "gymnasium"), 0o755)
		os.WriteFile(filepath.Join(stub, "gymnasium", "__init__.py"), []byte(gymStub), 0o644)
		os.WriteFile(filepath.Join(stub, "gymnasium", "spaces.py"), []byte("from gymnasium import _Space\nText = Box = Dict = Discrete = Sequence = Tuple = _Space\n"), 0o644)
		pypath = stub + string(os.PathListSeparator) + src
	}
	// the golden titanic data in MLE-Dojo's prepared layout, leaderboards
	// in data/private
	prep := filepath.Join(dir, "prepared")
	cp := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(to), 0o755)
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"public/train.csv", "public/test.csv", "public/description.txt", "public/sample_submission.csv", "private/test_answer.csv"} {
		cp(filepath.Join(realFeedback, "data", f), filepath.Join(prep, "titanic", "data", f))
	}
	for _, f := range []string{"public_leaderboard.csv", "private_leaderboard.csv"} {
		cp(filepath.Join(realFeedback, "..", "competitions", "titanic", "info", f), filepath.Join(prep, "titanic", "data", "private", f))
	}
	wd, _ := os.Getwd()
	cmd := exec.Command(py, "-u", filepath.Join(wd, "mledojo_adapter.py"), "--data-dir", prep, "--output-dir", filepath.Join(dir, "out"),
		"--port", "0", "--execution-timeout", "60", "--max-envs", "4")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pypath, "PYTHONDONTWRITEBYTECODE=1")
	pr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var mu sync.Mutex
	var logb strings.Builder
	urlc, done := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			mu.Lock()
			logb.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
	}()
	var url string
	select {
	case url = <-urlc:
	case <-done:
		t.Fatalf("adapter exited:\n%s", logb.String())
	case <-time.After(60 * time.Second):
		t.Fatal("adapter did not start")
	}
	ctx := context.Background()
	c, _ := httpenv.NewClient(url, "titanic", envbridge.Options{MaxSteps: 5, TimeBudget: 300 * time.Second}, httpenv.ClientOptions{})
	obs, info, err := c.Reset(ctx, 1)
	if err != nil || obs[envbridge.KeyRemainingSteps] != 5.0 || info["step_timeout_s"] != 120.0 {
		t.Fatalf("reset: %v %v %v", obs, info, err)
	}
	out := info["output_dir"].(string)
	// A step the real env raises on: unrecorded, whole message.
	res, err := c.Step(ctx, envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "secrets"}})
	if err != nil || res.Info[envbridge.InfoHistoryRecorded] != false || !strings.Contains(envbridge.FeedbackText(res.Obs), "Details: Available info types") {
		t.Fatalf("raising step: %+v %v", res, err)
	}
	// A scored submission; the real env keeps running it while healthz is
	// answered.
	go func() {
		c2, _ := httpenv.NewClient(url, "titanic", envbridge.Options{}, httpenv.ClientOptions{})
		defer c2.Close()
		if _, _, err := c2.Reset(ctx, 2); err == nil {
			c2.Step(ctx, envbridge.Action{Name: "execute_code", Params: map[string]any{"code": "import time\ntime.sleep(3)"}})
		}
	}()
	time.Sleep(time.Second)
	start := time.Now()
	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("healthz during another env's 3 s code run: %v", time.Since(start))
	if d := time.Since(start); d > time.Second {
		t.Fatalf("healthz took %v during a code run", d)
	}
	code := "import shutil\nshutil.copy('" + filepath.Join(prep, "titanic", "data", "public", "sample_submission.csv") + "', '" + out + "/submission.csv')\nprint('done')"
	res, err = c.Step(ctx, envbridge.Action{Name: "execute_code", Params: map[string]any{"code": code}})
	if err != nil || res.Reward != 1 || res.Info[envbridge.InfoHistoryRecorded] != true || res.Obs[envbridge.KeyRemainingSteps] != 3.0 {
		t.Fatalf("submission: %+v %v", res, err)
	}
	// The reset action as the local environment answers it.
	res, err = c.Step(ctx, envbridge.Action{Name: "reset", Params: map[string]any{}})
	if err != nil || res.Obs["action_status"] != nil || !strings.HasPrefix(envbridge.FeedbackText(res.Obs), "Invalid interface mode: reset") {
		t.Fatalf("reset action: %+v %v", res, err)
	}
	c.Close()
	// Signal handlers do not pile up: 1200 real environments, then SIGTERM.
	start = time.Now()
	for i := 0; i < 1200; i++ {
		cc, _ := httpenv.NewClient(url, "titanic", envbridge.Options{}, httpenv.ClientOptions{})
		if _, _, err := cc.Reset(ctx, int64(i)); err != nil {
			t.Fatalf("env %d: %v", i, err)
		}
		cc.Close()
	}
	t.Logf("1200 real environments created and deleted: %.1fs", time.Since(start).Seconds())
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("adapter did not stop on SIGTERM")
	}
	werr := cmd.Wait()
	mu.Lock()
	text := logb.String()
	mu.Unlock()
	if werr != nil || strings.Contains(text, "RecursionError") || !strings.Contains(text, "stopped") {
		t.Fatalf("SIGTERM after 1200 envs: %v\n%s", werr, lastLines(text, 20))
	}
}
