package httpenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"smtrain/envbridge"
	"smtrain/internal/apikey"
)

// ErrServerGone reports that the server could not be reached, dropped the
// connection, or no longer knows the environment this client created (it
// restarted or reaped it). The episode in progress is lost; other servers
// may still be fine. Test with errors.Is.
var ErrServerGone = errors.New("httpenv: environment server gone")

// ClientOptions configures a Client. Zero values mean defaults.
type ClientOptions struct {
	// HTTPClient is the transport (default: a dedicated client).
	HTTPClient *http.Client
	// Timeout bounds control calls: healthz, tasks, create, history,
	// delete (default 60 s; create includes the env's reset).
	Timeout time.Duration
	// StepTimeout bounds one step. Default: the step_timeout_s the server
	// announces when it creates the environment (the Python adapter: its
	// execution timeout, capped by the time budget, plus a minute), else
	// the episode's time budget plus 2 minutes, else 30 minutes.
	StepTimeout time.Duration
	// Retries is the number of extra attempts for idempotent calls
	// (healthz, tasks, history, delete) after a transport error or a
	// 502/503/504 (default 3; negative means none).
	Retries int
	// Backoff is the first retry delay, doubled per attempt up to 5 s
	// (default 200 ms).
	Backoff time.Duration
	// RetryFor bounds how long any call (steps and creates included) is
	// retried while the server cannot be connected to at all, e.g. during
	// a restart (default 20 s; negative: not retried). An environment the
	// restarted server no longer knows is still ErrServerGone.
	RetryFor time.Duration
	// Keys are the API keys sent to servers ("Authorization: Bearer",
	// never in URLs or errors). nil: apikey.LoadClient("") reads them from
	// $SMTRAIN_ENV_KEYS_FILE or $SMTRAIN_ENV_API_KEY (see auth.go).
	Keys *apikey.ClientKeys
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = 30 * time.Minute
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.RetryFor == 0 {
		o.RetryFor = 20 * time.Second
	}
	if o.RetryFor < 0 {
		o.RetryFor = 0
	}
	return o
}

// Client is an envbridge.Env backed by a server: Reset creates the
// environment on the server (deleting the previous one), Step posts
// actions, Close deletes it. Methods are safe for concurrent use but an
// episode is sequential by nature.
type Client struct {
	base string
	task string
	opts envbridge.Options
	co   ClientOptions

	mu          sync.Mutex
	envID       string
	closed      bool
	stepTimeout time.Duration
	// stepSet: ClientOptions.StepTimeout was given (not a default)
	stepSet bool
}

var (
	_ envbridge.Env             = (*Client)(nil)
	_ envbridge.HistoryProvider = (*Client)(nil)
)

// NewClient returns a client for one server without contacting it.
func NewClient(baseURL, task string, opts envbridge.Options, co ClientOptions) (*Client, error) {
	base, err := normalizeURL(baseURL)
	if err != nil {
		return nil, err
	}
	if co, err = co.withKeys(); err != nil {
		return nil, err
	}
	c := &Client{base: base, task: task, opts: opts, co: co.withDefaults()}
	c.stepTimeout, c.stepSet = c.co.StepTimeout, co.StepTimeout > 0
	if !c.stepSet && opts.TimeBudget > 0 {
		c.stepTimeout = opts.TimeBudget + 2*time.Minute
	}
	return c, nil
}

