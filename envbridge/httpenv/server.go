package httpenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"smtrain/envbridge"
	"smtrain/internal/apikey"
)

// ServerOptions configures a Server. Zero values mean defaults.
type ServerOptions struct {
	// MaxEnvs bounds the live environments (default 16); creating more
	// fails with 503 too_many_envs.
	MaxEnvs int
	// IdleTimeout closes environments without requests for this long
	// (default 30 minutes).
	IdleTimeout time.Duration
	// MaxBodyBytes bounds request bodies (default 8 MiB).
	MaxBodyBytes int64
	// Logf, when set, receives one line per notable event (env created,
	// closed, reaped, internal errors). It never receives stack traces.
	Logf func(format string, args ...any)
	// Keys, when set, are the API keys every route but /v1/healthz needs
	// (see auth.go).
	Keys *apikey.Keys
	// MaxEnvsPerKey bounds the environments of one key (default: MaxEnvs
	// split evenly over the keys when there are several).
	MaxEnvsPerKey int
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.MaxEnvs <= 0 {
		o.MaxEnvs = 16
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 8 << 20
	}
	return o
}

// Server serves the protocol for the environments of a envbridge.Registry.
type Server struct {
	reg  envbridge.Registry
	opts ServerOptions
	mux  *http.ServeMux

	mu         sync.Mutex
	envs       map[string]*entry
	pending    int         // creations in flight (count toward MaxEnvs)
	keyPending map[int]int // creations in flight per API key
	closed     bool

	stopReaper chan struct{}
	reaperDone chan struct{}
	now        func() time.Time
}

// entry is one live environment. mu serializes its calls.
type entry struct {
	mu       sync.Mutex
	env      envbridge.Env
	task     string
	opts     envbridge.Options
	key      int // number of the API key that created it (0: none)
	created  time.Time
	lastUsed time.Time            // guarded by Server.mu
	busy     int                  // requests using it, guarded by Server.mu
	budget   envbridge.StepBudget // steps used, against opts.MaxSteps
	done     bool
	closed   bool
}

// NewServer returns a server for reg. Call Close to release the
// environments and the idle reaper.
func NewServer(reg envbridge.Registry, opts ServerOptions) *Server {
	s := &Server{
		reg:        reg,
		opts:       opts.withDefaults(),
		envs:       map[string]*entry{},
		stopReaper: make(chan struct{}),
		reaperDone: make(chan struct{}),
		now:        time.Now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/healthz", s.healthz)
	mux.HandleFunc("GET /v1/tasks", s.tasks)
	mux.HandleFunc("POST /v1/envs", s.create)
	mux.HandleFunc("POST /v1/envs/{id}/step", s.step)
	mux.HandleFunc("GET /v1/envs/{id}/history", s.history)
	mux.HandleFunc("DELETE /v1/envs/{id}", s.delete)
	// A known path with another method is 405 with Allow, not 404.
	for path, allow := range map[string]string{"/v1/healthz": "GET", "/v1/tasks": "GET", "/v1/envs": "POST",
		"/v1/envs/{id}/step": "POST", "/v1/envs/{id}/history": "GET", "/v1/envs/{id}": "DELETE"} {
		mux.HandleFunc(path, methodNotAllowed(allow))
	}
	mux.HandleFunc("/", s.notFound)
	s.mux = mux
	if c, ok := reg.(envbridge.StaleCleaner); ok {
		removed, err := c.CleanStale()
		if len(removed) > 0 {
			s.logf("removed %d stale workspace(s) left by dead environment processes: %v", len(removed), removed)
		}
		if err != nil {
			s.logf("cleaning stale workspaces: %v", err)
		}
	}
	go s.reaper()
	return s
}

// Handler returns the HTTP handler (with panic recovery and JSON errors).
func (s *Server) Handler() http.Handler {
	inner := s.withAuth(s.mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.logf("internal error serving %s %s: %v", r.Method, r.URL.Path, p)
				writeError(w, http.StatusInternalServerError, CodeInternal, "internal server error")
			}
		}()
		inner.ServeHTTP(w, r)
	})
}

