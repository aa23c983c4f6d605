// Package apikeytest helps the authentication tests of the HTTP services.
package apikeytest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Do sends method url with body ("" for none) and the Authorization
// header auth ("" for none), and returns the status, body and headers of
// the answer; a transport error fails t.
func Do(t testing.TB, method, url, body, auth string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp.StatusCode, b, resp.Header
}