// Dial returns a client for task on the server at baseURL after checking
// that the server answers /v1/healthz (with retries). The environment is
// created by the first Reset. For several servers use NewPool.
func Dial(ctx context.Context, baseURL, task string, opts envbridge.Options, co ...ClientOptions) (*Client, error) {
	var o ClientOptions
	if len(co) > 0 {
		o = co[0]
	}
	if strings.Contains(baseURL, ",") {
		return nil, fmt.Errorf("httpenv: %q lists several servers; use NewPool", baseURL)
	}
	c, err := NewClient(baseURL, task, opts, o)
	if err != nil {
		return nil, err
	}
	if err := c.Healthz(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// normalizeURL checks an http(s) base URL and strips a trailing slash.
func normalizeURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("httpenv: bad server URL %q (want http://HOST:PORT)", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// BaseURL returns the server's base URL.
func (c *Client) BaseURL() string { return c.base }

// EnvID returns the server-side id of the current environment ("" before
// Reset or after Close).
func (c *Client) EnvID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.envID
}

// Healthz checks that the server answers.
func (c *Client) Healthz(ctx context.Context) error {
	var out struct {
		OK bool `json:"ok"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/healthz", nil, &out, true, c.co.Timeout); err != nil {
		return err
	}
	if !out.OK {
		return fmt.Errorf("httpenv: %s: healthz not ok", c.base)
	}
	return nil
}

// Tasks lists the server's tasks.
func (c *Client) Tasks(ctx context.Context) ([]string, error) {
	var out struct {
		Tasks []string `json:"tasks"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/tasks", nil, &out, true, c.co.Timeout); err != nil {
		return nil, err
	}
	return out.Tasks, nil
}

// Reset creates a fresh environment on the server with the given seed,
// deleting the client's previous one.
func (c *Client) Reset(ctx context.Context, seed int64) (envbridge.Observation, envbridge.Info, error) {
	c.mu.Lock()
	old := c.envID
	c.envID = ""
	c.closed = false
	c.mu.Unlock()
	if old != "" {
		_ = c.deleteEnv(ctx, old)
	}
	req := createRequest{Task: c.task, Seed: seed, MaxSteps: c.opts.MaxSteps, TimeBudgetS: c.opts.TimeBudget.Seconds()}
	var out createResponse
	if err := c.call(ctx, http.MethodPost, "/v1/envs", req, &out, false, c.co.Timeout); err != nil {
		return nil, nil, err
	}
	if out.EnvID == "" {
		return nil, nil, fmt.Errorf("httpenv: %s: create returned no env_id", c.base)
	}
	c.mu.Lock()
	c.envID = out.EnvID
	if s, ok := out.Info["step_timeout_s"].(float64); ok && s > 0 && s < 1e7 && !c.stepSet {
		c.stepTimeout = time.Duration(s * float64(time.Second))
	}
	c.mu.Unlock()
	return envbridge.Observation(out.Observation), envbridge.Info(out.Info), nil
}

// Step sends one action. It is never retried: a transport failure
// returns an error wrapping ErrServerGone, and so does a server that no
// longer knows the environment.
func (c *Client) Step(ctx context.Context, a envbridge.Action) (envbridge.StepResult, error) {
	id := c.EnvID()
	if id == "" {
		return envbridge.StepResult{}, fmt.Errorf("httpenv: step before reset: %w", envbridge.ErrResetNeeded)
	}
	params := a.Params
	if params == nil {
		params = map[string]any{}
	}
	var out stepResponse
	err := c.call(ctx, http.MethodPost, "/v1/envs/"+url.PathEscape(id)+"/step", stepRequest{Action: a.Name, Params: params}, &out, false, c.StepTimeout())
	if err != nil {
		return envbridge.StepResult{}, lostEnv(err)
	}
	res := envbridge.StepResult{
		Obs:        envbridge.Observation(out.Observation),
		Terminated: out.Terminated,
		Truncated:  out.Truncated,
		Info:       envbridge.Info(out.Info),
	}
	if out.Reward != nil {
		res.Reward = *out.Reward
	}
	if res.Obs == nil {
		res.Obs = envbridge.Observation{}
	}
	return res, nil
}

// StepTimeout is the bound on one step (see ClientOptions.StepTimeout).
func (c *Client) StepTimeout() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stepTimeout
}

// History returns the environment's MLE-Dojo history.json.
func (c *Client) History() ([]byte, error) {
	return c.HistoryContext(context.Background())
}

// HistoryContext is History with a context.
func (c *Client) HistoryContext(ctx context.Context) ([]byte, error) {
	id := c.EnvID()
	if id == "" {
		return nil, errors.New("httpenv: history before reset")
	}
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodGet, "/v1/envs/"+url.PathEscape(id)+"/history", nil, &raw, true, c.co.Timeout); err != nil {
		return nil, lostEnv(err)
	}
	return []byte(raw), nil
}

// Close deletes the environment on the server. It is idempotent; an
// environment the server already forgot counts as deleted.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	id := c.envID
	c.envID = ""
	c.mu.Unlock()
	if id == "" {
		return nil
	}
	// Best effort: a server that cannot be connected to is not waited for.
	return c.deleteEnv(context.WithValue(context.Background(), noConnectRetry{}, true), id)
}

// noConnectRetry, as a context key, turns off the RetryFor wait.
type noConnectRetry struct{}

