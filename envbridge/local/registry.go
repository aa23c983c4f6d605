package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"smtrain/envbridge"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
)

// Registry creates local environments by task name, over a folder of
// competitions or over the built-in tasks. It implements envbridge.Registry.
type Registry struct {
	// Sandbox, WorkRoot: see Options.
	Sandbox  sandbox.Config
	WorkRoot string
	// RunRoot, when set, keeps each environment's run folder as
	// RunRoot/<task>-<n> (MLE-Dojo layout); otherwise run folders are
	// temporary and removed on Close.
	RunRoot string

	dirs   map[string]string
	names  []string
	mu     sync.Mutex
	loaded map[string]*Task
	n      atomic.Int64
}

var (
	_ envbridge.Registry        = (*Registry)(nil)
	_ envbridge.HistoryProvider = (*Env)(nil)
)

// NewDirRegistry serves the competitions under root: every subfolder
// holding data/public (or root itself when it is a competition folder).
// Each task is loaded and checked now, so a broken folder is reported
// before serving.
func NewDirRegistry(root string) (*Registry, error) {
	r := &Registry{dirs: map[string]string{}, loaded: map[string]*Task{}}
	if isCompetition(root) {
		if err := r.add(root); err != nil {
			return nil, err
		}
		return r, nil
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("task root: %w", err)
	}
	for _, e := range ents {
		d := filepath.Join(root, e.Name())
		if e.IsDir() && isCompetition(d) {
			if err := r.add(d); err != nil {
				return nil, err
			}
		}
	}
	if len(r.names) == 0 {
		return nil, fmt.Errorf("task root %s: no competition folders (expected <root>/<comp>/data/public and data/private)", root)
	}
	return r, nil
}

// NewBuiltinRegistry materialises the built-in tasks (generated from seed)
// under cacheRoot and serves them.
func NewBuiltinRegistry(cacheRoot string, seed uint64) (*Registry, error) {
	if cacheRoot == "" {
		cacheRoot = tasks.CacheDir()
	}
	r := &Registry{dirs: map[string]string{}, loaded: map[string]*Task{}}
	for _, name := range tasks.Names() {
		d, err := tasks.Materialize(cacheRoot, name, seed)
		if err != nil {
			return nil, err
		}
		if err := r.add(d); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func isCompetition(d string) bool {
	st, err := os.Stat(filepath.Join(d, "data", "public"))
	return err == nil && st.IsDir()
}

func (r *Registry) add(dir string) error {
	t, err := LoadTask(dir)
	if err != nil {
		return err
	}
	if _, dup := r.dirs[t.Name]; dup {
		return fmt.Errorf("duplicate task name %q (%s)", t.Name, dir)
	}
	r.dirs[t.Name] = t.Dir
	r.loaded[t.Name] = t
	r.names = append(r.names, t.Name)
	sort.Strings(r.names)
	return nil
}

// Tasks lists the task names.
func (r *Registry) Tasks() []string { return append([]string(nil), r.names...) }

// Task returns the loaded task (name may carry a "builtin:" prefix).
func (r *Registry) Task(name string) (*Task, error) {
	name = strings.TrimPrefix(name, "builtin:")
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.loaded[name]
	if !ok {
		return nil, fmt.Errorf("unknown task %q (have %s)", name, strings.Join(r.names, ", "))
	}
	return t, nil
}

// New creates an environment for task with the budget of opts.
func (r *Registry) New(ctx context.Context, task string, opts envbridge.Options) (envbridge.Env, error) {
	return r.NewIn(ctx, task, opts, "")
}

// NewIn is New with the environment's run folder (where it writes
// env_history/history.json) set to runDir; "" chooses one as New does.
func (r *Registry) NewIn(ctx context.Context, task string, opts envbridge.Options, runDir string) (envbridge.Env, error) {
	t, err := r.Task(task)
	if err != nil {
		return nil, err
	}
	o := Options{MaxSteps: opts.MaxSteps, TimeBudget: opts.TimeBudget, Sandbox: r.Sandbox, WorkRoot: r.WorkRoot, RunDir: runDir}
	if r.RunRoot != "" && runDir == "" {
		for {
			d := filepath.Join(r.RunRoot, fmt.Sprintf("%s-%04d", t.Name, r.n.Add(1)))
			if _, err := os.Stat(d); os.IsNotExist(err) {
				o.RunDir = d
				break
			}
		}
	}
	return New(t, o)
}
