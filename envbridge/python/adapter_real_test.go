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

	"smtrain/data"
	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
	"smtrain/envbridge/rollout"
)

// TestAdapterAnswersWhileStepping: a step running a long code run (2 s)
// does not hold the adapter: healthz and another environment's steps are
// answered meanwhile, and a second step of the same env is refused.
func TestAdapterAnswersWhileStepping(t *testing.T) {
	a := startAdapter(t)
	ctx := context.Background()
	slow, err := httpenv.Dial(ctx, a.url, "toy-comp", envbridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, _ := httpenv.NewClient(a.url, "other-comp", envbridge.Options{}, httpenv.ClientOptions{})
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
		c, _ := httpenv.NewClient(a.url, "toy-comp", envbridge.Options{}, httpenv.ClientOptions{})
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
		c, _ := httpenv.NewClient(a.url, "toy-comp", envbridge.Options{}, httpenv.ClientOptions{})
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
	c, _ := httpenv.NewClient(a.url, "toy-comp", envbridge.Options{}, httpenv.ClientOptions{})
	defer c.Close()
	if _, _, err := c.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := c.StepTimeout(); got != 61*time.Second {
		t.Fatalf("step timeout %v, want the announced 61s", got)
	}
}

// scripted replies with fixed texts in turn.
type scripted struct{ texts []string }

func (p *scripted) Act(ctx context.Context, msgs []data.Message, seed uint64) (rollout.Reply, error) {
	n := 0
	for _, m := range msgs {
		if m.Role == data.RoleAssistant {
			n++
		}
	}
	return rollout.Reply{Text: p.texts[n%len(p.texts)]}, nil
}

type adapterSpec struct{ url string }

func (s adapterSpec) Task(int) string { return "toy-comp" }
func (s adapterSpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	return httpenv.NewClient(s.url, "toy-comp", envbridge.Options{MaxSteps: 4, TimeBudget: 300 * time.Second}, httpenv.ClientOptions{})
}

// TestRolloutRewardsWithRaisingSteps is issue 22's first defect end to
// end: a submission, then a request_info MLE-Dojo raises on (no history
// entry), then a valid request_info, through rollout and the loader. The
// raising turn must not take the submission's score (it did: [0 1 1]-like
// rewards), and the prompts state the budget.
func TestRolloutRewardsWithRaisingSteps(t *testing.T) {
	a := startAdapter(t)
	act := func(name string, params map[string]any) string {
		return envbridge.FormatAction("Next.", envbridge.Action{Name: name, Params: params})
	}
	pol := &scripted{texts: []string{
		act("execute_code", map[string]any{"code": "SUBMIT = 1"}),
		act("request_info", map[string]any{"info_type": "secrets"}),
		act("request_info", map[string]any{"info_type": "overview"}),
		"no action at all",
	}}
	out := t.TempDir()
	s, err := rollout.Run(context.Background(), pol, adapterSpec{a.url}, rollout.Options{Episodes: 1, Parallel: 1, MaxSteps: 4, Out: out}, nil)
	if err != nil || s.Failed != 0 {
		t.Fatalf("rollout: %v %+v", err, s)
	}
	if r := s.Results[0]; r.Steps != 4 || r.InvalidAction != 2 || r.Reward != 0.75 {
		t.Fatalf("episode: %+v", r)
	}
	res, err := data.Load([]string{out}, false)
	if err != nil || len(res.Episodes) != 1 {
		t.Fatalf("load: %v", err)
	}
	ep := res.Episodes[0]
	want := []float64{0.75, 0, 0, 0}
	for k, w := range want {
		if ep.StepRewards[k] != w {
			t.Fatalf("step rewards %v, want %v (meta %v)", ep.StepRewards, want, ep.Meta)
		}
	}
	if !strings.Contains(ep.Messages[0].Content, "a total of 4 actions") || !strings.Contains(ep.Messages[0].Content, "a total of 300 seconds") {
		t.Fatalf("initial prompt does not state the budget:\n%s", ep.Messages[0].Content)
	}
}
