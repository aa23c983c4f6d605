package rollout

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"smtrain/data"
	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
	"smtrain/envbridge/local"
)

// liveServer is an env server on a fixed address that the test can kill
// and restart.
type liveServer struct {
	addr   string
	reg    envbridge.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *liveServer) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	srv := httpenv.NewServer(l.reg, httpenv.ServerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() { defer close(l.done); _ = srv.ServeListener(ctx, ln) }()
}

func (l *liveServer) kill() {
	l.cancel()
	<-l.done
}

// httpSpec opens every episode on one server over HTTP.
type httpSpec struct {
	url  string
	task string
	co   httpenv.ClientOptions
}

func (h httpSpec) Task(int) string { return h.task }

func (h httpSpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	return httpenv.NewClient(h.url, h.task, envbridge.Options{MaxSteps: 3}, h.co)
}

// killingPolicy kills the server at its n-th call.
type killingPolicy struct {
	scriptPolicy
	at   int64
	kill func()
	n    atomic.Int64
}

func (p *killingPolicy) Act(ctx context.Context, msgs []data.Message, seed uint64) (Reply, error) {
	if p.n.Add(1) == p.at {
		p.kill()
	}
	return p.scriptPolicy.Act(ctx, msgs, seed)
}

// TestRolloutSurvivesServerDeath: the env server dies in the middle of
// episode 1. Episode 0 is kept; episode 1 and the ones after fail as
// unreachable (after the client's bounded retries), are not recorded as
// done, and their folders are marked partial (the loader skips them with a
// note). After a restart, running the same rollout again plays exactly
// those, and every episode is accounted for.
func TestRolloutSurvivesServerDeath(t *testing.T) {
	reg, err := local.NewBuiltinRegistry(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	task := reg.Tasks()[0]
	l := &liveServer{addr: "127.0.0.1:0", reg: reg}
	l.start(t)
	defer func() { l.kill() }()
	info := envbridge.FormatAction("Look.", envbridge.Action{Name: "request_info", Params: map[string]any{"info_type": "overview"}})
	pol := &killingPolicy{scriptPolicy: scriptPolicy{texts: []string{info}}, at: 5, kill: l.kill}
	spec := httpSpec{url: "http://" + l.addr, task: task, co: httpenv.ClientOptions{RetryFor: 300 * time.Millisecond, Backoff: 20 * time.Millisecond}}
	out := t.TempDir()
	o := Options{Episodes: 4, Parallel: 1, MaxSteps: 3, Seed: 3, Out: out}
	start := time.Now()
	s, err := Run(context.Background(), pol, spec, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run with the server killed at policy call 5: %.2fs, %s", time.Since(start).Seconds(), s.FailureLine())
	if s.Episodes != 4 || s.Failed != 3 || s.Unreachable != 3 {
		t.Fatalf("summary: %d episodes, %d failed, %d unreachable: %+v", s.Episodes, s.Failed, s.Unreachable, s.Results)
	}
	if line := s.FailureLine(); !strings.Contains(line, "3 of 4 episodes failed") || !strings.Contains(line, "unreachable") {
		t.Fatalf("failure line %q", line)
	}
	if _, err := os.Stat(filepath.Join(out, task+"-1", data.PartialMarker)); err != nil {
		t.Fatalf("the interrupted episode is not marked partial: %v", err)
	}
	res, err := data.Load([]string{out}, false)
	if err != nil {
		t.Fatalf("the loader fails on the partial folder: %v", err)
	}
	if len(res.Episodes) != 1 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Err.Error(), "partial episode") {
		t.Fatalf("loaded %d, skipped %v", len(res.Episodes), res.Skipped)
	}
	// Restart on the same address and rerun the same command.
	l.start(t)
	before := pol.calls.Load()
	s, err = Run(context.Background(), pol, spec, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Episodes != 4 || s.Failed != 0 || pol.calls.Load()-before != 9 {
		t.Fatalf("resume: %d episodes, %d failed, %d policy calls (want 4, 0, 9)", s.Episodes, s.Failed, pol.calls.Load()-before)
	}
	res, err = data.Load([]string{out}, false)
	if err != nil || len(res.Episodes) != 4 || len(res.Skipped) != 0 {
		t.Fatalf("after resume: %v, %d episodes, skipped %v", err, len(res.Episodes), res.Skipped)
	}
	for _, r := range s.Results {
		if r.Steps != 3 || r.ValidActions != 3 {
			t.Fatalf("episode %d: %+v", r.Index, r)
		}
	}
}
