package apikey

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	keyA = "aaaaaaaaaaaaaaaa-key-one"
	keyB = "bbbbbbbbbbbbbbbb-key-two"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFile(t *testing.T) {
	p := writeFile(t, "# server keys\n\n  "+keyA+"  \n# "+keyB+" is commented out\n"+keyB+"\n"+keyA+"\n")
	k, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if k.Len() != 2 {
		t.Fatalf("Len %d, want 2 (duplicates merged, comments skipped)", k.Len())
	}
	if k.Match(keyA) != 1 || k.Match(keyB) != 2 || k.Match("x") != 0 || k.Match("") != 0 || k.Match(keyA+"x") != 0 {
		t.Fatalf("Match: %d %d %d", k.Match(keyA), k.Match(keyB), k.Match("x"))
	}
	var nilKeys *Keys
	if nilKeys.Match(keyA) != 0 || nilKeys.Len() != 0 {
		t.Fatal("nil keys match")
	}
}

func TestLoadErrorsNeverShowKeys(t *testing.T) {
	short := "short-secret"
	for name, body := range map[string]string{
		"short": keyA + "\n" + short + "\n",
		"space": "has a space in the secret value\n",
		"empty": "# nothing\n\n",
	} {
		p := writeFile(t, body)
		_, err := LoadFile(p)
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		msg := err.Error()
		if !strings.Contains(msg, p) || strings.Contains(msg, short) || strings.Contains(msg, keyA) || strings.Contains(msg, "secret") {
			t.Fatalf("%s: %q should name the file and hold no key", name, msg)
		}
		if name == "short" && !strings.Contains(msg, p+":2:") {
			t.Fatalf("short: %q should name line 2", msg)
		}
	}
	t.Setenv("TEST_APIKEY_VAR", keyA+", "+short)
	if _, err := Load("", "TEST_APIKEY_VAR"); err == nil || strings.Contains(err.Error(), short) || !strings.Contains(err.Error(), "$TEST_APIKEY_VAR") {
		t.Fatalf("env var error: %v", err)
	}
}

func TestLoadPrecedence(t *testing.T) {
	t.Setenv("TEST_APIKEY_VAR", "")
	if k, err := Load("", "TEST_APIKEY_VAR"); err != nil || k != nil {
		t.Fatalf("unset: %v %v", k, err)
	}
	t.Setenv("TEST_APIKEY_VAR", keyA+","+keyB)
	k, err := Load("", "TEST_APIKEY_VAR")
	if err != nil || k.Len() != 2 || k.Match(keyB) != 2 {
		t.Fatalf("env: %v %v", k, err)
	}
	k, err = Load(writeFile(t, keyB+"\n"), "TEST_APIKEY_VAR")
	if err != nil || k.Len() != 1 || k.Match(keyB) != 1 || k.Match(keyA) != 0 {
		t.Fatalf("file should win: %v", err)
	}
}

