package serve

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestModelNamesConsistent: POST and GET /v1/models/{id} follow one rule:
// an id other than the served one is a 404 model_not_found in both (POST
// used to serve any name), the served id or no model field is answered,
// and with AnyModel both answer every id.
func TestModelNamesConsistent(t *testing.T) {
	for _, anyModel := range []bool{false, true} {
		_, ts := tinyServer(t, func(c *Config) { c.AnyModel = anyModel })
		want := 404
		if anyModel {
			want = 200
		}
		st, b := post(t, context.Background(), ts.URL, `{"model":"gpt-4","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`)
		if st != want || (st == 404 && !strings.Contains(string(b), "model_not_found")) {
			t.Fatalf("any_model %v: POST gpt-4: %d %s, want %d", anyModel, st, b, want)
		}
		resp, err := http.Get(ts.URL + "/v1/models/gpt-4")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("any_model %v: GET /v1/models/gpt-4: %d, want %d", anyModel, resp.StatusCode, want)
		}
		for _, m := range []string{`"model":"tiny-test",`, ``} {
			if st, b := post(t, context.Background(), ts.URL, `{`+m+`"messages":[{"role":"user","content":"hi"}],"max_tokens":4}`); st != 200 {
				t.Fatalf("model %q: %d %s", m, st, b)
			}
		}
	}
}

// TestMaxTokensLimits: a huge max_tokens (1e12, 10^20) meets the real
// limit: clamped to fit the context with a header saying so, or (without
// clamping) a 400 that states the context, not an integer-format error.
func TestMaxTokensLimits(t *testing.T) {
	_, ts := tinyServer(t, nil) // context 64, clamping on
	for _, mt := range []string{"1e12", "100000", "100000000000000000000"} {
		body := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":` + mt + `}`
		resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("X-Smtrain-Max-Tokens"), "lowered to fit the context of 64 tokens") {
			t.Fatalf("max_tokens %s: %d, header %q", mt, resp.StatusCode, resp.Header.Get("X-Smtrain-Max-Tokens"))
		}
	}
	_, ts = tinyServer(t, func(c *Config) { c.ClampMaxTokens = false })
	for _, mt := range []string{"1e12", "100000"} {
		st, b := post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"hi"}],"max_tokens":`+mt+`}`)
		if st != 400 || !strings.Contains(string(b), "context window is 64 tokens, so a reply has at most 62") {
			t.Fatalf("max_tokens %s without clamping: %d %s", mt, st, b)
		}
	}
	if st, b := post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1.5}`); st != 400 || !strings.Contains(string(b), "integer") {
		t.Fatalf("max_tokens 1.5: %d %s", st, b)
	}
}