// Listen opens a TCP listener. An address without a host (":8080") binds
// the loopback interface, not all interfaces: serving beyond the machine
// needs an explicit host such as 0.0.0.0.
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("httpenv: listen address %q: %w", addr, err)
	}
	if host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpenv: %w", err)
	}
	return ln, nil
}

// Serve listens on addr (see Listen) and serves until ctx is done.
func (s *Server) Serve(ctx context.Context, addr string) error {
	ln, err := Listen(addr)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves on ln until ctx is done, then shuts down
// gracefully (in-flight requests get 10 s) and closes all environments.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("httpenv: serve: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		s.Close()
		return nil
	}
}

// Close closes every environment and stops the reaper. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	envs := s.envs
	s.envs = map[string]*entry{}
	s.mu.Unlock()
	close(s.stopReaper)
	<-s.reaperDone
	var errs []error
	for id, e := range envs {
		if err := s.closeEntry(id, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NumEnvs returns the number of live environments.
func (s *Server) NumEnvs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.envs)
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// reaper closes idle environments.
func (s *Server) reaper() {
	defer close(s.reaperDone)
	tick := s.opts.IdleTimeout / 4
	tick = min(max(tick, 50*time.Millisecond), time.Minute)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stopReaper:
			return
		case <-t.C:
			s.reapIdle()
		}
	}
}

func (s *Server) reapIdle() {
	now := s.now()
	s.mu.Lock()
	var idle []string
	var entries []*entry
	for id, e := range s.envs {
		if e.busy == 0 && now.Sub(e.lastUsed) > s.opts.IdleTimeout {
			idle = append(idle, id)
			entries = append(entries, e)
			delete(s.envs, id)
		}
	}
	s.mu.Unlock()
	for i, id := range idle {
		s.logf("env %s (%s) idle for more than %v: closed", id, entries[i].task, s.opts.IdleTimeout)
		_ = s.closeEntry(id, entries[i])
	}
}

// closeEntry closes an environment once its in-flight call finished.
func (s *Server) closeEntry(id string, e *entry) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("httpenv: env %s: panic in Close: %v", id, p)
			s.logf("%v", err)
		}
	}()
	return e.env.Close()
}

// acquire finds an env and marks it busy; release undoes it.
func (s *Server) acquire(id string) (*entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.envs[id]
	if ok {
		e.busy++
		e.lastUsed = s.now()
	}
	return e, ok
}

func (s *Server) release(e *entry) {
	s.mu.Lock()
	e.busy--
	e.lastUsed = s.now()
	s.mu.Unlock()
}

// Handlers.

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (s *Server) tasks(w http.ResponseWriter, r *http.Request) {
	var tasks []string
	if err := safeCall(func() error { tasks = s.reg.Tasks(); return nil }); err != nil {
		s.logf("tasks: %v", err)
		writeError(w, http.StatusInternalServerError, CodeInternal, "listing tasks failed")
		return
	}
	tasks = append([]string{}, tasks...)
	sort.Strings(tasks)
	writeJSON(w, http.StatusOK, map[string]any{"tasks": tasks})
}

