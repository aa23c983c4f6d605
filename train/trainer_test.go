package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smtrain/data"
)

// The exact-resume test runs training in child processes (this test binary
// re-executed) so that it can SIGKILL them at arbitrary points.
const childEnv = "SMTRAIN_TRAIN_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

type childSpec struct {
	Cfg    Config `json:"cfg"`
	Resume bool   `json:"resume"`
	// DiePoint and DieMin make the child SIGKILL itself at the first
	// checkpoint write of a step >= DieMin, at DiePoint ("begin" or
	// "model-written", see testHookCheckpoint).
	DiePoint string `json:"die_point,omitempty"`
	DieMin   int    `json:"die_min,omitempty"`
	// Progress, when set, is a file the child rewrites with the step
	// number after every step.
	Progress string `json:"progress,omitempty"`
	// HoldAt pauses the child after step HoldAt until the file Release
	// exists, so a run meant to be killed cannot finish first.
	HoldAt  int    `json:"hold_at,omitempty"`
	Release string `json:"release,omitempty"`
}

func runChild(spec string) int {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	if cs.DiePoint != "" {
		testHookCheckpoint = func(point string, step int) {
			if point == cs.DiePoint && step >= cs.DieMin {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	t, err := New(cs.Cfg, arithInputs(cs.Cfg), cs.Resume, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	t.AddHook(hookFunc(func(ctx context.Context, _ *Trainer, s *StepInfo) error {
		if cs.Progress != "" {
			if err := os.WriteFile(cs.Progress, []byte(strconv.Itoa(s.Step)), 0o644); err != nil {
				return err
			}
		}
		for cs.HoldAt > 0 && s.Step == cs.HoldAt && !fileExists(cs.Release) {
			time.Sleep(time.Millisecond)
		}
		return nil
	}))
	if err := t.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func arithInputs(cfg Config) Inputs {
	tr, te, err := data.ArithSplits(data.ArithConfig{Digits: cfg.ArithDigits, Base: cfg.ArithBase, Op: cfg.ArithOps,
		NTrain: cfg.ArithTrain, NTest: cfg.ArithTest, Seed: uint64(cfg.Seed)})
	if err != nil {
		panic(err)
	}
	in := Inputs{Tokenizer: data.ArithTokenizer()}
	for _, p := range tr {
		in.Train = append(in.Train, p.Episode())
	}
	for _, p := range te {
		in.Val = append(in.Val, p.Episode())
	}
	return in
}

// smallConfig is a seconds-long chi2mix run exercising warm start, the
// replay buffer, evaluation with samples and checkpoints.
func smallConfig(out string, steps int) Config {
	c := DefaultConfig()
	c.Out = out
	c.Steps = steps
	c.NLayer, c.NHead, c.NEmbd, c.NPositions = 1, 2, 32, 32
	c.BatchSize = 8
	c.ArithDigits, c.ArithTrain, c.ArithTest = 2, 200, 16
	c.WarmStart = 4
	c.ReplayEvery, c.ReplaySamples, c.ReplayBatch, c.ReplayMaxNew, c.ReplaySize = 3, 8, 2, 8, 16
	c.EvalEvery, c.EvalBatches, c.EvalSamples = 5, 1, 1
	c.CkptEvery, c.KeepLast = 2, 2
	c.LogEvery = 100
	c.WarmupSteps = 3
	c.Progress = "off"
	c.GradAccum = 2
	return c
}

type lossRow struct {
	Step  int
	Split string
	Loss  *float64
}

func readLosses(t *testing.T, path string) []lossRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []lossRow
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r lossRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		if r.Split == "train" || r.Split == "val" {
			rows = append(rows, r)
		}
	}
	return rows
}

func compareLosses(t *testing.T, want, got []lossRow) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("metrics rows: got %d, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.Step != g.Step || w.Split != g.Split || (w.Loss == nil) != (g.Loss == nil) || (w.Loss != nil && *w.Loss != *g.Loss) {
			t.Fatalf("row %d differs: want step %d %s %v, got step %d %s %v", i, w.Step, w.Split, deref(w.Loss), g.Step, g.Split, deref(g.Loss))
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func runInProcess(t *testing.T, cfg Config, resume bool) {
	t.Helper()
	tr, err := New(cfg, arithInputs(cfg), resume, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// killPoint says when to SIGKILL a training child process, in steps after
// the checkpoint the child resumes from (r0). Each is driven by the run's
// observed progress, never by wall time, and every one kills a running
// process (the child is held before its last step until the final
// attempt), so the number of kills is fixed.
type killPoint struct {
	afterStep   int    // parent: once the child reports step r0+afterStep done
	afterLatest int    // parent: once the latest marker names a checkpoint >= r0+afterLatest
	midWrite    int    // parent: once a new checkpoint temp folder appears (or, failing that, step r0+midWrite is done)
	die         string // child: kills itself at this point of the first checkpoint >= r0+dieAfter
	dieAfter    int
}

func (k killPoint) String() string {
	switch {
	case k.afterStep > 0:
		return fmt.Sprintf("step r0+%d done", k.afterStep)
	case k.afterLatest > 0:
		return fmt.Sprintf("checkpoint >= r0+%d marked latest", k.afterLatest)
	case k.midWrite > 0:
		return fmt.Sprintf("inside a checkpoint write (or at step r0+%d)", k.midWrite)
	}
	return fmt.Sprintf("child at %s of checkpoint >= r0+%d", k.die, k.dieAfter)
}

func readStep(path string) int {
	b, _ := os.ReadFile(path)
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}

func latestStep(out string) int {
	b, err := os.ReadFile(filepath.Join(out, LatestFile))
	if err != nil {
		return 0
	}
	var n int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), ckptNameTemplate, &n); err != nil {
		return 0
	}
	return n
}

// tmpCheckpoints lists model.Save's temporary sibling folders in out
// (there while a checkpoint is written; left behind by a kill inside one).
func tmpCheckpoints(out string) map[string]bool {
	m := map[string]bool{}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "."+ckptPrefix) && strings.Contains(e.Name(), ".tmp-") {
			m[e.Name()] = true
		}
	}
	return m
}

// killAndResume runs cfg in child processes killed at each of kills in
// turn, then lets a last child finish, and checks that metrics.jsonl has
// the reference losses step for step.
func killAndResume(t *testing.T, cfg Config, kills []killPoint, want []lossRow) {
	out := cfg.Out
	work := t.TempDir()
	release := filepath.Join(work, "release")
	midHits := 0
	for i := 0; i <= len(kills); i++ {
		final := i == len(kills)
		r0 := latestStep(out)
		// Targets past the last checkpoint before the hold are clamped
		// (only reached when earlier kills lagged a lot).
		lim := cfg.Steps - 2
		progress := filepath.Join(work, fmt.Sprintf("progress-%d", i))
		found, _ := runFiles(out) // resume whatever the killed child left, as a user would
		cs := childSpec{Cfg: cfg, Resume: len(found) > 0, HoldAt: cfg.Steps - 1, Release: release, Progress: progress}
		var k killPoint
		if final {
			if err := os.WriteFile(release, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			k = kills[i]
			cs.DiePoint, cs.DieMin = k.die, min(r0+k.dieAfter, lim)
		}
		before := tmpCheckpoints(out)
		spec, _ := json.Marshal(cs)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if final {
			if err := <-done; err != nil {
				t.Fatalf("final run failed: %v\n%s", err, stderr.String())
			}
			break
		}
		deadline := time.Now().Add(2 * time.Minute)
		var err error
		for waiting := true; waiting; {
			select {
			case err = <-done:
				waiting = false
				continue
			default:
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("kill %d (%v, r0 %d): not reached in 2 minutes (child at step %d)", i, k, r0, readStep(progress))
			}
			reached := false
			switch {
			case k.afterStep > 0:
				reached = readStep(progress) >= min(r0+k.afterStep, cfg.Steps-1)
			case k.afterLatest > 0:
				reached = latestStep(out) >= min(r0+k.afterLatest, lim)
			case k.midWrite > 0:
				for name := range tmpCheckpoints(out) {
					if !before[name] {
						reached = true
					}
				}
				if reached {
					midHits++
				} else {
					reached = readStep(progress) >= min(r0+k.midWrite, cfg.Steps-1)
				}
			}
			if reached {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				err = <-done
				waiting = false
				continue
			}
			time.Sleep(200 * time.Microsecond)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d (%v): child ended with %v, not SIGKILL\n%s", i, k, err, stderr.String())
		}
		t.Logf("kill %d (%v): resumed from %d, killed after step %d, latest now %d", i, k, r0, readStep(progress), latestStep(out))
	}
	compareLosses(t, want, readLosses(t, filepath.Join(out, MetricsFile)))
	t.Logf("identical losses after %d SIGKILLs (%d inside a checkpoint write caught by the parent)", len(kills), midHits)
	if left := tmpCheckpoints(out); len(left) > 0 {
		t.Fatalf("temporary checkpoint folders left after the resumed run: %v", left)
	}
}

// TestResumeAfterSIGKILL is the trainer's promise: a run killed with SIGKILL
// at any point and resumed produces the same metrics.jsonl losses, step for
// step, as an uninterrupted run with the same seed. The kills land at
// points chosen from the run's progress: during a step, right after a
// checkpoint became latest, at the start of a checkpoint write, after a
// checkpoint folder was written but before latest was updated, and inside
// a checkpoint write when the parent catches one.
func TestResumeAfterSIGKILL(t *testing.T) {
	const steps = 24
	ref := filepath.Join(t.TempDir(), "ref")
	runInProcess(t, smallConfig(ref, steps), false)
	want := readLosses(t, filepath.Join(ref, MetricsFile))
	if len(want) < steps {
		t.Fatalf("reference run logged %d rows", len(want))
	}
	kills := []killPoint{
		{afterStep: 3},
		{die: "model-written", dieAfter: 3},
		{afterLatest: 4},
		{die: "begin", dieAfter: 3},
		{midWrite: 4},
		{afterStep: 4},
		{die: "model-written", dieAfter: 3},
		{afterStep: 5},
	}
	killAndResume(t, smallConfig(filepath.Join(t.TempDir(), "killed"), steps), kills, want)
}

// TestResumeAfterManySIGKILLs is the heavier variant: a longer run killed
// at every kind of point many times.
func TestResumeAfterManySIGKILLs(t *testing.T) {
	if testing.Short() {
		t.Skip("long; run without -short")
	}
	const steps = 60
	ref := filepath.Join(t.TempDir(), "ref")
	runInProcess(t, smallConfig(ref, steps), false)
	want := readLosses(t, filepath.Join(ref, MetricsFile))
	var kills []killPoint
	for i := 0; i < 20; i++ {
		n := 1 + i%3
		switch i % 5 {
		case 0:
			kills = append(kills, killPoint{afterStep: n})
		case 1:
			kills = append(kills, killPoint{die: "model-written", dieAfter: n})
		case 2:
			kills = append(kills, killPoint{midWrite: n + 1})
		case 3:
			kills = append(kills, killPoint{die: "begin", dieAfter: n})
		case 4:
			kills = append(kills, killPoint{afterLatest: n})
		}
	}
	killAndResume(t, smallConfig(filepath.Join(t.TempDir(), "killed"), steps), kills, want)
}

func TestResumeInProcessMatches(t *testing.T) {
	ref := filepath.Join(t.TempDir(), "ref")
	runInProcess(t, smallConfig(ref, 12), false)
	want := readLosses(t, filepath.Join(ref, MetricsFile))

	out := filepath.Join(t.TempDir(), "two")
	// First leg stops at step 6 (a checkpoint step): same config but the
	// run is cut by a cancelled context after 6 steps.
	cfg := smallConfig(out, 12)
	tr, err := New(cfg, arithInputs(cfg), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.AddHook(hookFunc(func(ctx context.Context, tt *Trainer, s *StepInfo) error {
		if s.Step == 5 {
			cancel()
		}
		return nil
	}))
	if err := tr.Run(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run after cancel: %v, want ErrInterrupted", err)
	}
	if st, err := readState(ckptDir(out, 5)); err != nil || st.Step != 5 {
		t.Fatalf("interrupt checkpoint: %v %+v", err, st)
	}
	runInProcess(t, cfg, true)
	compareLosses(t, want, readLosses(t, filepath.Join(out, MetricsFile)))
}

type hookFunc func(ctx context.Context, t *Trainer, s *StepInfo) error

func (f hookFunc) AfterStep(ctx context.Context, t *Trainer, s *StepInfo) error { return f(ctx, t, s) }

// TestOverfitOneBatch: training on a handful of sequences drives the loss
// far below its start.
func TestOverfitOneBatch(t *testing.T) {
	for _, obj := range []string{"mle", "chi2mix"} {
		t.Run(obj, func(t *testing.T) {
			cfg := smallConfig(t.TempDir(), 150)
			cfg.Objective = obj
			cfg.ArithTrain, cfg.ArithTest = 8, 2
			cfg.BatchSize, cfg.GradAccum = 8, 1
			cfg.LR, cfg.MinLR, cfg.WarmupSteps, cfg.WeightDecay = 3e-3, 3e-3, 0, 0
			cfg.EvalEvery, cfg.CkptEvery, cfg.EvalSamples = 0, 0, 0
			cfg.Eta = 0
			cfg.ReplayEvery = 0
			tr, err := New(cfg, arithInputs(cfg), false, nil)
			if err != nil {
				t.Fatal(err)
			}
			var first, last float64
			var nll float64
			tr.AddHook(hookFunc(func(ctx context.Context, tt *Trainer, s *StepInfo) error {
				if s.Step == 1 {
					first = s.Components["bc"] + s.Loss*boolf(obj == "mle")
				}
				last = s.Loss
				nll = s.Components["nll"]
				return nil
			}))
			if err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			r, err := Evaluate(tr, tr.trainSq, 0, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: first %.3f last loss %.3f (nll comp %.3f) train nll %.4f", obj, first, last, nll, r.NLL)
			if r.NLL > 0.25 {
				t.Fatalf("train NLL after overfitting %.4f, want < 0.25 (start %.3f)", r.NLL, first)
			}
		})
	}
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestConfigPrecedenceAndUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "c.yaml")
	os.WriteFile(yml, []byte("lr: 0.01\nsteps: 7\nobjective: kl\n"), 0o644)
	fs := flag.NewFlagSet("fit", flag.ContinueOnError)
	b := BindFlags(fs)
	if err := fs.Parse([]string{"-steps", "9", "-data", "a,b", "-data", "c"}); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := LoadConfigFile(yml, &c); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(&c); err != nil {
		t.Fatal(err)
	}
	if c.LR != 0.01 || c.Steps != 9 || c.Objective != "kl" || c.BatchSize != DefaultConfig().BatchSize {
		t.Fatalf("precedence wrong: lr %g steps %d objective %s batch %d", c.LR, c.Steps, c.Objective, c.BatchSize)
	}
	if strings.Join(c.Data, "|") != "a|b|c" {
		t.Fatalf("data = %q", c.Data)
	}

	os.WriteFile(yml, []byte("lr: 0.01\nlearning_rate: 3\n"), 0o644)
	c = DefaultConfig()
	err := LoadConfigFile(yml, &c)
	if err == nil || !strings.Contains(err.Error(), `"learning_rate"`) || !strings.Contains(err.Error(), "c.yaml") {
		t.Fatalf("unknown YAML key: err = %v", err)
	}
	js := filepath.Join(dir, "c.json")
	os.WriteFile(js, []byte(`{"lr": 0.01, "bogus": 1}`), 0o644)
	err = LoadConfigFile(js, &c)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown JSON key: err = %v", err)
	}
	os.WriteFile(yml, []byte("steps: many\n"), 0o644)
	err = LoadConfigFile(yml, &c)
	if err == nil || !strings.Contains(err.Error(), "steps") {
		t.Fatalf("bad YAML value: err = %v", err)
	}
	c = DefaultConfig()
	c.Objective = "chi3"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "chi3") {
		t.Fatalf("bad objective: %v", err)
	}
}

func TestLRSchedule(t *testing.T) {
	const lr, minLR = 1e-3, 1e-4
	if got := LRAt(0, 10, 100, lr, minLR); got != lr/10 {
		t.Fatalf("first warm-up step %g", got)
	}
	if got := LRAt(9, 10, 100, lr, minLR); got != lr {
		t.Fatalf("end of warm-up %g", got)
	}
	if got := LRAt(99, 10, 100, lr, minLR); got != minLR {
		t.Fatalf("last step %g", got)
	}
	mid := LRAt(10+89/2, 10, 100, lr, minLR)
	if d := mid - (lr+minLR)/2; d > 1e-5 || d < -1e-5 {
		t.Fatalf("cosine midpoint %g", mid)
	}
	prev := lr
	for s := 10; s < 100; s++ {
		x := LRAt(s, 10, 100, lr, minLR)
		if x > prev+1e-15 {
			t.Fatalf("lr increases at %d", s)
		}
		prev = x
	}
}

func TestPruneKeepsBestAndLast(t *testing.T) {
	out := t.TempDir()
	for _, s := range []int{2, 4, 6, 8, 10} {
		os.MkdirAll(ckptDir(out, s), 0o755)
	}
	if err := pruneCheckpoints(out, 2, 4, 10); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(listCheckpoints(out))
	if got != "[4 8 10]" {
		t.Fatalf("kept %s, want [4 8 10]", got)
	}
}

// TestResumeCheckpoint: what -resume starts from when the latest marker is
// missing (a run killed before its first marker write).
func TestResumeCheckpoint(t *testing.T) {
	out := t.TempDir()
	if _, err := resumeCheckpoint(out); err == nil || !strings.Contains(err.Error(), "no run to resume") {
		t.Fatalf("empty folder: %v, want a no-run error", err)
	}
	if err := os.WriteFile(filepath.Join(out, MetricsFile), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ck, err := resumeCheckpoint(out); err != nil || ck != "" {
		t.Fatalf("metrics only: %q %v, want a fresh start", ck, err)
	}
	for _, s := range []int{2, 10, 4} {
		if err := os.Mkdir(ckptDir(out, s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if ck, err := resumeCheckpoint(out); err != nil || ck != ckptDir(out, 10) {
		t.Fatalf("folders without a marker: %q %v, want the newest", ck, err)
	}
	if err := os.WriteFile(filepath.Join(out, LatestFile), []byte("ckpt-00000004\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ck, err := resumeCheckpoint(out); err != nil || ck != ckptDir(out, 4) {
		t.Fatalf("with a marker: %q %v, want the marked one", ck, err)
	}
}
