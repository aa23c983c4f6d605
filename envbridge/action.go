package envbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Action names of MLE-Dojo's KaggleEnvironment.
const (
	ActRequestInfo  = "request_info"
	ActValidateCode = "validate_code"
	ActExecuteCode  = "execute_code"
	ActReset        = "reset"
	ActGetHistory   = "get_history"
	// ActInvalid marks an action that could not be parsed or validated; see
	// InvalidAction. Environments never receive it when wrapped with
	// InvalidActionAsObservation.
	ActInvalid = "invalid_action"
)

// InfoTypes are the accepted values of request_info's info_type.
var InfoTypes = []string{"overview", "sample_submission", "data_structure", "data_path", "output_path", "name", "metadata", "all"}

// ActionErrorKind classifies why a model output is not a valid action.
type ActionErrorKind string

// Kinds of ActionError.
const (
	ErrKindParse         ActionErrorKind = "parse"          // no JSON object found / broken JSON
	ErrKindUnknownAction ActionErrorKind = "unknown_action" // "action" missing or not one of the five
	ErrKindParams        ActionErrorKind = "invalid_params" // params missing or of the wrong shape
)

// ActionError reports a model output that is not a valid MLE-Dojo action.
type ActionError struct {
	Kind ActionErrorKind
	Msg  string
}

func (e *ActionError) Error() string { return string(e.Kind) + ": " + e.Msg }

// maxCandidates and maxAttempts bound the work ParseAction does on
// pathological input (each failed decode may scan to the end of the text).
const (
	maxCandidates = 64
	maxAttempts   = 64
)

// ParseAction extracts an MLE-Dojo action from model text: prose followed
// by a fenced ```json block holding {"action": "...", "params": {...}}. A
// bare JSON object (no fence) is accepted too. When several candidates are
// present the last valid one wins; when none is valid the error describes
// the last candidate that parsed as JSON (or a parse error if none did).
// JSON strings with raw newlines or tabs (a common LLM mistake) are
// repaired before giving up.
func ParseAction(text string) (Action, error) {
	a, err := parseCandidates(fencedCandidates(text))
	if err == nil {
		return a, nil
	}
	if b, err2 := parseCandidates(bareCandidates(text)); err2 == nil {
		return b, nil
	} else if err == nil || errNoCandidates(err) {
		err = err2
	}
	if errNoCandidates(err) {
		if strings.Contains(text, "{") {
			return Action{}, &ActionError{ErrKindParse, "no complete JSON object found in the response (expected a ```json block with {\"action\": ..., \"params\": {...}})"}
		}
		return Action{}, &ActionError{ErrKindParse, "no JSON object found in the response (expected a ```json block with {\"action\": ..., \"params\": {...}})"}
	}
	return Action{}, err
}

var errNone = &ActionError{ErrKindParse, "no candidates"}

func errNoCandidates(err error) bool { return err == error(errNone) }

// parseCandidates returns the last candidate that is a valid action, else
// the most informative error.
func parseCandidates(cands []string) (Action, error) {
	if len(cands) == 0 {
		return Action{}, errNone
	}
	var lastErr error
	for i := len(cands) - 1; i >= 0; i-- {
		obj, err := decodeObject(cands[i])
		if err != nil {
			if lastErr == nil {
				lastErr = err
			}
			continue
		}
		a, err := actionFromObject(obj)
		if err == nil {
			return a, nil
		}
		var ae *ActionError
		if lastErr == nil || (errors.As(lastErr, &ae) && ae.Kind == ErrKindParse) {
			lastErr = err
		}
	}
	return Action{}, lastErr
}

// fencedCandidates returns the text following each ```json (or bare ```)
// fence opener, up to the end of the input: the JSON decoder stops at the
// end of the first value, so a closing fence inside a code string cannot
// cut the object short.
func fencedCandidates(text string) []string {
	var out []string
	rest := text
	off := 0
	for len(out) < maxCandidates {
		i := strings.Index(rest, "```")
		if i < 0 {
			break
		}
		start := i + 3
		body := rest[start:]
		// Optional language tag on the fence line.
		nl := strings.IndexByte(body, '\n')
		tag := body
		if nl >= 0 {
			tag = body[:nl]
		}
		tag = strings.TrimSpace(tag)
		switch {
		case strings.EqualFold(tag, "json") && nl >= 0:
			out = append(out, body[nl+1:])
		case tag == "" && nl >= 0 && strings.HasPrefix(strings.TrimSpace(body[nl+1:]), "{"):
			out = append(out, body[nl+1:])
		}
		// Skip past the closing fence of this block, if any.
		j := strings.Index(body, "```")
		if j < 0 {
			break
		}
		off += start + j + 3
		rest = text[off:]
	}
	return out
}

// bareCandidates returns suffixes of text starting at a '{' that begins a
// top-level object, scanning left to right and skipping over objects that
// decode.
func bareCandidates(text string) []string {
	var out []string
	attempts := 0
	for i := 0; i < len(text) && len(out) < maxCandidates && attempts < maxAttempts; attempts++ {
		j := strings.IndexByte(text[i:], '{')
		if j < 0 {
			break
		}
		i += j
		dec := json.NewDecoder(strings.NewReader(text[i:]))
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == nil {
			out = append(out, text[i:])
			i += int(dec.InputOffset())
			continue
		}
		if !strings.Contains(err.Error(), "in string literal") {
			i++
			continue
		}
		if fixed := repairJSONStrings(text[i:]); fixed != text[i:] {
			d2 := json.NewDecoder(strings.NewReader(fixed))
			if err := d2.Decode(&raw); err == nil {
				out = append(out, text[i:])
			}
		}
		i++
	}
	return out
}

