package envbridge

import (
	"context"
	"time"
)

// Registry creates environments by task name. The local environment
// (local.Registry) implements it; the HTTP server (httpenv.NewServer)
// serves any Registry and rollout plays over one (rollout.RegistrySpec).
type Registry interface {
	// Tasks lists the task names New accepts.
	Tasks() []string
	// New creates an environment for task. The returned Env is Reset by
	// the caller. The Registry should apply opts.MaxSteps and
	// opts.TimeBudget (the HTTP server also enforces them as a safety net).
	New(ctx context.Context, task string, opts Options) (Env, error)
}

// Options are the per-episode settings a Registry creates an environment
// with (over HTTP: the fields of POST /v1/envs).
type Options struct {
	Seed       int64
	MaxSteps   int           // 0: unlimited
	TimeBudget time.Duration // 0: unlimited
}

// StaleCleaner is implemented by registries whose environments keep
// state on the host (workspaces); the HTTP server calls CleanStale once at
// start to remove what environment processes that died left behind, and
// logs the names it returns.
type StaleCleaner interface {
	CleanStale() ([]string, error)
}

// HistoryProvider is implemented by environments that can return their
// MLE-Dojo history.json (the local environment, the HTTP client). The HTTP
// server serves it on GET /v1/envs/{id}/history and rollout copies it into
// the episode folder; the server also finds it through wrappers (an Env
// with an Unwrap() Env method, or a struct embedding an exported Env
// field, as the wrappers in wrappers.go do).
type HistoryProvider interface {
	History() ([]byte, error)
}