// methodNotAllowed answers 405 for a known path, listing the method it
// takes.
func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, CodeMethod, fmt.Sprintf("%s %s: method not allowed (use %s)", r.Method, r.URL.Path, allow))
	}
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !s.decodeStrict(w, r, &req, createFields) {
		return
	}
	if req.Task == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "task is required")
		return
	}
	if msg := req.check(); msg != "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, msg)
		return
	}
	var tasks []string
	if err := safeCall(func() error { tasks = s.reg.Tasks(); return nil }); err != nil {
		s.logf("tasks: %v", err)
		writeError(w, http.StatusInternalServerError, CodeInternal, "listing tasks failed")
		return
	}
	if !slices.Contains(tasks, req.Task) {
		writeError(w, http.StatusNotFound, CodeUnknownTask, fmt.Sprintf("unknown task %q (GET /v1/tasks lists them)", req.Task))
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, CodeShuttingDown, "server is shutting down")
		return
	}
	if len(s.envs)+s.pending >= s.opts.MaxEnvs {
		n := len(s.envs) + s.pending
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, CodeTooManyEnvs, fmt.Sprintf("%d environments live, limit %d; DELETE finished ones", n, s.opts.MaxEnvs))
		return
	}
	key := apikey.KeyID(r.Context())
	if msg, full := s.keyFull(key); full {
		s.mu.Unlock()
		writeError(w, http.StatusTooManyRequests, CodeTooManyEnvs, msg)
		return
	}
	s.addPending(key, 1)
	s.mu.Unlock()
	unpend := func() { s.mu.Lock(); s.addPending(key, -1); s.mu.Unlock() }

	opts := envbridge.Options{Seed: req.Seed, MaxSteps: req.MaxSteps, TimeBudget: time.Duration(req.TimeBudgetS * float64(time.Second))}
	var env envbridge.Env
	err := safeCall(func() error {
		var err error
		env, err = s.reg.New(r.Context(), req.Task, opts)
		return err
	})
	if err == nil && env == nil {
		err = errors.New("registry returned no environment")
	}
	if err != nil {
		unpend()
		s.logf("create %s: %v", req.Task, err)
		writeError(w, http.StatusInternalServerError, CodeEnvError, "creating environment: "+oneLine(err.Error()))
		return
	}
	var obs envbridge.Observation
	var info envbridge.Info
	err = safeCall(func() error {
		var err error
		obs, info, err = env.Reset(r.Context(), req.Seed)
		return err
	})
	if err != nil {
		unpend()
		_ = safeCall(env.Close)
		s.logf("reset %s: %v", req.Task, err)
		writeError(w, http.StatusInternalServerError, CodeEnvError, "reset: "+oneLine(err.Error()))
		return
	}
	id := newID()
	now := s.now()
	e := &entry{env: env, task: req.Task, opts: opts, key: key, created: now, lastUsed: now}
	s.mu.Lock()
	s.addPending(key, -1)
	if s.closed {
		s.mu.Unlock()
		_ = safeCall(env.Close)
		writeError(w, http.StatusServiceUnavailable, CodeShuttingDown, "server is shutting down")
		return
	}
	s.envs[id] = e
	s.mu.Unlock()
	s.logf("env %s created%s: task %s seed %d max_steps %d time_budget %v", id, keyOf(r), req.Task, req.Seed, req.MaxSteps, opts.TimeBudget)
	writeJSON(w, http.StatusOK, createResponse{EnvID: id, Observation: sanitizeMap(obs), Info: sanitizeMap(info)})
}