// decodeObject decodes the first JSON value of s, which must be an object.
func decodeObject(s string) (map[string]any, error) {
	obj, err := decodeFirst(s)
	if err == nil {
		return obj, nil
	}
	if strings.Contains(err.Error(), "in string literal") {
		if fixed := repairJSONStrings(s); fixed != s {
			if o2, err2 := decodeFirst(fixed); err2 == nil {
				return o2, nil
			}
		}
	}
	return nil, &ActionError{ErrKindParse, "invalid JSON: " + err.Error()}
}

func decodeFirst(s string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected a JSON object, got %s", jsonKind(v))
	}
	return obj, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

// repairJSONStrings escapes raw control characters (newline, carriage
// return, tab) that appear inside JSON string literals.
func repairJSONStrings(s string) string {
	var b bytes.Buffer
	in, esc, changed := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if in {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				in = false
			case c == '\n':
				b.WriteString(`\n`)
				changed = true
				continue
			case c == '\r':
				b.WriteString(`\r`)
				changed = true
				continue
			case c == '\t':
				b.WriteString(`\t`)
				changed = true
				continue
			}
		} else if c == '"' {
			in = true
		}
		b.WriteByte(c)
	}
	if !changed {
		return s
	}
	return b.String()
}

// actionFromObject validates a decoded {"action", "params"} object.
func actionFromObject(obj map[string]any) (Action, error) {
	rawName, ok := obj["action"]
	if !ok {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return Action{}, &ActionError{ErrKindUnknownAction, fmt.Sprintf("the JSON object has no \"action\" key (keys: %s)", strings.Join(keys, ", "))}
	}
	name, ok := rawName.(string)
	if !ok {
		return Action{}, &ActionError{ErrKindUnknownAction, fmt.Sprintf("\"action\" must be a string, got %s", jsonKind(rawName))}
	}
	params := map[string]any{}
	if rp, ok := obj["params"]; ok && rp != nil {
		p, ok := rp.(map[string]any)
		if !ok {
			return Action{}, &ActionError{ErrKindParams, fmt.Sprintf("\"params\" must be an object, got %s", jsonKind(rp))}
		}
		params = normalizeNumbers(p).(map[string]any)
	}
	a := Action{Name: name, Params: params}
	if err := ValidateAction(a); err != nil {
		return Action{}, err
	}
	return a, nil
}

// normalizeNumbers turns json.Number values into float64.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return t.String()
		}
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeNumbers(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = normalizeNumbers(x)
		}
		return t
	}
	return v
}

// ValidateAction checks an action's name and parameters against MLE-Dojo's
// action set. It returns an *ActionError.
func ValidateAction(a Action) error {
	switch a.Name {
	case ActRequestInfo:
		v, ok := a.Params["info_type"]
		if !ok {
			return &ActionError{ErrKindParams, "request_info needs params.info_type, one of: " + strings.Join(InfoTypes, ", ")}
		}
		s, ok := v.(string)
		if !ok {
			return &ActionError{ErrKindParams, fmt.Sprintf("params.info_type must be a string, got %s", jsonKind(v))}
		}
		for _, t := range InfoTypes {
			if s == t {
				return nil
			}
		}
		return &ActionError{ErrKindParams, fmt.Sprintf("invalid info_type %q, must be one of: %s", s, strings.Join(InfoTypes, ", "))}
	case ActValidateCode, ActExecuteCode:
		v, ok := a.Params["code"]
		if !ok {
			return &ActionError{ErrKindParams, a.Name + " needs params.code (a string of Python code)"}
		}
		s, ok := v.(string)
		if !ok {
			return &ActionError{ErrKindParams, fmt.Sprintf("params.code must be a string, got %s", jsonKind(v))}
		}
		if strings.TrimSpace(s) == "" {
			return &ActionError{ErrKindParams, "params.code is empty"}
		}
		return nil
	case ActReset, ActGetHistory:
		return nil
	case "":
		return &ActionError{ErrKindUnknownAction, "\"action\" is empty; must be one of: request_info, validate_code, execute_code, reset, get_history"}
	}
	return &ActionError{ErrKindUnknownAction, fmt.Sprintf("unknown action %q; must be one of: request_info, validate_code, execute_code, reset, get_history", a.Name)}
}

// InvalidAction wraps an unparseable or invalid model output as an Action
// named ActInvalid, so it can travel through Env.Step to the
// InvalidActionAsObservation wrapper, which answers it with an error
// observation.
func InvalidAction(raw string, err error) Action {
	msg := "invalid action"
	if err != nil {
		msg = err.Error()
	}
	return Action{Name: ActInvalid, Params: map[string]any{"error": msg, "raw": raw}}
}

// ActionFromText parses text and returns either the parsed action or an
// InvalidAction carrying the parse error (which is also returned).
func ActionFromText(text string) (Action, error) {
	a, err := ParseAction(text)
	if err != nil {
		return InvalidAction(text, err), err
	}
	return a, nil
}

// FormatAction renders an action in MLE-Dojo's agent format: prose, a blank
// line, then a fenced ```json block with 4-space indentation, as in the real
// trajectories.
func FormatAction(prose string, a Action) string {
	type wire struct {
		Action string         `json:"action"`
		Params map[string]any `json:"params"`
	}
	p := a.Params
	if p == nil {
		p = map[string]any{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(wire{a.Name, p}); err != nil {
		// Params come from our own code; fall back to a minimal block.
		buf.Reset()
		fmt.Fprintf(&buf, "{\"action\": %q, \"params\": {}}\n", a.Name)
	}
	s := strings.TrimRight(buf.String(), "\n")
	if prose == "" {
		return "```json\n" + s + "\n```"
	}
	return prose + "\n\n```json\n" + s + "\n```"
}