func TestMiddleware(t *testing.T) {
	k, _ := Parse("test", []string{keyA, keyB})
	var logs []string
	logf := func(f string, a ...any) { logs = append(logs, strings.TrimSpace(sprintf(f, a...))) }
	var gotID int
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotID = KeyID(r.Context())
		w.WriteHeader(204)
	})
	deny := func(w http.ResponseWriter, r *http.Request, msg string) {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"e":"` + msg + `"}`))
	}
	h := k.Middleware(next, func(r *http.Request) bool { return r.URL.Path == "/health" }, deny, logf)
	do := func(path, auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		gotID = -1
		h.ServeHTTP(w, r)
		return w
	}
	if w := do("/health", ""); w.Code != 204 || gotID != 0 {
		t.Fatalf("public: %d id %d", w.Code, gotID)
	}
	if w := do("/x", ""); w.Code != 401 || !strings.Contains(w.Body.String(), MsgMissing) || w.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("missing: %d %s", w.Code, w.Body)
	}
	wrong := "Bearer " + keyA[:len(keyA)-1] + "X"
	if w := do("/x", wrong); w.Code != 401 || !strings.Contains(w.Body.String(), MsgInvalid) {
		t.Fatalf("wrong: %d %s", w.Code, w.Body)
	}
	if w := do("/x", "Basic "+keyA); w.Code != 401 {
		t.Fatalf("basic scheme: %d", w.Code)
	}
	if w := do("/x", "bearer "+keyB); w.Code != 204 || gotID != 2 {
		t.Fatalf("right key: %d id %d", w.Code, gotID)
	}
	if len(logs) != 3 {
		t.Fatalf("want 3 log lines, got %q", logs)
	}
	for _, l := range logs {
		if strings.Contains(l, keyA[:MinKeyLen]) || strings.Contains(l, keyB[:MinKeyLen]) {
			t.Fatalf("log line holds a key: %q", l)
		}
	}
	var none *Keys
	if none.Middleware(next, nil, deny, nil) == nil {
		t.Fatal("nil keys: no handler")
	}
	w := httptest.NewRecorder()
	none.Middleware(next, nil, deny, nil).ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 204 {
		t.Fatalf("no keys: %d", w.Code)
	}
}

func TestCheckBind(t *testing.T) {
	k, _ := Parse("test", []string{keyA})
	p := BindPolicy{KeyFlag: "-api-key-file", EnvVar: "X_KEY", InsecureFlag: "-insecure-no-auth"}
	tcp := func(s string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(s), Port: 80} }
	for _, a := range []string{"127.0.0.1", "127.0.0.2", "::1"} {
		if w, err := p.CheckBind(tcp(a)); err != nil || w != "" {
			t.Fatalf("%s: %q %v", a, w, err)
		}
	}
	for _, a := range []string{"0.0.0.0", "::", "10.1.2.3"} {
		_, err := p.CheckBind(tcp(a))
		if err == nil || !strings.Contains(err.Error(), "-api-key-file FILE") || !strings.Contains(err.Error(), "$X_KEY") || !strings.Contains(err.Error(), "-insecure-no-auth") {
			t.Fatalf("%s without key: %v", a, err)
		}
		ins := p
		ins.Insecure = true
		if w, err := ins.CheckBind(tcp(a)); err != nil || !strings.Contains(w, "WITHOUT AUTHENTICATION") {
			t.Fatalf("%s insecure: %q %v", a, w, err)
		}
		withKey := p
		withKey.Keys = k
		if _, err := withKey.CheckBind(tcp(a)); err != nil {
			t.Fatalf("%s with key: %v", a, err)
		}
	}
}

func TestClientKeys(t *testing.T) {
	p := writeFile(t, "# endpoint keys\nhttp://A:8765/ "+keyA+"\n\thttp://b:1\t"+keyB+"\n"+"cccccccccccccccc-default\n")
	c, err := LoadClientFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.For("http://a:8765") != keyA || c.For("http://B:1/") != keyB || c.For("http://c:2") != "cccccccccccccccc-default" {
		t.Fatalf("For: %q %q %q", c.For("http://a:8765"), c.For("http://B:1/"), c.For("http://c:2"))
	}
	for name, body := range map[string]string{
		"two defaults": keyA + "\n" + keyB + "\n",
		"not a url":    "a:b " + keyA + "\n",
		"dup":          "http://a:1 " + keyA + "\nhttp://a:1/ " + keyB + "\n",
		"3 fields":     "http://a:1 " + keyA + " " + keyB + "\n",
		"short":        "http://a:1 tiny\n",
	} {
		_, err := LoadClientFile(writeFile(t, body))
		if err == nil || !strings.Contains(err.Error(), ":1:") && !strings.Contains(err.Error(), ":2:") {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(err.Error(), keyA) || strings.Contains(err.Error(), keyB) || strings.Contains(err.Error(), "tiny") {
			t.Fatalf("%s: error shows a key: %v", name, err)
		}
	}
}

func TestLoadClientEnv(t *testing.T) {
	t.Setenv(EnvKeysFile, "")
	t.Setenv(EnvKey, "")
	c, err := LoadClient("")
	if err != nil || c == nil || c.Len() != 0 || c.For("http://x:1") != "" {
		t.Fatalf("nothing set: %v %v", c, err)
	}
	t.Setenv(EnvKey, keyA)
	if c, err := LoadClient(""); err != nil || c.For("http://x:1") != keyA {
		t.Fatalf("env key: %v", err)
	}
	t.Setenv(EnvKey, keyA+","+keyB)
	if _, err := LoadClient(""); err == nil || strings.Contains(err.Error(), keyA) {
		t.Fatalf("several keys: %v", err)
	}
	t.Setenv(EnvKeysFile, writeFile(t, "http://x:1 "+keyB+"\n"))
	if c, err := LoadClient(""); err != nil || c.For("http://x:1") != keyB || c.For("http://y:1") != "" {
		t.Fatalf("env file: %v", err)
	}
	if c, err := LoadClient(writeFile(t, keyA+"\n")); err != nil || c.For("http://x:1") != keyA {
		t.Fatalf("flag file wins: %v", err)
	}
}

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
