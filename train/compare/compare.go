// Package compare trains several objectives on the same data with the same
// seeds and compute budget, evaluates each run on held-out data with a
// task-specific evaluator, and writes results.json (one row per objective ×
// seed × noise level), report.md (means ± standard errors across seeds) and
// PNG plots. Finished runs are not redone; an interrupted run resumes from
// its latest checkpoint.
package compare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"smtrain/data"
	"smtrain/internal/atomicfile"
	"smtrain/objective"
	"smtrain/train"
)

// Task supplies the data every run trains on and evaluates a trained run.
// Inputs must return the same episodes for every run (same data).
type Task interface {
	// Name is the task name written to the results ("arith", "dojo", ...).
	Name() string
	// Describe is the regime, one line for the report.
	Describe() string
	// Inputs are the training and validation episodes (Val non-empty, so
	// every run validates on the same episodes).
	Inputs() train.Inputs
	// Evaluate scores a trained run. t holds the final weights (it was
	// restored from the run's last checkpoint and is not trained further);
	// dir is the run folder, for any files the evaluation writes.
	Evaluate(ctx context.Context, t *train.Trainer, dir string) (map[string]float64, error)
	// Metrics lists the metrics Evaluate returns, in report order.
	Metrics() []Metric
	// EvalKey identifies the evaluation settings: a stored result with
	// another key is re-evaluated (without retraining).
	EvalKey() string
}

// Metric describes one metric of a task.
type Metric struct {
	Key   string
	Label string
	// Plot draws this metric against the noise level.
	Plot bool
	// Table shows it in the report table.
	Table bool
}

// Spec is one comparison.
type Spec struct {
	// Objectives are objective names, optionally with a noise kind
	// ("bc:policy") and EnvSuffix ("chi2mix+env", see SplitLabel): each
	// label is its own row group.
	Objectives []string
	Seeds      []int64
	// Noise are the noise (η) levels. Objectives that do not train on
	// augmented data (mle) are trained once per seed and their run is
	// shared by the rows of every noise level.
	Noise []float64
	// Base is the configuration every run starts from; Objective, Seed,
	// Eta, Out and Progress are set per run.
	Base train.Config
	// Out is the comparison folder; runs live in Out/runs/NAME.
	Out string
	// Parallel is the number of runs trained at once (>= 1). Each run uses
	// one kernel thread, so results do not depend on it.
	Parallel int
	// EnvReplay are the environments (as rollout -env) of the runs whose
	// objective label ends in EnvSuffix.
	EnvReplay []string
	// Inputs, when set, completes a run's inputs from its config (the
	// environments of replay_env, the episodes of replay_data): the task's
	// inputs hold only the data.
	Inputs func(cfg train.Config, in *train.Inputs) error
	// Command is the exact command line, written to the report.
	Command string
	// Log receives one line per run event (nil: discard).
	Log io.Writer
}

// Row is one objective × seed × noise result.
type Row struct {
	Objective string             `json:"objective"`
	Seed      int64              `json:"seed"`
	Noise     float64            `json:"noise"`
	Run       string             `json:"run"` // run folder relative to Out
	Shared    bool               `json:"shared_run,omitempty"`
	Metrics   map[string]float64 `json:"metrics"`
	TrainS    float64            `json:"train_wall_s"`
	EvalS     float64            `json:"eval_wall_s"`
	Steps     int                `json:"steps"`
}

// RunResult is OUT/runs/NAME/result.json: the evaluation of a finished run.
type RunResult struct {
	Schema  int                `json:"schema"`
	Config  json.RawMessage    `json:"config"`
	EvalKey string             `json:"eval_key"`
	Metrics map[string]float64 `json:"metrics"`
	TrainS  float64            `json:"train_wall_s"`
	EvalS   float64            `json:"eval_wall_s"`
	Steps   int                `json:"steps"`
}

// Counts says what a Run call did.
type Counts struct {
	Runs      int `json:"runs"`      // distinct training runs
	Trained   int `json:"trained"`   // trained from scratch
	Resumed   int `json:"resumed"`   // continued from a checkpoint
	Evaluated int `json:"evaluated"` // evaluated (trained, resumed or re-evaluated)
	Skipped   int `json:"skipped"`   // finished earlier, result reused
}

