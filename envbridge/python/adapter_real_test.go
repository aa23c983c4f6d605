package python

import (
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

// TestAdapterAnswersWhileStepping: a step running a long code run (2 s)
// does not hold the adapter: healthz and another environment's steps are
// answered meanwhile, and a second step of the same env is refused.
func TestAdapterAnswersWhileStepping(t *testing.T) {
	a := startAdapter(t)
	ctx := context.Background()
	slow, err := httpenv.Dial(ctx, a.url, "toy-comp", httpenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, _ := httpenv.NewClient(a.url, "other-comp", httpenv.Options{}, httpenv.ClientOptions{})
	defer fast.Close()
	if _, _, err := slow.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fast.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		if _, err := slow.Step(ctx, envbridge.Action{Name: "execute_code", Params: map[string]any{"code": "SLEEP 2"}}); err != nil {
			t.Errorf("slow step: %v", err)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := fast.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Step(ctx, envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "overview"}}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("healthz and another env's step answered after %v, while the 2 s step ran", d)
	}
	st, m := raw(t, "POST", a.url+"/v1/envs/"+slow.EnvID()+"/step", `{"action":"request_info","params":{"info_type":"overview"}}`)
	wantErr(t, st, m, 409, "step_in_progress")
	wg.Wait()
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("slow step took %v", d)
	}
}

// TestAdapterSignalHandlersDoNotPileUp: every environment's Sandbox chains
// the previous SIGTERM handler; without restoring them, SIGTERM after
// ~1000 environments raised RecursionError (reproduced at 1200). After
// 1200 environments created and deleted, SIGTERM stops the adapter
// cleanly, and each deleted env's cleanup hook ran (not left to atexit).
func TestAdapterSignalHandlersDoNotPileUp(t *testing.T) {
	if testing.Short() {
		t.Skip("1200 environments (~10 s); run without -short")
	}
	a := startAdapter(t, "--max-envs", "2")
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < 1200; i++ {
		c, _ := httpenv.NewClient(a.url, "toy-comp", httpenv.Options{}, httpenv.ClientOptions{})
		if _, _, err := c.Reset(ctx, int64(i)); err != nil {
			t.Fatalf("env %d: %v", i, err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	t.Logf("1200 creates and deletes: %.1fs", time.Since(start).Seconds())
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		t.Fatal("adapter did not stop on SIGTERM")
	}
	err := a.cmd.Wait()
	text := a.stderrText()
	if err != nil || strings.Contains(text, "RecursionError") || !strings.Contains(text, "stopped") {
		t.Fatalf("SIGTERM after 1200 envs: %v\n%s", err, lastLines(text, 20))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestAdapterLogsSeparate: MLE-Dojo logs every env of a competition
// through one named logger whose handler each new env replaces; each
// env.log must hold only its own env's lines.
func TestAdapterLogsSeparate(t *testing.T) {
	a := startAdapter(t)
	ctx := context.Background()
	var dirs []string
	var cs []*httpenv.Client
	for i := 0; i < 2; i++ {
		c, _ := httpenv.NewClient(a.url, "toy-comp", httpenv.Options{}, httpenv.ClientOptions{})
		defer c.Close()
		_, info, err := c.Reset(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, info["output_dir"].(string))
		cs = append(cs, c)
	}
	for _, c := range cs {
		for k := 0; k < 2; k++ {
			if _, err := c.Step(ctx, envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "overview"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "env.log"))
		if err != nil {
			t.Fatal(err)
		}
		want := "env " + filepath.Base(d) + " step"
		if n := strings.Count(string(b), want); n != 2 || strings.Count(string(b), " step ") != 2 {
			t.Fatalf("%s/env.log mixes episodes (%d own lines):\n%s", d, n, b)
		}
	}
}

// TestAdapterRefusesRawScoreMode: raw mode is refused with the reason.
func TestAdapterRefusesRawScoreMode(t *testing.T) {
	py := python3(t)
	wd, _ := os.Getwd()
	cmd := exec.Command(py, filepath.Join(wd, "mledojo_adapter.py"), "--data-dir", t.TempDir(), "--output-dir", t.TempDir(),
		"--port", "0", "--score-mode", "raw")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(wd, "testdata", "fake_mledojo"))
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "--score-mode raw is not supported") {
		t.Fatalf("raw mode: %v: %s", err, out)
	}
}

// TestClientUsesAnnouncedStepTimeout: the client's step timeout is the
// adapter's step_timeout_s (one setting for both sides).
func TestClientUsesAnnouncedStepTimeout(t *testing.T) {
	a := startAdapter(t, "--execution-timeout", "1")
	ctx := context.Background()
	c, _ := httpenv.NewClient(a.url, "toy-comp", httpenv.Options{}, httpenv.ClientOptions{})
	defer c.Close()
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := c.StepTimeout(); got != 61*time.Second {
		t.Fatalf("step timeout %v, want the announced 61s", got)
	}
}