func (c *Client) deleteEnv(ctx context.Context, id string) error {
	err := c.call(ctx, http.MethodDelete, "/v1/envs/"+url.PathEscape(id), nil, nil, true, c.co.Timeout)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == CodeUnknownEnv {
		return nil
	}
	return err
}

// lostEnv marks an unknown_env answer for an env this client created as
// ErrServerGone (the server restarted or reaped it).
func lostEnv(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == CodeUnknownEnv && !errors.Is(err, ErrServerGone) {
		return fmt.Errorf("%w: %w", ErrServerGone, err)
	}
	return err
}

// call performs one request, retrying idempotent ones with backoff.
func (c *Client) call(ctx context.Context, method, path string, in, out any, idempotent bool, timeout time.Duration) error {
	var body []byte
	if in != nil {
		var err error
		body, err = json.Marshal(in)
		if err != nil {
			return fmt.Errorf("httpenv: encoding %s %s: %w", method, path, err)
		}
	}
	// Idempotent calls are retried Retries times after a transport error
	// or a 502/503/504; any call whose connection could not even be made
	// (the request never reached a server: it is restarting, or gone) is
	// retried for up to RetryFor.
	retryFor := c.co.RetryFor
	if ctx.Value(noConnectRetry{}) != nil {
		retryFor = 0
	}
	deadline := time.Now().Add(retryFor)
	delay := c.co.Backoff
	var err error
	for i := 0; ; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("httpenv: %s %s%s: %w (after: %w)", method, c.base, path, ctx.Err(), err)
			case <-time.After(delay):
			}
			delay = min(2*delay, maxBackoff)
		}
		var retry bool
		retry, err = c.once(ctx, method, path, body, out, timeout)
		if err == nil || !retry {
			return err
		}
		if !(idempotent && i < c.co.Retries) && !(notConnected(err) && time.Now().Add(delay).Before(deadline)) {
			if notConnected(err) && retryFor > 0 {
				return fmt.Errorf("%w (retried for %v)", err, retryFor)
			}
			return err
		}
	}
}

// maxBackoff caps the delay between two retries.
const maxBackoff = 5 * time.Second

// notConnected reports a failure to connect: the request never reached a
// server, so even a step may be sent again.
func notConnected(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// once performs a single request; retry reports whether the failure is
// worth retrying for an idempotent call.
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any, timeout time.Duration) (retry bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(cctx, method, c.base+path, rd)
	if err != nil {
		return false, fmt.Errorf("httpenv: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if k := c.co.Keys.For(c.base); k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := c.co.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil { // the caller gave up
			return false, fmt.Errorf("httpenv: %s %s%s: %w", method, c.base, path, ctx.Err())
		}
		if cctx.Err() != nil { // our per-call timeout
			return true, fmt.Errorf("httpenv: %s %s%s: no answer within %v: %w", method, c.base, path, timeout, context.DeadlineExceeded)
		}
		return true, fmt.Errorf("%w: %s %s%s: %w", ErrServerGone, method, c.base, path, err)
	}
	defer resp.Body.Close()
	const maxResp = 256 << 20
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResp+1))
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("httpenv: %s %s%s: %w", method, c.base, path, ctx.Err())
		}
		return true, fmt.Errorf("%w: %s %s%s: reading response: %w", ErrServerGone, method, c.base, path, err)
	}
	if len(data) > maxResp {
		return false, fmt.Errorf("httpenv: %s %s%s: response larger than %d bytes", method, c.base, path, maxResp)
	}
	if resp.StatusCode >= 400 {
		ae := &APIError{Status: resp.StatusCode}
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
		} else {
			ae.Code = http.StatusText(resp.StatusCode)
			ae.Message = strings.TrimSpace(string(data))
			if len(ae.Message) > 300 {
				ae.Message = ae.Message[:300] + "..."
			}
		}
		retryable := resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable ||
			resp.StatusCode == http.StatusGatewayTimeout
		if ae.Code == CodeTooManyEnvs {
			retryable = false
		}
		if resp.StatusCode == http.StatusUnauthorized {
			ae.Message += unauthorizedHint(c.co.Keys.For(c.base) != "")
		}
		return retryable, fmt.Errorf("%s %s%s: %w", method, c.base, path, ae)
	}
	if out == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return false, fmt.Errorf("httpenv: %s %s%s: bad response JSON: %w", method, c.base, path, err)
	}
	return false, nil
}