// Results is results.json.
type Results struct {
	Schema  int       `json:"schema"`
	Task    string    `json:"task"`
	Regime  string    `json:"regime"`
	Command string    `json:"command"`
	Metrics []Metric  `json:"metrics"`
	Rows    []Row     `json:"rows"`
	Summary []Summary `json:"summary"`
	// Paired are per-seed paired differences of the accuracy metrics
	// (PairedDiffs; empty for tasks without them).
	Paired     []Paired     `json:"paired,omitempty"`
	WallS      float64      `json:"wall_s"`
	Counts     Counts       `json:"counts"`
	Parallel   int          `json:"parallel"`
	Base       train.Config `json:"base_config"`
	Objectives []string     `json:"objectives"`
	Seeds      []int64      `json:"seeds"`
	Noise      []float64    `json:"noise"`
}

const (
	// ResultsFile, ReportFile and RunResultFile are the output names.
	ResultsFile   = "results.json"
	ReportFile    = "report.md"
	RunResultFile = "result.json"
	resultSchema  = 1
)

// plannedRun is one distinct training run.
type plannedRun struct {
	name string
	cfg  train.Config
}

// RunName is the folder name of a run: objective, seed and, for objectives
// trained on augmented data, the noise level.
func RunName(obj string, seed int64, eta float64, augmented bool) string {
	obj = strings.ReplaceAll(obj, ":", "-")
	if !augmented {
		return fmt.Sprintf("%s-s%d", obj, seed)
	}
	return fmt.Sprintf("%s-s%d-eta%s", obj, seed, strconv.FormatFloat(eta, 'g', -1, 64))
}

// Validate checks the spec.
func (s *Spec) Validate() error {
	switch {
	case len(s.Objectives) == 0:
		return errors.New("no objectives")
	case len(s.Seeds) == 0:
		return errors.New("no seeds")
	case len(s.Noise) == 0:
		return errors.New("no noise levels")
	case s.Out == "":
		return errors.New("no output folder")
	case s.Parallel < 1:
		return fmt.Errorf("parallel must be >= 1, got %d", s.Parallel)
	}
	seen := map[string]bool{}
	for _, o := range s.Objectives {
		if seen[o] {
			return fmt.Errorf("objective %q listed twice", o)
		}
		seen[o] = true
		name, kind, env, err := SplitLabel(o)
		if err != nil {
			return err
		}
		if env && len(s.EnvReplay) == 0 {
			return fmt.Errorf("objective %q: %s needs environments (Spec.EnvReplay)", o, EnvSuffix)
		}
		if _, err := objective.New(name, s.Base.ObjectiveConfig()); err != nil {
			return err
		}
		if obj, _ := objective.New(name, s.Base.ObjectiveConfig()); kind != "" && !obj.Augmented() {
			return fmt.Errorf("objective %q: %s does not train on noise, a noise kind makes no sense", o, name)
		}
	}
	for _, x := range s.Noise {
		if !(x >= 0 && x < 1) {
			return fmt.Errorf("noise level %v not in [0, 1)", x)
		}
	}
	return nil
}

// plan lists the distinct runs and the rows pointing at them.
func (s *Spec) plan() ([]plannedRun, []Row, error) {
	var runs []plannedRun
	var rows []Row
	byName := map[string]bool{}
	// Seed-major order: an interrupted comparison has whole noise sweeps
	// for its first seeds rather than all seeds of the first noise levels.
	for _, seed := range s.Seeds {
		for _, eta := range s.Noise {
			for _, o := range s.Objectives {
				oname, kind, env, err := SplitLabel(o)
				if err != nil {
					return nil, nil, err
				}
				obj, err := objective.New(oname, s.Base.ObjectiveConfig())
				if err != nil {
					return nil, nil, err
				}
				aug := obj.Augmented()
				name := RunName(o, seed, eta, aug)
				if !byName[name] {
					byName[name] = true
					cfg := s.Base
					cfg.Objective, cfg.Seed, cfg.Out = oname, seed, filepath.Join(s.Out, "runs", name)
					if kind != "" {
						cfg.NoiseKind = kind
					}
					if env {
						cfg.ReplayEnv = s.EnvReplay
					}
					cfg.Progress = "off"
					cfg.Eta = eta
					if !aug {
						cfg.Eta = 0
					}
					if err := cfg.Validate(); err != nil {
						return nil, nil, fmt.Errorf("run %s: %w", name, err)
					}
					runs = append(runs, plannedRun{name: name, cfg: cfg})
				}
				rows = append(rows, Row{Objective: o, Seed: seed, Noise: eta, Run: filepath.Join("runs", name), Shared: !aug && len(s.Noise) > 1})
			}
		}
	}
	return runs, rows, nil
}

