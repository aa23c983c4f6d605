package expert

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"smtrain/envbridge/local"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
	"smtrain/internal/atomicfile"
)

// CollectOptions configure Collect.
type CollectOptions struct {
	Tasks    []string // built-in task names (default: all)
	Episodes int      // total episodes, spread round-robin over Tasks
	Seed     uint64   // expert RNG seed; episode i uses EpisodeRNG(Seed, i)
	Out      string   // output folder: Out/<task>-<i>/{agent_history,env_history}
	Parallel int      // concurrent episodes (default 2)
	MaxSteps int      // step budget per episode (default 10)
	// TimeBudget per episode (default 10 minutes).
	TimeBudget time.Duration
	// TaskRoot is where built-in tasks are materialised (default
	// tasks.CacheDir()); TaskSeed is their data seed (default
	// tasks.DefaultSeed).
	TaskRoot string
	TaskSeed uint64
	Sandbox  sandbox.Config
	Expert   Options
	// Progress, when set, is called after each finished episode.
	Progress func(done, total int, r Result)
}

// CollectSummary is written to Out/collect_summary.json.
type CollectSummary struct {
	Episodes     int                    `json:"episodes"`
	Skipped      int                    `json:"skipped_existing"`
	MeanReward   float64                `json:"mean_best_position_score"`
	MeanSteps    float64                `json:"mean_steps"`
	WallSeconds  float64                `json:"wall_seconds"`
	PerTask      map[string]TaskSummary `json:"per_task"`
	Seed         uint64                 `json:"seed"`
	TaskSeed     uint64                 `json:"task_seed"`
	MaxSteps     int                    `json:"max_steps"`
	EpisodeNames []string               `json:"episode_dirs"`
}

// TaskSummary aggregates one task's episodes.
type TaskSummary struct {
	Episodes         int     `json:"episodes"`
	MeanBestPosition float64 `json:"mean_best_position_score"`
	MeanBestRaw      float64 `json:"mean_best_raw_score"`
	WithBug          int     `json:"episodes_with_bug_fix"`
}

// EpisodeDir is the folder name of episode i of task.
func EpisodeDir(task string, i int) string { return fmt.Sprintf("%s-%04d", task, i) }

// Collect runs the expert on built-in tasks and writes each episode in
// MLE-Dojo's run-folder layout. Episodes are written to a temporary
// folder and renamed when complete; existing complete episodes are kept
// and skipped, so an interrupted collection can be resumed.
func Collect(ctx context.Context, o CollectOptions) (CollectSummary, error) {
	start := time.Now()
	if len(o.Tasks) == 0 {
		o.Tasks = tasks.Names()
	}
	if o.Episodes <= 0 {
		return CollectSummary{}, fmt.Errorf("collect: episodes must be positive, got %d", o.Episodes)
	}
	if o.Out == "" {
		return CollectSummary{}, fmt.Errorf("collect: no output folder")
	}
	if o.Parallel <= 0 {
		o.Parallel = 2
	}
	if o.MaxSteps <= 0 {
		o.MaxSteps = 10
	}
	if o.MaxSteps < 4 {
		return CollectSummary{}, fmt.Errorf("collect: max steps %d too small for the expert (need at least 4)", o.MaxSteps)
	}
	if o.TimeBudget <= 0 {
		o.TimeBudget = 10 * time.Minute
	}
	if o.TaskRoot == "" {
		o.TaskRoot = tasks.CacheDir()
	}
	if o.TaskSeed == 0 {
		o.TaskSeed = tasks.DefaultSeed
	}
	loaded := map[string]*local.Task{}
	for _, name := range o.Tasks {
		dir, err := tasks.Materialize(o.TaskRoot, name, o.TaskSeed)
		if err != nil {
			return CollectSummary{}, fmt.Errorf("collect: %w", err)
		}
		t, err := local.LoadTask(dir)
		if err != nil {
			return CollectSummary{}, fmt.Errorf("collect: %w", err)
		}
		loaded[name] = t
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return CollectSummary{}, fmt.Errorf("collect: %w", err)
	}
	work, err := os.MkdirTemp("", "smtrain-collect-")
	if err != nil {
		return CollectSummary{}, fmt.Errorf("collect: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil { // the sandbox may run code under another uid
		return CollectSummary{}, fmt.Errorf("collect: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		i    int
		task string
	}
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		results  []Result
		skipped  int
		firstErr error
		done     int
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := 0; w < o.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				final := filepath.Join(o.Out, EpisodeDir(j.task, j.i))
				if complete(final) {
					mu.Lock()
					skipped++
					mu.Unlock()
					continue
				}
				tmp := filepath.Join(o.Out, ".tmp-"+EpisodeDir(j.task, j.i))
				os.RemoveAll(tmp)
				env, err := local.New(loaded[j.task], local.Options{MaxSteps: o.MaxSteps, TimeBudget: o.TimeBudget,
					Sandbox: o.Sandbox, RunDir: tmp, WorkRoot: work})
				if err != nil {
					fail(err)
					continue
				}
				r := EpisodeRNG(o.Seed, j.i)
				res, err := Run(ctx, env, int64(j.i), r, o.Expert)
				env.Close()
				if err != nil {
					os.RemoveAll(tmp)
					if ctx.Err() == nil {
						fail(fmt.Errorf("collect: episode %d (%s): %w", j.i, j.task, err))
					}
					continue
				}
				os.RemoveAll(final)
				if err := os.Rename(tmp, final); err != nil {
					fail(fmt.Errorf("collect: %w", err))
					continue
				}
				mu.Lock()
				results = append(results, res)
				done++
				d := done
				mu.Unlock()
				if o.Progress != nil {
					o.Progress(d, o.Episodes, res)
				}
			}
		}()
	}
	var names []string
