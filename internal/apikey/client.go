package apikey

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Environment variables read by clients of env servers (httpenv's Client
// and Pool) when they are not given keys explicitly.
const (
	// EnvKeysFile names a client keys file (see LoadClientFile).
	EnvKeysFile = "SMTRAIN_ENV_KEYS_FILE"
	// EnvKey is the key sent to every env server (the same variable an
	// env server reads its keys from, so one setting serves both sides
	// when they share a key).
	EnvKey = "SMTRAIN_ENV_API_KEY"
	// ServeKey holds the keys of `smtrain serve` (comma-separated) when
	// -api_key_file is not given.
	ServeKey = "SMTRAIN_SERVE_API_KEY"
)

// ClientKeys are the keys a client sends: one per endpoint, and a default
// for the others. The zero value sends none.
type ClientKeys struct {
	def string
	by  map[string]string // normalized base URL -> key
}

// For returns the key for the endpoint with base URL u ("" for none).
func (c *ClientKeys) For(u string) string {
	if c == nil {
		return ""
	}
	if k, ok := c.by[normalize(u)]; ok {
		return k
	}
	return c.def
}

// Len returns the number of keys held (endpoint keys plus the default).
func (c *ClientKeys) Len() int {
	if c == nil {
		return 0
	}
	n := len(c.by)
	if c.def != "" {
		n++
	}
	return n
}

// normalize makes endpoint URLs comparable: scheme and host lowercased,
// no trailing slash.
func normalize(s string) string {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return strings.TrimRight(u.String(), "/")
}

// DefaultKey returns ClientKeys sending key to every endpoint.
func DefaultKey(key string) (*ClientKeys, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return &ClientKeys{def: key}, nil
}

// LoadClientFile reads a client keys file. Each line is either
//
//	URL KEY    the key for the endpoint with that base URL (http://HOST:PORT)
//	KEY        the key for every other endpoint
//
// separated by spaces or tabs; blank lines and lines starting with # are
// ignored. Errors name the file and line, never a key.
func LoadClientFile(path string) (*ClientKeys, error) {
	lines, nums, err := readLines(path)
	if err != nil {
		return nil, err
	}
	c := &ClientKeys{by: map[string]string{}}
	for i, l := range lines {
		f := strings.Fields(l)
		where := fmt.Sprintf("%s:%d", path, nums[i])
		switch len(f) {
		case 1:
			if c.def != "" {
				return nil, fmt.Errorf("%s: a second default key (a line without a URL); give the URL of its endpoint first", where)
			}
			if err := checkKey(f[0]); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			c.def = f[0]
		case 2:
			u, err := url.Parse(f[0])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("%s: want 'http://HOST:PORT KEY' or 'KEY'; the first field is not an http(s) URL", where)
			}
			if err := checkKey(f[1]); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			n := normalize(f[0])
			if _, dup := c.by[n]; dup {
				return nil, fmt.Errorf("%s: a second key for %s", where, n)
			}
			c.by[n] = f[1]
		default:
			return nil, fmt.Errorf("%s: want 'http://HOST:PORT KEY' or 'KEY', got %d fields", where, len(f))
		}
	}
	if c.Len() == 0 {
		return nil, fmt.Errorf("%s: no key", path)
	}
	return c, nil
}

// LoadClient returns the keys of the client keys file path when it is
// set, else of the file named by $SMTRAIN_ENV_KEYS_FILE, else the key of
// $SMTRAIN_ENV_API_KEY for every endpoint, else no keys (a non-nil empty
// ClientKeys).
func LoadClient(path string) (*ClientKeys, error) {
	if path != "" {
		return LoadClientFile(path)
	}
	if p := strings.TrimSpace(os.Getenv(EnvKeysFile)); p != "" {
		c, err := LoadClientFile(p)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", EnvKeysFile, err)
		}
		return c, nil
	}
	if k := strings.TrimSpace(os.Getenv(EnvKey)); k != "" {
		if strings.Contains(k, ",") {
			return nil, fmt.Errorf("$%s holds several keys (a server's list); a client sends one: use a keys file ($%s or -env_key_file)", EnvKey, EnvKeysFile)
		}
		c, err := DefaultKey(k)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", EnvKey, err)
		}
		return c, nil
	}
	return &ClientKeys{}, nil
}
