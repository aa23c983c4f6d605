package main

import (
	"flag"
	"fmt"
	"io"
	"net"

	"smtrain/internal/apikey"
)

// serverAuth is -api_key_file and -insecure_no_auth of serve and env
// serve; envVar holds the keys when no file is given.
type serverAuth struct {
	file     *string
	insecure *bool
	envVar   string
}

func addServerAuthFlags(fs *flag.FlagSet, envVar string) serverAuth {
	return serverAuth{
		file:     fs.String("api_key_file", "", "file of API keys, one per line (# comments): every route but the health check then needs 'Authorization: Bearer KEY' (default: keys of $"+envVar+", comma-separated)"),
		insecure: fs.Bool("insecure_no_auth", false, "allow listening beyond loopback without an API key (anyone who reaches the address can use the server)"),
		envVar:   envVar,
	}
}

// keys loads the server's keys (nil when none are configured).
func (a serverAuth) keys() (*apikey.Keys, error) {
	return apikey.Load(*a.file, a.envVar)
}

// check refuses (closing ln) a non-loopback listener without keys unless
// -insecure_no_auth, and prints the warning of a permitted one to stderr.
func (a serverAuth) check(ln net.Listener, keys *apikey.Keys, stderr io.Writer) error {
	p := apikey.BindPolicy{Keys: keys, Insecure: *a.insecure, KeyFlag: "-api_key_file", EnvVar: a.envVar, InsecureFlag: "-insecure_no_auth"}
	warn, err := p.CheckBind(ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	if warn != "" {
		fmt.Fprintln(stderr, warn)
	}
	return nil
}

// authNote is the banner's word on authentication.
func authNote(keys *apikey.Keys) string {
	if n := keys.Len(); n > 0 {
		return fmt.Sprintf("%d API key(s)", n)
	}
	return "no authentication"
}

// addEnvKeyFlag defines -env_key_file, the keys a command sends to env
// servers (http:// environments).
func addEnvKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("env_key_file", "", "API keys for env servers: lines 'http://HOST:PORT KEY' (that server) or 'KEY' (the others), # comments (default: file $"+apikey.EnvKeysFile+", else the key $"+apikey.EnvKey+")")
}
