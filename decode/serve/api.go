package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"smtrain/data"
)

// apiError is an OpenAI-style error: written as
// {"error": {"message", "type", "param", "code"}} with status Status.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

// badRequest returns a 400 invalid_request_error about param ("" for none).
func badRequest(param, code, format string, args ...any) *apiError {
	e := &apiError{Status: 400, Type: "invalid_request_error", Message: fmt.Sprintf(format, args...)}
	if param != "" {
		e.Param = &param
	}
	if code != "" {
		e.Code = &code
	}
	return e
}

// errorBody is the JSON envelope of an apiError.
type errorBody struct {
	Error *apiError `json:"error"`
}

// Message is one chat message of a request. Content is a string, null, or
// an array of content parts of which only {"type": "text"} is supported.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Name    string          `json:"name,omitempty"`
}

// stopField is OpenAI's stop: null, a string or an array of strings.
type stopField []string

func (s *stopField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*s = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = stopField{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return &fieldError{Field: "stop", Msg: fmt.Sprintf("invalid type for 'stop': expected a string or an array of strings, got %s", jsonKind(b))}
	}
	*s = many
	return nil
}

// seedField is a request's seed: any JSON integer in [-2^63, 2^64), used
// as its 64-bit pattern (so -1 and 18446744073709551615 are one seed).
// Clients send seeds as int64 (OpenAI's SDKs) or uint64; the seed a
// response reports (ResponseExt.Seed, the int64 of that pattern) is always
// accepted back.
type seedField uint64

func (s *seedField) UnmarshalJSON(b []byte) error {
	t := string(bytes.TrimSpace(b))
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		*s = seedField(n)
		return nil
	}
	if n, err := strconv.ParseUint(t, 10, 64); err == nil {
		*s = seedField(n)
		return nil
	}
	return &fieldError{Field: "seed", Msg: fmt.Sprintf("invalid 'seed': expected an integer in [-9223372036854775808, 18446744073709551615], got %s", t)}
}

// fieldError is a decoding error about one field, from a custom
// UnmarshalJSON.
type fieldError struct{ Field, Msg string }

func (e *fieldError) Error() string { return e.Msg }

// streamOptions is OpenAI's stream_options.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// responseFormat is OpenAI's response_format (only "text" is served).
type responseFormat struct {
	Type string `json:"type"`
}

// chatRequest is the body of POST /v1/chat/completions. Pointer fields are
// nil when absent or null. Fields not listed are ignored.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *countField     `json:"max_tokens"`
	MaxCompletionTokens *countField     `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Stop                stopField       `json:"stop"`
	Seed                *seedField      `json:"seed"`
	N                   *int            `json:"n"`
	Stream              *bool           `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	Logprobs            *bool           `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	Tools               json.RawMessage `json:"tools"`
	Functions           json.RawMessage `json:"functions"`
	ResponseFormat      *responseFormat `json:"response_format"`
	LogitBias           map[string]any  `json:"logit_bias"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
}

// params are a validated request.
type params struct {
	Messages     []data.Message
	MaxTokens    int  // completion tokens (after backspaces); 0 when not given
	MaxTokensSet bool // given by the client
	Temperature  float64
	Greedy       bool
	TopP         float64
	Stop         []string
	Seed         uint64
	SeedSet      bool
	N            int
	Stream       bool
	IncludeUsage bool
}

// limits bound what a request may ask for.
type limits struct {
	MaxTokens int // largest max_tokens accepted
	MaxN      int // largest n accepted
	Context   int // the model's context window
	// Model is the served model's id; other ids are a 404 unless AnyModel.
	Model    string
	AnyModel bool
}

// countField is a token count: any JSON integer, also in exponent form
// (1e12) and beyond the int range (saturated), so that a huge max_tokens
// meets the server's real limit instead of a number-format error.
type countField int

func (c *countField) UnmarshalJSON(b []byte) error {
	t := string(bytes.TrimSpace(b))
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		*c = countField(n)
		return nil
	}
	x, err := strconv.ParseFloat(t, 64)
	if err != nil || x != math.Trunc(x) {
		kind := jsonKind(b)
		if kind == "number" {
			kind = "number " + t
		}
		return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeOf(0)}
	}
	*c = countField(max(min(x, math.MaxInt64/2), math.MinInt64/2))
	return nil
}