func (s *Server) step(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req stepRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.Action == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "action is required")
		return
	}
	e, ok := s.acquireFor(r, id)
	if !ok {
		writeError(w, http.StatusNotFound, CodeUnknownEnv, fmt.Sprintf("unknown env %q (never created, deleted, or reaped after idling)", id))
		return
	}
	defer s.release(e)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		writeError(w, http.StatusNotFound, CodeUnknownEnv, fmt.Sprintf("env %q was closed", id))
		return
	}
	if e.done {
		writeError(w, http.StatusConflict, CodeEpisodeOver, "episode already terminated or truncated; create a new env")
		return
	}
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	var res envbridge.StepResult
	err := safeCall(func() error {
		var err error
		res, err = e.env.Step(r.Context(), envbridge.Action{Name: req.Action, Params: req.Params})
		return err
	})
	if err != nil {
		s.logf("env %s step %q: %v", id, req.Action, err)
		writeError(w, http.StatusInternalServerError, CodeEnvError, "step: "+oneLine(err.Error()))
		return
	}
	// Safety net for the episode limits: the step-budget rule
	// (envbridge.StepBudget, the one the local env and rollout apply) and
	// the time budget.
	e.budget.Max = e.opts.MaxSteps
	e.budget.Count(&res)
	if !res.Terminated && e.opts.TimeBudget > 0 && s.now().Sub(e.created) >= e.opts.TimeBudget {
		res.Truncated = true
	}
	if res.Terminated || res.Truncated {
		e.done = true
	}
	writeJSON(w, http.StatusOK, stepResponse{
		Observation: sanitizeMap(res.Obs),
		Reward:      finitePtr(res.Reward),
		Terminated:  res.Terminated,
		Truncated:   res.Truncated,
		Info:        sanitizeMap(res.Info),
	})
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e, ok := s.acquireFor(r, id)
	if !ok {
		writeError(w, http.StatusNotFound, CodeUnknownEnv, fmt.Sprintf("unknown env %q", id))
		return
	}
	defer s.release(e)
	e.mu.Lock()
	defer e.mu.Unlock()
	hp := findHistory(e.env)
	if hp == nil {
		writeError(w, http.StatusNotFound, CodeNoHistory, fmt.Sprintf("env of task %q does not provide a history", e.task))
		return
	}
	var b []byte
	err := safeCall(func() error {
		var err error
		b, err = hp.History()
		return err
	})
	if err != nil {
		s.logf("env %s history: %v", id, err)
		writeError(w, http.StatusInternalServerError, CodeEnvError, "history: "+oneLine(err.Error()))
		return
	}
	if !json.Valid(b) {
		// Python-style bare NaN/Infinity: hand it over as-is would break
		// strict JSON clients; report it instead of sending invalid JSON.
		writeError(w, http.StatusInternalServerError, CodeEnvError, "history is not valid JSON")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	e, ok := s.envs[id]
	ok = ok && owns(r, e)
	if ok {
		delete(s.envs, id)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, CodeUnknownEnv, fmt.Sprintf("unknown env %q", id))
		return
	}
	if err := s.closeEntry(id, e); err != nil {
		s.logf("env %s close: %v", id, err)
		writeError(w, http.StatusInternalServerError, CodeEnvError, "close: "+oneLine(err.Error()))
		return
	}
	s.logf("env %s (%s) deleted after %d steps", id, e.task, e.budget.Used)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// decode reads a JSON body with the size limit; on failure it writes the
// error response and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return s.decodeStrict(w, r, v, "")
}

// decodeStrict is decode that, when known is not empty, rejects fields
// other than the known ones (listed in the message), naming the field.
func (s *Server) decodeStrict(w http.ResponseWriter, r *http.Request, v any, known string) bool {
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	dec := json.NewDecoder(body)
	if known != "" {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case known != "" && strings.HasPrefix(err.Error(), "json: unknown field "):
			writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("unknown field %s in the request (known fields: %s)", strings.TrimPrefix(err.Error(), "json: unknown field "), known))
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes))
		case errors.Is(err, io.EOF):
			writeError(w, http.StatusBadRequest, CodeBadRequest, "empty request body (want a JSON object)")
		default:
			writeError(w, http.StatusBadRequest, CodeBadRequest, "invalid JSON body: "+oneLine(err.Error()))
		}
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "invalid JSON body: trailing data after the object")
		return false
	}
	return true
}

// findHistory finds a envbridge.HistoryProvider in env or the envs it wraps.
func findHistory(env envbridge.Env) envbridge.HistoryProvider {
	for range 32 {
		if env == nil {
			return nil
		}
		if hp, ok := env.(envbridge.HistoryProvider); ok {
			return hp
		}
		if u, ok := env.(interface{ Unwrap() envbridge.Env }); ok {
			env = u.Unwrap()
			continue
		}
		rv := reflect.ValueOf(env)
		for rv.Kind() == reflect.Pointer && !rv.IsNil() {
			rv = rv.Elem()
		}
		if rv.Kind() != reflect.Struct {
			return nil
		}
		f, ok := rv.Type().FieldByName("Env")
		if !ok || !f.Anonymous || !f.IsExported() {
			return nil
		}
		inner, ok := rv.FieldByIndex(f.Index).Interface().(envbridge.Env)
		if !ok {
			return nil
		}
		env = inner
	}
	return nil
}

// safeCall runs f, turning a panic into an error (no stack trace).
func safeCall(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: APIError{Code: CodeInternal, Message: "encoding response: " + oneLine(err.Error())}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: APIError{Code: code, Message: msg}})
}

func oneLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