// EnvSuffix marks an objective label whose runs fill their replay buffer
// with the policy's own episodes in live environments (Spec.EnvReplay).
const EnvSuffix = "+env"

// SplitLabel splits an objective label "name" or "name:kind" (kind a
// noise kind: random, ground-truth, unigram or policy), either optionally
// followed by EnvSuffix.
func SplitLabel(label string) (name, kind string, env bool, err error) {
	base, env := strings.CutSuffix(label, EnvSuffix)
	name, kind, _ = strings.Cut(base, ":")
	if kind != "" {
		if _, err := data.ParseNoiseKind(kind); err != nil {
			return "", "", false, fmt.Errorf("objective %q: %w", label, err)
		}
	}
	return name, kind, env, nil
}

// configKey is the config as compared on resume (progress, threads and
// the output folder aside, so a moved comparison folder still resumes).
func configKey(c train.Config) ([]byte, error) {
	c.Progress, c.Out = "", ""
	return json.Marshal(c)
}

// Run trains and evaluates every run of s on task (skipping finished ones),
// then writes results.json, report.md and the plots to s.Out.
func Run(ctx context.Context, s Spec, task Task) (*Results, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	log := s.Log
	if log == nil {
		log = io.Discard
	}
	runs, rows, err := s.plan()
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(s.Out, "runs"), 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	var mu sync.Mutex
	counts := Counts{Runs: len(runs)}
	results := make(map[string]*RunResult, len(runs))
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(log, format+"\n", args...)
	}

	jobs := make(chan plannedRun)
	var wg sync.WaitGroup
	var firstErr error
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < min(s.Parallel, len(runs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range jobs {
				if cctx.Err() != nil {
					continue // cancelled: start no new run
				}
				res, what, err := runOne(cctx, r, task, s.Inputs, logf)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("run %s: %w", r.name, err)
					}
					cancel()
				} else {
					results[r.name] = res
					switch what {
					case "skipped":
						counts.Skipped++
					case "trained":
						counts.Trained++
						counts.Evaluated++
					case "resumed":
						counts.Resumed++
						counts.Evaluated++
					case "evaluated":
						counts.Evaluated++
					}
				}
				mu.Unlock()
			}
		}()
	}
