package httpenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"smtrain/envbridge"
	"smtrain/internal/apikey"
)

// Authentication (internal/apikey): a Server with ServerOptions.Keys
// needs "Authorization: Bearer <key>" on every route but GET /v1/healthz;
// a missing or wrong key is a 401 {"error": {"code": "unauthorized"}}.
// An environment belongs to the key that created it: another key gets
// unknown_env for it. Clients send ClientOptions.Keys' key for their
// server.

// CodeUnauthorized is the error code of a request without a valid key.
const CodeUnauthorized = "unauthorized"

// withAuth puts h behind the server's keys (h itself when it has none).
func (s *Server) withAuth(h http.Handler) http.Handler {
	public := func(r *http.Request) bool {
		return r.URL.Path == "/v1/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	}
	deny := func(w http.ResponseWriter, r *http.Request, msg string) {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, msg)
	}
	return s.opts.Keys.Middleware(h, public, deny, s.logf)
}

// keyLimit is the most environments one key may hold (live and being
// created): ServerOptions.MaxEnvsPerKey, else MaxEnvs split evenly over
// the keys (rounded up) when there are several, else no per-key limit (0).
func (s *Server) keyLimit() int {
	if s.opts.MaxEnvsPerKey > 0 {
		return s.opts.MaxEnvsPerKey
	}
	if n := s.opts.Keys.Len(); n > 1 {
		return (s.opts.MaxEnvs + n - 1) / n
	}
	return 0
}

// keyFull reports, with the message of the refusal, whether the key of
// the request has its share of environments. The caller holds s.mu.
func (s *Server) keyFull(key int) (string, bool) {
	lim := s.keyLimit()
	if lim <= 0 || key == 0 {
		return "", false
	}
	n := s.keyPending[key]
	for _, e := range s.envs {
		if e.key == key {
			n++
		}
	}
	if n < lim {
		return "", false
	}
	return fmt.Sprintf("this API key holds %d environments, its limit is %d (of %d on the server); DELETE finished ones", n, lim, s.opts.MaxEnvs), true
}

// addPending counts an environment creation of key in flight (d = 1) or
// done (d = -1). The caller holds s.mu.
func (s *Server) addPending(key, d int) {
	s.pending += d
	if s.keyPending == nil {
		s.keyPending = map[int]int{}
	}
	s.keyPending[key] += d
	if s.keyPending[key] <= 0 {
		delete(s.keyPending, key)
	}
}

// owns reports whether the request's key created e (always true without
// keys).
func owns(r *http.Request, e *entry) bool {
	return e.key == apikey.KeyID(r.Context())
}

// acquireFor is acquire for the request's key: another key's environment
// is not found.
func (s *Server) acquireFor(r *http.Request, id string) (*entry, bool) {
	e, ok := s.acquire(id)
	if ok && !owns(r, e) {
		s.release(e)
		return nil, false
	}
	return e, ok
}

// keyOf names the request's key in log lines ("" without keys): its
// number, never the key.
func keyOf(r *http.Request) string {
	if id := apikey.KeyID(r.Context()); id > 0 {
		return fmt.Sprintf(" (key %d)", id)
	}
	return ""
}

// withKeys fills in o.Keys from the environment when it is nil.
func (o ClientOptions) withKeys() (ClientOptions, error) {
	if o.Keys != nil {
		return o, nil
	}
	k, err := apikey.LoadClient("")
	if err != nil {
		return o, fmt.Errorf("httpenv: %w", err)
	}
	o.Keys = k
	return o, nil
}

// unauthorizedHint completes a 401's message with how to set the key.
func unauthorizedHint(sent bool) string {
	if sent {
		return " (the key sent for this server is not one of its keys; check -env_key_file, $" + apikey.EnvKeysFile + " or $" + apikey.EnvKey + ")"
	}
	return " (no key was sent for this server: give one with -env_key_file, $" + apikey.EnvKeysFile + " or $" + apikey.EnvKey + ")"
}

// CheckKeys asks every server of the pool for its task list with the
// pool's key for it and returns the authentication failures (401), each
// naming its server, so that a missing or wrong key stops a rollout before
// its first episode instead of failing every episode. A server that
// cannot be reached is not reported: the pool skips it while others work.
func (p *Pool) CheckKeys(ctx context.Context) error {
	co := p.co
	co.Retries, co.RetryFor = -1, -1
	var errs []error
	for _, u := range p.urls {
		c, err := NewClient(u, "", envbridge.Options{}, co)
		if err != nil {
			return err
		}
		_, err = c.Tasks(ctx)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