// parseRequest decodes and validates a chat-completions body.
func parseRequest(body io.Reader, lim limits) (*params, *apiError) {
	raw, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{Status: 413, Type: "invalid_request_error", Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		}
		return nil, badRequest("", "", "could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, badRequest("", "", "empty request body: expected a JSON object")
	}
	var req chatRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&req); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("", "", "invalid JSON body: unexpected data after the top-level object")
	}
	if bytes.TrimSpace(raw)[0] != '{' {
		return nil, badRequest("", "", "invalid JSON body: expected an object")
	}
	return req.validate(lim)
}

// jsonError turns a decoding error into a 400 naming the field.
func jsonError(err error) *apiError {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var fe *fieldError
	switch {
	case errors.As(err, &fe):
		return badRequest(fe.Field, "invalid_type", "%s", fe.Msg)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return badRequest("", "", "invalid JSON body: expected an object, got %s", te.Value)
		}
		return badRequest(field, "invalid_type", "invalid type for '%s': expected %s, got %s", field, typeName(te), te.Value)
	case errors.As(err, &se):
		return badRequest("", "", "invalid JSON body at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "", "invalid JSON body: unexpected end of input")
	}
	return badRequest("", "", "invalid JSON body: %v", err)
}

// typeName names the Go type of a type error in JSON terms.
func typeName(te *json.UnmarshalTypeError) string {
	t := te.Type
	if t == nil {
		return "a valid value"
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

// jsonKind names the JSON kind of a raw value.
func jsonKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// isEmptyJSON reports whether a raw field is absent, null or an empty array.
func isEmptyJSON(b json.RawMessage) bool {
	s := strings.TrimSpace(string(b))
	return s == "" || s == "null" || s == "[]"
}

// maxStop is OpenAI's limit on stop sequences.
const maxStop = 4

func (r *chatRequest) validate(lim limits) (*params, *apiError) {
	p := &params{Temperature: 1, N: 1}
	if r.Messages == nil {
		return nil, badRequest("messages", "missing_required_parameter", "missing required parameter: 'messages'")
	}
	if len(r.Messages) == 0 {
		return nil, badRequest("messages", "empty_array", "'messages' must contain at least one message")
	}
	for i, m := range r.Messages {
		msg, err := convertMessage(i, m)
		if err != nil {
			return nil, err
		}
		p.Messages = append(p.Messages, msg)
	}
	switch {
	case r.MaxTokens != nil && r.MaxCompletionTokens != nil && *r.MaxTokens != *r.MaxCompletionTokens:
		return nil, badRequest("max_tokens", "", "max_tokens (%d) and max_completion_tokens (%d) disagree", *r.MaxTokens, *r.MaxCompletionTokens)
	case r.MaxCompletionTokens != nil:
		p.MaxTokens, p.MaxTokensSet = int(*r.MaxCompletionTokens), true
	case r.MaxTokens != nil:
		p.MaxTokens, p.MaxTokensSet = int(*r.MaxTokens), true
	}
	if r.Model != "" && r.Model != lim.Model && !lim.AnyModel {
		e := badRequest("model", "model_not_found", "the model %q does not exist: this server serves %q (omit model, or run serve with -any_model to answer every model name)", r.Model, lim.Model)
		e.Status = 404
		return nil, e
	}
	if p.MaxTokensSet && p.MaxTokens < 1 {
		return nil, badRequest("max_tokens", "invalid_value", "max_tokens must be at least 1, got %d", p.MaxTokens)
	}
	if p.MaxTokensSet && p.MaxTokens > lim.MaxTokens {
		return nil, badRequest("max_tokens", "invalid_value", "max_tokens is %d but this model's context window is %d tokens, so a reply has at most %d (fewer with a longer prompt); lower max_tokens, or run serve with -clamp_max_tokens to lower it to fit", p.MaxTokens, lim.Context, lim.MaxTokens)
	}
	if r.Temperature != nil {
		t := *r.Temperature
		if !(t >= 0 && t <= 2) {
			return nil, badRequest("temperature", "invalid_value", "temperature must be in [0, 2], got %v", t)
		}
		p.Temperature = t
	}
	if r.TopP != nil {
		tp := *r.TopP
		if !(tp >= 0 && tp <= 1) {
			return nil, badRequest("top_p", "invalid_value", "top_p must be in [0, 1], got %v", tp)
		}
		p.TopP = tp
	}
	// temperature 0 (or top_p 0: only the best action) is greedy decoding.
	if p.Temperature < 1e-6 || (r.TopP != nil && p.TopP == 0) {
		p.Greedy = true
	}
	if len(r.Stop) > maxStop {
		return nil, badRequest("stop", "invalid_value", "at most %d stop sequences are allowed, got %d", maxStop, len(r.Stop))
	}
	for i, s := range r.Stop {
		if s == "" {
			return nil, badRequest("stop", "invalid_value", "stop[%d] is an empty string", i)
		}
	}
	p.Stop = r.Stop
	if r.Seed != nil {
		p.Seed, p.SeedSet = uint64(*r.Seed), true
	}
	if r.N != nil {
		if *r.N < 1 || *r.N > lim.MaxN {
			return nil, badRequest("n", "invalid_value", "n must be in [1, %d], got %d", lim.MaxN, *r.N)
		}
		p.N = *r.N
	}
	if r.Stream != nil {
		p.Stream = *r.Stream
	}
	if r.StreamOptions != nil {
		if !p.Stream {
			return nil, badRequest("stream_options", "invalid_value", "stream_options is only allowed when stream is true")
		}
		p.IncludeUsage = r.StreamOptions.IncludeUsage
	}
	// Features this server cannot honour are refused, not silently ignored.
	switch {
	case r.Logprobs != nil && *r.Logprobs, r.TopLogprobs != nil && *r.TopLogprobs > 0:
		return nil, badRequest("logprobs", "unsupported_parameter", "logprobs are not supported by this server")
	case !isEmptyJSON(r.Tools):
		return nil, badRequest("tools", "unsupported_parameter", "tools are not supported by this server (the policy answers in plain text)")
	case !isEmptyJSON(r.Functions):
		return nil, badRequest("functions", "unsupported_parameter", "functions are not supported by this server")
	case r.ResponseFormat != nil && r.ResponseFormat.Type != "" && r.ResponseFormat.Type != "text":
		return nil, badRequest("response_format", "unsupported_parameter", "response_format %q is not supported (only \"text\")", r.ResponseFormat.Type)
	case len(r.LogitBias) > 0:
		return nil, badRequest("logit_bias", "unsupported_parameter", "logit_bias is not supported by this server")
	case r.PresencePenalty != nil && *r.PresencePenalty != 0:
		return nil, badRequest("presence_penalty", "unsupported_parameter", "presence_penalty is not supported by this server (only 0)")
	case r.FrequencyPenalty != nil && *r.FrequencyPenalty != 0:
		return nil, badRequest("frequency_penalty", "unsupported_parameter", "frequency_penalty is not supported by this server (only 0)")
	}
	return p, nil
}

// convertMessage maps an OpenAI message onto the training template's roles:
// system and developer -> system, user, tool and function -> user (an
// observation), assistant -> assistant.
func convertMessage(i int, m chatMessage) (data.Message, *apiError) {
	param := fmt.Sprintf("messages[%d]", i)
	var role string
	switch m.Role {
	case "system", "developer":
		role = data.RoleSystem
	case "user", "tool", "function":
		role = data.RoleUser
	case "assistant":
		role = data.RoleAssistant
	case "":
		return data.Message{}, badRequest(param+".role", "missing_required_parameter", "%s: missing required field 'role'", param)
	default:
		return data.Message{}, badRequest(param+".role", "invalid_value", "%s: unknown role %q (want system, developer, user, assistant or tool)", param, m.Role)
	}
	text, err := contentText(m.Content)
	if err != nil {
		return data.Message{}, badRequest(param+".content", "invalid_value", "%s.content: %v", param, err)
	}
	if text == nil {
		if role != data.RoleAssistant {
			return data.Message{}, badRequest(param+".content", "missing_required_parameter", "%s: missing required field 'content'", param)
		}
		empty := ""
		text = &empty
	}
	return data.Message{Role: role, Content: *text}, nil
}

// contentText returns the text of a message content: a string, null (nil)
// or an array of text parts (joined with newlines).
func contentText(raw json.RawMessage) (*string, error) {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, err
		}
		return &s, nil
	case '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return nil, errors.New("expected a string or an array of content parts")
		}
		var texts []string
		for j, part := range parts {
			if part.Type != "text" {
				return nil, fmt.Errorf("part %d has type %q: only text parts are supported", j, part.Type)
			}
			if part.Text == nil {
				return nil, fmt.Errorf("part %d: missing 'text'", j)
			}
			texts = append(texts, *part.Text)
		}
		s := strings.Join(texts, "\n")
		return &s, nil
	}
	return nil, fmt.Errorf("expected a string or an array of content parts, got %s", jsonKind(b))
}