feed:
	for i := 0; i < o.Episodes; i++ {
		t := o.Tasks[i%len(o.Tasks)]
		names = append(names, EpisodeDir(t, i))
		select {
		case jobs <- job{i, t}:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return CollectSummary{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return CollectSummary{}, fmt.Errorf("collect: interrupted after %d episodes: %w", len(results), err)
	}
	s := summarize(results)
	s.Skipped, s.Seed, s.TaskSeed, s.MaxSteps = skipped, o.Seed, o.TaskSeed, o.MaxSteps
	s.WallSeconds = time.Since(start).Seconds()
	s.EpisodeNames = names
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(o.Out, "collect_summary.json"), append(b, '\n')); err != nil {
		return s, fmt.Errorf("collect: %w", err)
	}
	return s, nil
}

// EpisodeRNG is the expert's RNG for episode i of a collection seeded with
// seed (both PCG words are SplitMix64-mixed so neighbouring episodes get
// unrelated streams).
func EpisodeRNG(seed uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix(seed), splitmix(seed^splitmix(uint64(i)+1))))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// complete reports whether dir holds a finished episode.
func complete(dir string) bool {
	for _, p := range []string{"agent_history/trajectory.json", "env_history/history.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return false
		}
	}
	return true
}

func summarize(rs []Result) CollectSummary {
	s := CollectSummary{Episodes: len(rs), PerTask: map[string]TaskSummary{}}
	for _, r := range rs {
		s.MeanReward += r.BestPosition
		s.MeanSteps += float64(r.Steps)
		ts := s.PerTask[r.Task]
		ts.Episodes++
		ts.MeanBestPosition += r.BestPosition
		ts.MeanBestRaw += r.BestRaw
		if len(r.Bugs) > 0 {
			ts.WithBug++
		}
		s.PerTask[r.Task] = ts
	}
	if len(rs) > 0 {
		s.MeanReward /= float64(len(rs))
		s.MeanSteps /= float64(len(rs))
	}
	for k, ts := range s.PerTask {
		ts.MeanBestPosition /= float64(ts.Episodes)
		ts.MeanBestRaw /= float64(ts.Episodes)
		s.PerTask[k] = ts
	}
	return s
}

// Table renders the summary as a small text table.
func (s CollectSummary) Table() string {
	var b strings.Builder
	names := make([]string, 0, len(s.PerTask))
	for k := range s.PerTask {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "%-20s %8s %14s %12s %9s\n", "task", "episodes", "best_position", "best_raw", "bug_fix")
	for _, k := range names {
		t := s.PerTask[k]
		fmt.Fprintf(&b, "%-20s %8d %14.3f %12.4f %9d\n", k, t.Episodes, t.MeanBestPosition, t.MeanBestRaw, t.WithBug)
	}
	fmt.Fprintf(&b, "%d episodes (%d already present), mean best position score %.3f, mean steps %.1f, %.1fs\n",
		s.Episodes, s.Skipped, s.MeanReward, s.MeanSteps, s.WallSeconds)
	return b.String()
}
