// Package apikey is the bearer-key authentication shared by smtrain's two
// HTTP services (`smtrain serve` and `smtrain env serve`) and their
// clients.
//
// A server loads its accepted keys from a file (-api-key-file: one key per
// line, blank lines and lines starting with # ignored) or from an
// environment variable (one or more keys separated by commas), and wraps
// its handler with Keys.Middleware: every route but the public ones (the
// health check) needs "Authorization: Bearer <key>", compared in constant
// time; a missing or wrong key is a 401 in the service's own error JSON.
// Keys never appear in logs or error messages: a key is named by its
// number (key 1, key 2, ... in file order).
//
// CheckBind refuses a non-loopback listener without keys unless the user
// opted out explicitly.
//
// Clients load ClientKeys: a default key and keys per endpoint URL.
package apikey

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// MinKeyLen is the shortest key accepted (a key is a secret, not a
// password: `openssl rand -hex 32` makes a good one).
const MinKeyLen = 16

// Keys is a server's set of accepted keys. A nil *Keys accepts every
// request (no authentication).
type Keys struct {
	hashes [][32]byte
}

// Len returns the number of keys (0 for nil).
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.hashes)
}

// checkKey validates one key; the error never contains the key.
func checkKey(key string) error {
	if len(key) < MinKeyLen {
		return fmt.Errorf("key is %d characters; use at least %d (e.g. openssl rand -hex 32)", len(key), MinKeyLen)
	}
	for _, c := range []byte(key) {
		if c <= ' ' || c >= 0x7f {
			return errors.New("key has a space, control or non-ASCII character; use printable ASCII (e.g. openssl rand -hex 32)")
		}
	}
	return nil
}

// Parse builds Keys from keys given in full; where names their source in
// errors (which never contain a key).
func Parse(where string, keys []string) (*Keys, error) {
	k := &Keys{}
	seen := map[[32]byte]bool{}
	for i, key := range keys {
		if err := checkKey(key); err != nil {
			return nil, fmt.Errorf("%s: key %d: %w", where, i+1, err)
		}
		h := sha256.Sum256([]byte(key))
		if !seen[h] {
			seen[h] = true
			k.hashes = append(k.hashes, h)
		}
	}
	if len(k.hashes) == 0 {
		return nil, fmt.Errorf("%s: no key", where)
	}
	return k, nil
}

// readLines returns the non-blank, non-comment lines of a key file with
// their line numbers.
func readLines(path string) ([]string, []int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("api key file: %w", err)
	}
	var lines []string
	var nums []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
		nums = append(nums, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return lines, nums, nil
}

// LoadFile reads a key file: one key per line; blank lines and lines
// starting with # are ignored.
func LoadFile(path string) (*Keys, error) {
	lines, nums, err := readLines(path)
	if err != nil {
		return nil, err
	}
	for i, l := range lines {
		if err := checkKey(l); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, nums[i], err)
		}
	}
	return Parse(path, lines)
}

// Load returns the keys of file when it is set, else those of the
// environment variable envVar (comma-separated), else nil (no keys).
func Load(file, envVar string) (*Keys, error) {
	if file != "" {
		return LoadFile(file)
	}
	v := os.Getenv(envVar)
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var keys []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			keys = append(keys, f)
		}
	}
	return Parse("$"+envVar, keys)
}

// Match reports which key (1-based, in load order) token is, or 0. It
// takes the same time whichever key matches and however much of a wrong
// token is right: tokens are compared as SHA-256 digests, and every key
// is compared.
func (k *Keys) Match(token string) int {
	if k == nil {
		return 0
	}
	h := sha256.Sum256([]byte(token))
	id := 0
	for i := range k.hashes {
		eq := subtle.ConstantTimeCompare(h[:], k.hashes[i][:])
		id = subtle.ConstantTimeSelect(eq, i+1, id)
	}
	return id
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header ("" when there is none; the scheme is case-insensitive).
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

type ctxKey struct{}

// KeyID returns the number of the key that authenticated the request of
// ctx (1-based), or 0 when the server has no keys or the route is public.
func KeyID(ctx context.Context) int {
	id, _ := ctx.Value(ctxKey{}).(int)
	return id
}

// Deny writes a 401 in the service's error JSON. msg never holds a key.
type Deny func(w http.ResponseWriter, r *http.Request, msg string)

// Messages of the 401s (exported for tests and clients).
const (
	MsgMissing = "missing API key: send the header 'Authorization: Bearer <key>'"
	MsgInvalid = "invalid API key"
)

// Middleware returns next behind key authentication: requests for which
// public returns true pass as they are; the others need a bearer key of k,
// else deny answers them (after WWW-Authenticate is set) and logf, when
// set, gets one line naming the method, path and remote address (never
// the key). A nil or empty k returns next unchanged.
func (k *Keys) Middleware(next http.Handler, public func(*http.Request) bool, deny Deny, logf func(format string, args ...any)) http.Handler {
	if k.Len() == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public != nil && public(r) {
			next.ServeHTTP(w, r)
			return
		}
		tok := BearerToken(r)
		id := 0
		msg := MsgMissing
		if tok != "" {
			id = k.Match(tok)
			msg = MsgInvalid
		}
		if id == 0 {
			if logf != nil {
				logf("401 %s %s from %s: %s", r.Method, oneLineNoCtl(r.URL.Path), r.RemoteAddr, msg)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="smtrain"`)
			deny(w, r, msg)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// oneLineNoCtl keeps a logged path on one line.
func oneLineNoCtl(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// IsLoopback reports whether a listener's address is on the loopback
// interface (127.0.0.0/8 or ::1). Unspecified addresses (0.0.0.0, ::)
// are not: they listen on every interface.
func IsLoopback(a net.Addr) bool {
	switch t := a.(type) {
	case *net.TCPAddr:
		return t.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// BindPolicy says how a server may listen.
type BindPolicy struct {
	// Keys are the server's keys (nil: none).
	Keys *Keys
	// Insecure allows serving beyond loopback without keys.
	Insecure bool
	// KeyFlag and EnvVar name the ways to set keys, for the message.
	KeyFlag, EnvVar string
	// InsecureFlag names the opt-out flag, for the message.
	InsecureFlag string
}

// CheckBind returns an error when ln's address is not loopback and there
// are no keys (unless Insecure), telling how to set a key; warning is a
// line to print when serving beyond loopback without keys (Insecure) or
// with keys over plain HTTP.
func (p BindPolicy) CheckBind(addr net.Addr) (warning string, err error) {
	if IsLoopback(addr) {
		return "", nil
	}
	if p.Keys.Len() == 0 {
		if !p.Insecure {
			return "", fmt.Errorf("refusing to listen on %s (not loopback) without an API key: put one or more keys in a file (one per line, e.g. from `openssl rand -hex 32`) and pass %s FILE, or set $%s; %s serves without authentication to anyone who can reach the address",
				addr, p.KeyFlag, p.EnvVar, p.InsecureFlag)
		}
		return fmt.Sprintf("WARNING: listening on %s WITHOUT AUTHENTICATION (%s): anyone who can reach this address can use every route", addr, p.InsecureFlag), nil
	}
	return fmt.Sprintf("note: listening on %s with %d API key(s) over plain HTTP: keys and data cross the network in clear; put a TLS reverse proxy in front beyond a trusted network", addr, p.Keys.Len()), nil
}