dispatch:
	for _, r := range runs {
		select {
		case jobs <- r:
		case <-cctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for i := range rows {
		name := filepath.Base(rows[i].Run)
		rr := results[name]
		rows[i].Metrics, rows[i].TrainS, rows[i].EvalS, rows[i].Steps = rr.Metrics, rr.TrainS, rr.EvalS, rr.Steps
	}
	res := &Results{Schema: resultSchema, Task: task.Name(), Regime: task.Describe(), Command: s.Command,
		Metrics: task.Metrics(), Rows: rows, WallS: time.Since(start).Seconds(), Counts: counts, Parallel: s.Parallel,
		Base: s.Base, Objectives: s.Objectives, Seeds: s.Seeds, Noise: s.Noise}
	res.Summary = Summarise(rows, task.Metrics(), s.Objectives, s.Noise)
	for _, m := range PairedMetrics {
		for _, x := range task.Metrics() {
			if x.Key == m {
				res.Paired = append(res.Paired, PairedDiffs(rows, m, s.Objectives, s.Noise)...)
			}
		}
	}
	if err := WriteAll(s.Out, res); err != nil {
		return nil, err
	}
	return res, nil
}

// PairedMetrics are the metrics whose paired differences results.json and
// report.md show (when the task has them).
var PairedMetrics = []string{"acc_sample_bk", "acc_greedy_bk", "acc_sample_nobk"}

// WriteAll writes results.json, report.md and the plots of res to dir.
func WriteAll(dir string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("compare: results: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ResultsFile), append(b, '\n')); err != nil {
		return err
	}
	plots, err := WritePlots(dir, res)
	if err != nil {
		return fmt.Errorf("compare: plots: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, ReportFile), []byte(Report(res, plots)))
}

// runOne trains (or resumes) and evaluates one run unless its result is
// already stored. It returns what it did: skipped, trained, resumed or
// evaluated.
func runOne(ctx context.Context, r plannedRun, task Task, prepare func(train.Config, *train.Inputs) error, logf func(string, ...any)) (*RunResult, string, error) {
	dir := r.cfg.Out
	key, err := configKey(r.cfg)
	if err != nil {
		return nil, "", err
	}
	resPath := filepath.Join(dir, RunResultFile)
	if b, err := os.ReadFile(resPath); err == nil {
		var rr RunResult
		if err := json.Unmarshal(b, &rr); err != nil {
			return nil, "", fmt.Errorf("%s: %w", resPath, err)
		}
		var old train.Config
		if err := json.Unmarshal(rr.Config, &old); err != nil {
			return nil, "", fmt.Errorf("%s: config: %w", resPath, err)
		}
		ok, err := sameConfig(old, key)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			return nil, "", fmt.Errorf("%s was produced with another configuration; use a new -out folder (or delete that run)", resPath)
		}
		if rr.EvalKey == task.EvalKey() && rr.Schema == resultSchema {
			logf("run %s: finished earlier, result reused", filepath.Base(dir))
			return &rr, "skipped", nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}

	what := "trained"
	resume := fileExists(filepath.Join(dir, train.LatestFile))
	if resume {
		what = "resumed"
		var old train.Config
		if err := train.LoadConfigFile(filepath.Join(dir, train.ConfigOutFile), &old); err != nil {
			return nil, "", fmt.Errorf("resuming %s: %w", dir, err)
		}
		ok, err := sameConfig(old, key)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			return nil, "", fmt.Errorf("%s holds a run with another configuration; use a new -out folder (or delete that run)", dir)
		}
	}
	in := task.Inputs()
	if prepare != nil {
		if err := prepare(r.cfg, &in); err != nil {
			return nil, "", fmt.Errorf("run %s: %w", filepath.Base(dir), err)
		}
	} else if len(r.cfg.ReplayEnv) > 0 || len(r.cfg.ReplayData) > 0 {
		return nil, "", fmt.Errorf("run %s: replay_env/replay_data need Spec.Inputs", filepath.Base(dir))
	}
	t, err := train.New(r.cfg, in, resume, io.Discard)
	if err != nil {
		return nil, "", err
	}
	if resume && t.Step() >= r.cfg.Steps {
		what = "evaluated"
	}
	if resume {
		logf("run %s: resuming at step %d of %d", filepath.Base(dir), t.Step(), r.cfg.Steps)
	} else {
		logf("run %s: training %d steps", filepath.Base(dir), r.cfg.Steps)
	}
	if err := t.Run(ctx); err != nil {
		return nil, "", err
	}
	trainS, err := trainWall(dir)
	if err != nil {
		return nil, "", err
	}
	// Evaluate the final weights from the last checkpoint with a fresh
	// trainer (the trained one has released its graphs).
	ev, err := train.New(r.cfg, in, true, io.Discard)
	if err != nil {
		return nil, "", fmt.Errorf("reloading for evaluation: %w", err)
	}
	defer ev.Close()
	t0 := time.Now()
	m, err := task.Evaluate(ctx, ev, dir)
	if err != nil {
		return nil, "", fmt.Errorf("evaluation: %w", err)
	}
	rr := &RunResult{Schema: resultSchema, Config: key, EvalKey: task.EvalKey(), Metrics: m,
		TrainS: trainS, EvalS: time.Since(t0).Seconds(), Steps: ev.Step()}
	b, err := json.MarshalIndent(rr, "", "  ")
	if err != nil {
		return nil, "", err
	}
	if err := atomicfile.WriteFile(resPath, append(b, '\n')); err != nil {
		return nil, "", err
	}
	logf("run %s: %s (train %.1fs, eval %.1fs) %s", filepath.Base(dir), what, trainS, rr.EvalS, brief(m, task.Metrics()))
	return rr, what, nil
}

func brief(m map[string]float64, ms []Metric) string {
	var parts []string
	for _, x := range ms {
		if v, ok := m[x.Key]; ok && x.Table {
			parts = append(parts, fmt.Sprintf("%s %.4g", x.Key, v))
		}
	}
	return strings.Join(parts, " | ")
}

func sameConfig(old train.Config, key []byte) (bool, error) {
	ok, err := configKey(old)
	if err != nil {
		return false, err
	}
	return string(ok) == string(key), nil
}

// trainWall is the training wall time of a run from its metrics log (the
// last event's elapsed_s; a resumed run's time adds up across segments).
func trainWall(dir string) (float64, error) {
	curves, err := ReadCurves(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		return 0, err
	}
	return curves.ElapsedS, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
