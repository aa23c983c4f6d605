package httpenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"smtrain/envbridge"
)

// ParseURLs splits a comma-separated server list ("http://A,http://B")
// into checked base URLs.
func ParseURLs(spec string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := normalizeURL(part)
		if err != nil {
			return nil, err
		}
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("httpenv: no server URL in %q", spec)
	}
	return out, nil
}

// Pool spreads episodes over several servers, round-robin. A server that
// fails with ErrServerGone is skipped for Cooldown (unless all are), so a
// dead machine costs the episodes that were running on it, not the
// rollout.
type Pool struct {
	urls []string
	co   ClientOptions
	// Cooldown is how long a server that went away is skipped (default 30 s).
	Cooldown time.Duration

	mu        sync.Mutex
	next      int
	deadUntil map[string]time.Time
}

// NewPool returns a pool over the comma-separated server list spec.
func NewPool(spec string, co ClientOptions) (*Pool, error) {
	urls, err := ParseURLs(spec)
	if err != nil {
		return nil, err
	}
	if co, err = co.withKeys(); err != nil {
		return nil, err
	}
	return &Pool{urls: urls, co: co, Cooldown: 30 * time.Second, deadUntil: map[string]time.Time{}}, nil
}

// URLs returns the servers of the pool.
func (p *Pool) URLs() []string { return append([]string(nil), p.urls...) }

// order returns the servers to try for the next episode: live ones in
// round-robin order, then those cooling down.
func (p *Pool) order() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var live, dead []string
	for i := range p.urls {
		u := p.urls[(p.next+i)%len(p.urls)]
		if now.Before(p.deadUntil[u]) {
			dead = append(dead, u)
		} else {
			live = append(live, u)
		}
	}
	p.next = (p.next + 1) % len(p.urls)
	return append(live, dead...)
}

func (p *Pool) markDead(u string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cd := p.Cooldown
	if cd <= 0 {
		cd = 30 * time.Second
	}
	p.deadUntil[u] = time.Now().Add(cd)
}

func (p *Pool) markAlive(u string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.deadUntil, u)
}

// Env returns an environment whose every Reset starts the episode on the
// next server of the pool (failing over to the others if creation fails
// because a server is gone or full). Steps are not failed over: an error
// wrapping ErrServerGone ends the episode.
func (p *Pool) Env(task string, opts envbridge.Options) *PoolEnv {
	return &PoolEnv{p: p, task: task, opts: opts}
}

// PoolEnv is an envbridge.Env on a Pool.
type PoolEnv struct {
	p    *Pool
	task string
	opts envbridge.Options

	mu  sync.Mutex
	cur *Client
}

var (
	_ envbridge.Env             = (*PoolEnv)(nil)
	_ envbridge.HistoryProvider = (*PoolEnv)(nil)
)

// Server returns the base URL of the current episode's server.
func (e *PoolEnv) Server() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return ""
	}
	return e.cur.BaseURL()
}

// Reset closes the previous episode's environment and creates a new one.
func (e *PoolEnv) Reset(ctx context.Context, seed int64) (envbridge.Observation, envbridge.Info, error) {
	e.mu.Lock()
	prev := e.cur
	e.cur = nil
	e.mu.Unlock()
	if prev != nil {
		_ = prev.Close()
	}
	var errs []error
	servers := e.p.order()
	for i, u := range servers {
		c, err := NewClient(u, e.task, e.opts, e.p.co)
		if err != nil {
			return nil, nil, err
		}
		cctx := ctx
		if i < len(servers)-1 {
			// another server can take the episode: do not wait for this
			// one to come back (ClientOptions.RetryFor)
			cctx = context.WithValue(ctx, noConnectRetry{}, true)
		}
		obs, info, err := c.Reset(cctx, seed)
		if err == nil {
			e.p.markAlive(u)
			e.mu.Lock()
			e.cur = c
			e.mu.Unlock()
			return obs, info, nil
		}
		if ctx.Err() != nil {
			return nil, nil, err
		}
		var ae *APIError
		switch {
		case errors.Is(err, ErrServerGone):
			e.p.markDead(u)
		case errors.As(err, &ae) && (ae.Code == CodeTooManyEnvs || ae.Code == CodeShuttingDown):
		default:
			return nil, nil, err // e.g. unknown task: the same everywhere
		}
		errs = append(errs, err)
	}
	return nil, nil, fmt.Errorf("httpenv: no server could start an episode: %w", errors.Join(errs...))
}

// Step forwards to the current server; ErrServerGone marks it dead.
func (e *PoolEnv) Step(ctx context.Context, a envbridge.Action) (envbridge.StepResult, error) {
	e.mu.Lock()
	c := e.cur
	e.mu.Unlock()
	if c == nil {
		return envbridge.StepResult{}, fmt.Errorf("httpenv: step before reset: %w", envbridge.ErrResetNeeded)
	}
	res, err := c.Step(ctx, a)
	if errors.Is(err, ErrServerGone) {
		e.p.markDead(c.BaseURL())
	}
	return res, err
}

// History returns the current episode's history.json.
func (e *PoolEnv) History() ([]byte, error) {
	e.mu.Lock()
	c := e.cur
	e.mu.Unlock()
	if c == nil {
		return nil, errors.New("httpenv: history before reset")
	}
	return c.History()
}

// Close deletes the current environment; idempotent.
func (e *PoolEnv) Close() error {
	e.mu.Lock()
	c := e.cur
	e.cur = nil
	e.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}
