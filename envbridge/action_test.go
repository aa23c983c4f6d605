package envbridge

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseAction(t *testing.T) {
	cases := []struct {
		name, in string
		want     string // action name, "" when an error is expected
		kind     ActionErrorKind
		check    func(t *testing.T, a Action)
	}{
		{name: "prose+block", in: "Okay, let's start.\n\n```json\n{\n    \"action\": \"request_info\",\n    \"params\": {\n        \"info_type\": \"overview\"\n    }\n}\n```", want: ActRequestInfo,
			check: func(t *testing.T, a Action) {
				if a.Params["info_type"] != "overview" {
					t.Errorf("info_type = %v", a.Params["info_type"])
				}
			}},
		{name: "bare object", in: `{"action": "execute_code", "params": {"code": "print(1)"}}`, want: ActExecuteCode},
		{name: "bare object in prose", in: `I will run it: {"action": "validate_code", "params": {"code": "x=1"}} done.`, want: ActValidateCode},
		{name: "last valid block wins", in: "first\n```json\n{\"action\": \"request_info\", \"params\": {\"info_type\": \"name\"}}\n```\nthen\n```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"print(2)\"}}\n```", want: ActExecuteCode},
		{name: "later broken block ignored", in: "```json\n{\"action\": \"request_info\", \"params\": {\"info_type\": \"all\"}}\n```\n```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \n```", want: ActRequestInfo},
		{name: "code containing fence", in: "```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"s = '```'\\nprint(s)\"}}\n```", want: ActExecuteCode,
			check: func(t *testing.T, a Action) {
				if a.Params["code"] != "s = '```'\nprint(s)" {
					t.Errorf("code = %q", a.Params["code"])
				}
			}},
		{name: "raw newline in string repaired", in: "```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"import os\nprint(1)\"}}\n```", want: ActExecuteCode,
			check: func(t *testing.T, a Action) {
				if a.Params["code"] != "import os\nprint(1)" {
					t.Errorf("code = %q", a.Params["code"])
				}
			}},
		{name: "plain fence", in: "```\n{\"action\": \"get_history\", \"params\": {}}\n```", want: ActGetHistory},
		{name: "reset without params", in: `{"action": "reset"}`, want: ActReset},
		{name: "broken json", in: "```json\n{\"action\": \"request_info\", \"params\": {\"info_type\": \"overview\"\n```", kind: ErrKindParse},
		{name: "no json", in: "I think we should train a model.", kind: ErrKindParse},
		{name: "empty", in: "", kind: ErrKindParse},
		{name: "array", in: "```json\n[1,2]\n```", kind: ErrKindParse},
		{name: "unknown action", in: `{"action": "train_model", "params": {}}`, kind: ErrKindUnknownAction},
		{name: "no action key", in: `{"act": "request_info"}`, kind: ErrKindUnknownAction},
		{name: "action not string", in: `{"action": 3, "params": {}}`, kind: ErrKindUnknownAction},
		{name: "missing info_type", in: `{"action": "request_info", "params": {}}`, kind: ErrKindParams},
		{name: "bad info_type", in: `{"action": "request_info", "params": {"info_type": "secrets"}}`, kind: ErrKindParams},
		{name: "missing code", in: `{"action": "execute_code", "params": {}}`, kind: ErrKindParams},
		{name: "empty code", in: `{"action": "validate_code", "params": {"code": "  "}}`, kind: ErrKindParams},
		{name: "code not string", in: `{"action": "validate_code", "params": {"code": 5}}`, kind: ErrKindParams},
		{name: "params not object", in: `{"action": "execute_code", "params": "print(1)"}`, kind: ErrKindParams},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := ParseAction(c.in)
			if c.want != "" {
				if err != nil {
					t.Fatalf("ParseAction: %v", err)
				}
				if a.Name != c.want {
					t.Fatalf("action = %q, want %q", a.Name, c.want)
				}
				if c.check != nil {
					c.check(t, a)
				}
				return
			}
			var ae *ActionError
			if !errors.As(err, &ae) {
				t.Fatalf("want *ActionError of kind %s, got %v (action %+v)", c.kind, err, a)
			}
			if ae.Kind != c.kind {
				t.Fatalf("kind = %s (%v), want %s", ae.Kind, ae, c.kind)
			}
		})
	}
}

func TestFormatActionRoundTrip(t *testing.T) {
	a := Action{Name: ActExecuteCode, Params: map[string]any{"code": "import csv\nprint(\"<ok> & done\")\n"}}
	text := FormatAction("I will train a model.", a)
	if !strings.HasPrefix(text, "I will train a model.\n\n```json\n{\n    \"action\": \"execute_code\",\n    \"params\": {\n        \"code\": ") {
		t.Fatalf("unexpected layout:\n%s", text)
	}
	b, err := ParseAction(text)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != a.Name || b.Params["code"] != a.Params["code"] {
		t.Fatalf("round trip: %+v", b)
	}
}

func FuzzParseAction(f *testing.F) {
	f.Add("Okay.\n```json\n{\"action\": \"request_info\", \"params\": {\"info_type\": \"overview\"}}\n```")
	f.Add(`{"action": "execute_code", "params": {"code": "print(1)"}}`)
	f.Add("```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"a\nb\"}}")
	f.Add("{{{{```json```{")
	f.Add(`{"action": "request_info", "params": {"info_type": 1e999}}`)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAction(s)
		if err != nil {
			var ae *ActionError
			if !errors.As(err, &ae) {
				t.Fatalf("error is not *ActionError: %v", err)
			}
			return
		}
		if err := ValidateAction(a); err != nil {
			t.Fatalf("ParseAction returned an invalid action %+v: %v", a, err)
		}
		if code, ok := a.Params["code"].(string); ok && !utf8.ValidString(s) && utf8.ValidString(code) {
			_ = code // decoding replaced bad bytes; fine
		}
		// A parsed action must survive FormatAction -> ParseAction.
		b, err := ParseAction(FormatAction("x", a))
		if err != nil || b.Name != a.Name {
			t.Fatalf("round trip of %+v failed: %+v %v", a, b, err)
		}
	})
}

func TestParseActionPathological(t *testing.T) {
	big := strings.Repeat(`{"a":`, 200000)
	done := make(chan struct{})
	go func() {
		ParseAction(big)
		ParseAction(strings.Repeat("```json\n{", 50000))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("ParseAction too slow on pathological input")
	}
}
