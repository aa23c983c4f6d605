// Package httpenv carries environments over HTTP (DESIGN 6.4):
//
//	GET    /v1/healthz                       -> {"ok": true}
//	GET    /v1/tasks                         -> {"tasks": [name, ...]}
//	POST   /v1/envs      {task, seed, max_steps, time_budget_s}
//	                                         -> {env_id, observation, info}
//	POST   /v1/envs/{id}/step {action, params}
//	                      -> {observation, reward, terminated, truncated, info}
//	GET    /v1/envs/{id}/history             -> MLE-Dojo history.json
//	DELETE /v1/envs/{id}                     -> {"ok": true}
//
// Errors are JSON {"error": {"code", "message"}} with a 4xx/5xx status,
// never a stack trace. Non-finite numbers in observations, info and reward
// are sent as null. A create request with a field other than the four
// above is refused (400, naming the field); a known path asked with
// another method is 405 with an Allow header.
//
// Server serves any envbridge.Registry; Client is an envbridge.Env
// talking to such a server (or to the Python adapter for a real MLE-Dojo,
// which speaks the same protocol); Pool spreads episodes over several
// servers.
package httpenv

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"
)

// Wire types.

type createRequest struct {
	Task        string  `json:"task"`
	Seed        int64   `json:"seed"`
	MaxSteps    int     `json:"max_steps"`
	TimeBudgetS float64 `json:"time_budget_s"`
}

// createFields lists createRequest's fields for the unknown-field error.
const createFields = "task, seed, max_steps, time_budget_s"

// maxTimeBudgetS bounds time_budget_s (about 31 years).
const maxTimeBudgetS = 1e9

// check returns the problem with the request's limits ("" when none).
func (r createRequest) check() string {
	switch {
	case r.MaxSteps < 0:
		return fmt.Sprintf("max_steps must be >= 0 (0: unlimited), got %d", r.MaxSteps)
	case r.TimeBudgetS < 0 || r.TimeBudgetS > maxTimeBudgetS || math.IsNaN(r.TimeBudgetS):
		return fmt.Sprintf("time_budget_s must be between 0 (unlimited) and %g seconds, got %g", float64(maxTimeBudgetS), r.TimeBudgetS)
	}
	return ""
}

type createResponse struct {
	EnvID       string         `json:"env_id"`
	Observation map[string]any `json:"observation"`
	Info        map[string]any `json:"info"`
}

type stepRequest struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params"`
}

type stepResponse struct {
	Observation map[string]any `json:"observation"`
	Reward      *float64       `json:"reward"` // null when not finite
	Terminated  bool           `json:"terminated"`
	Truncated   bool           `json:"truncated"`
	Info        map[string]any `json:"info"`
}

type errorBody struct {
	Error APIError `json:"error"`
}

// APIError is an error response of the protocol.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("httpenv: %s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// Error codes.
const (
	CodeBadRequest     = "bad_request"
	CodeTooLarge       = "request_too_large"
	CodeNotFound       = "not_found"
	CodeMethod         = "method_not_allowed"
	CodeUnknownTask    = "unknown_task"
	CodeUnknownEnv     = "unknown_env"
	CodeTooManyEnvs    = "too_many_envs"
	CodeEpisodeOver    = "episode_over"
	CodeEnvError       = "env_error"
	CodeNoHistory      = "history_unsupported"
	CodeInternal       = "internal"
	CodeShuttingDown   = "shutting_down"
	CodeServiceTimeout = "timeout"
)

// sanitize returns a JSON-safe copy of v: NaN and ±Inf become nil,
// named map and slice types become map[string]any and []any. Values the
// encoder cannot handle otherwise are rendered with %v.
func sanitize(v any) any {
	return sanitizeValue(reflect.ValueOf(v), 0)
}

func sanitizeValue(rv reflect.Value, depth int) any {
	if !rv.IsValid() {
		return nil
	}
	if depth > 100 {
		return "<too deep>"
	}
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	case reflect.Bool:
		return rv.Bool()
	case reflect.String:
		return rv.String()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint()
	case reflect.Interface, reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		if m, ok := rv.Interface().(json.Marshaler); ok {
			return jsonRoundTrip(m)
		}
		return sanitizeValue(rv.Elem(), depth+1)
	case reflect.Map:
		if rv.IsNil() {
			return nil
		}
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			k := it.Key()
			var ks string
			if k.Kind() == reflect.String {
				ks = k.String()
			} else {
				ks = fmt.Sprint(k.Interface())
			}
			out[ks] = sanitizeValue(it.Value(), depth+1)
		}
		return out
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return jsonRoundTrip(rv.Interface()) // base64, as encoding/json does
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = sanitizeValue(rv.Index(i), depth+1)
		}
		return out
	case reflect.Struct:
		if t, ok := rv.Interface().(time.Time); ok {
			return t.Format(time.RFC3339Nano)
		}
		return jsonRoundTrip(rv.Interface())
	}
	return fmt.Sprint(rv.Interface())
}

// jsonRoundTrip encodes and decodes v; on failure it returns v formatted
// with %v.
func jsonRoundTrip(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Sprint(v)
	}
	return out
}

// sanitizeMap sanitizes a map-shaped value, returning an empty map for nil.
func sanitizeMap(v any) map[string]any {
	if m, ok := sanitize(v).(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

func finitePtr(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}
