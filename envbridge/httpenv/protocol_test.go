package httpenv

import (
	"net/http"
	"strings"
	"testing"
)

// TestProtocolDefects: issue 16 part 6. A huge time_budget_s is refused
// with its real bound (the old message said "must be >= 0"), a known path
// with the wrong method is 405 with Allow (GET /v1/envs was 404), and an
// unknown field in a create request is refused by name (it was ignored).
func TestProtocolDefects(t *testing.T) {
	_, ts, _ := newTestServer(t, ServerOptions{})
	cases := []struct {
		method, path, body string
		status             int
		code, want         string
	}{
		{"POST", "/v1/envs", `{"task":"alpha","time_budget_s":1e300}`, 400, CodeBadRequest,
			"time_budget_s must be between 0 (unlimited) and 1e+09 seconds, got 1e+300"},
		{"POST", "/v1/envs", `{"task":"alpha","time_budget_s":-1}`, 400, CodeBadRequest, "time_budget_s must be between 0"},
		{"POST", "/v1/envs", `{"task":"alpha","max_steps":-3}`, 400, CodeBadRequest, "max_steps must be >= 0 (0: unlimited), got -3"},
		{"POST", "/v1/envs", `{"task":"alpha","max_step":5}`, 400, CodeBadRequest,
			`unknown field "max_step" in the request (known fields: task, seed, max_steps, time_budget_s)`},
		{"GET", "/v1/envs", ``, 405, CodeMethod, "GET /v1/envs: method not allowed (use POST)"},
		{"PUT", "/v1/envs/x/step", `{}`, 405, CodeMethod, "use POST"},
		{"POST", "/v1/envs/x", ``, 405, CodeMethod, "use DELETE"},
		{"POST", "/v1/tasks", ``, 405, CodeMethod, "use GET"},
	}
	for _, c := range cases {
		st, m, raw := do(t, c.method, ts.URL+c.path, c.body)
		wantError(t, st, m, raw, c.status, c.code)
		if msg := m["error"].(map[string]any)["message"].(string); !strings.Contains(msg, c.want) {
			t.Errorf("%s %s %s: message %q, want %q", c.method, c.path, c.body, msg, c.want)
		}
	}
	req, _ := http.NewRequest("GET", ts.URL+"/v1/envs", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Allow") != "POST" {
		t.Fatalf("Allow header %q", resp.Header.Get("Allow"))
	}
	// The known fields still work, and a step with extra fields is fine.
	st, m, raw := do(t, "POST", ts.URL+"/v1/envs", `{"task":"alpha","seed":3,"max_steps":2,"time_budget_s":1e9}`)
	if st != 200 {
		t.Fatalf("create: %d %s", st, raw)
	}
	st, _, raw = do(t, "POST", ts.URL+"/v1/envs/"+m["env_id"].(string)+"/step", `{"action":"echo","extra":1}`)
	if st != 200 {
		t.Fatalf("step: %d %s", st, raw)
	}
}
