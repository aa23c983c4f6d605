package serve

import (
	"encoding/json"
	"strings"
	"testing"

	"smtrain/internal/apikey"
	"smtrain/internal/apikey/apikeytest"
)

// TestAuthEveryRoute: with keys, every route but the health checks is a
// 401 in OpenAI's error shape (code invalid_api_key) without a key or with
// a wrong one; the right key works; the log names refusals without keys.
func TestAuthEveryRoute(t *testing.T) {
	const keyA, keyB = "sk-test-aaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbb"
	keys, err := apikey.Parse("test", []string{keyA, keyB})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	_, ts := tinyServer(t, func(c *Config) { c.Keys, c.Log = keys, logs })
	do := func(method, path, body, auth string) (int, []byte) {
		t.Helper()
		status, b, _ := apikeytest.Do(t, method, ts.URL+path, body, auth)
		return status, b
	}
	for _, p := range []string{"/healthz", "/v1/healthz"} {
		if code, b := do("GET", p, "", ""); code != 200 {
			t.Fatalf("%s without a key: %d %s", p, code, b)
		}
	}
	chat := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"seed":1}`
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/models", ""},
		{"GET", "/v1/models/tiny-test", ""},
		{"POST", "/v1/chat/completions", chat},
		{"POST", "/v1/chat/completions", `{"stream":true,` + chat[1:]},
		{"GET", "/v1/nope", ""},
		{"POST", "/healthz", ""},
	}
	for _, rt := range routes {
		for _, auth := range []string{"", "Bearer ", "Bearer " + keyA + "0", "Bearer sk-test-aaaaaaaaaaaaaaab", keyA} {
			code, b := do(rt.method, rt.path, rt.body, auth)
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil || code != 401 || e.Error.Type != "invalid_request_error" ||
				e.Error.Code == nil || *e.Error.Code != "invalid_api_key" || e.Error.Message == "" {
				t.Fatalf("%s %s auth %q: %d %s", rt.method, rt.path, auth, code, b)
			}
			if strings.Contains(string(b), "sk-test") {
				t.Fatalf("401 body shows a key: %s", b)
			}
		}
	}
	for _, rt := range routes[:4] {
		if code, b := do(rt.method, rt.path, rt.body, "Bearer "+keyB); code != 200 {
			t.Fatalf("%s %s with key B: %d %s", rt.method, rt.path, code, b)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "401 POST /v1/chat/completions") || strings.Contains(out, "sk-test") {
		t.Fatalf("log should name refusals and hold no key:\n%s", out)
	}
}
