package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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
}

func runChild(spec string) int {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	t, err := New(cs.Cfg, arithInputs(cs.Cfg), cs.Resume, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
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

// TestResumeAfterSIGKILL is the trainer's promise: a run killed with SIGKILL
// at any point and resumed produces the same metrics.jsonl losses, step for
// step, as an uninterrupted run with the same seed.
func TestResumeAfterSIGKILL(t *testing.T) {
	steps := 24
	ref := filepath.Join(t.TempDir(), "ref")
	t0 := time.Now()
	runInProcess(t, smallConfig(ref, steps), false)
	full := time.Since(t0) + 50*time.Millisecond // plus process start-up
	want := readLosses(t, filepath.Join(ref, MetricsFile))
	if len(want) < steps {
		t.Fatalf("reference run logged %d rows", len(want))
	}

	out := filepath.Join(t.TempDir(), "killed")
	cfg := smallConfig(out, steps)
	rng := rand.New(rand.NewPCG(7, 7))
	kills := 0
	for attempt := 0; attempt < 40; attempt++ {
		resume := fileExists(filepath.Join(out, LatestFile))
		spec, _ := json.Marshal(childSpec{Cfg: cfg, Resume: resume})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Kill at a random moment within about the time of a whole run,
		// unless the child finishes first.
		delay := time.Duration(rng.Int64N(int64(full) * 6 / 10))
		if kills >= 8 {
			delay = time.Hour
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child failed: %v\n%s", err, stderr.String())
			}
			got := readLosses(t, filepath.Join(out, MetricsFile))
			compareLosses(t, want, got)
			t.Logf("identical losses after %d SIGKILLs", kills)
			if kills < 3 {
				t.Fatalf("only %d kills happened; the test did not exercise resume", kills)
			}
			return
		case <-time.After(delay):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err := <-done
			var ee *exec.ExitError
			if err == nil {
				// finished just before the kill
				continue
			}
			if errors.As(err, &ee) && ee.ExitCode() != -1 && ee.ExitCode() != 0 {
				t.Fatalf("child failed: %v\n%s", err, stderr.String())
			}
			kills++
		}
	}
	t.Fatal("the run did not finish in 40 attempts")
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
