package httpenv

import (
	"context"
	"errors"
	"net"
	"net/http"
	"smtrain/envbridge"
	"testing"
	"time"
)

// TestClientWaitsForRestartingServer: while nothing listens, a create (not
// idempotent, but never delivered) is retried with backoff for up to
// RetryFor and succeeds once the server is back; with nobody coming back
// it fails with ErrServerGone after about RetryFor.
func TestClientWaitsForRestartingServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the server is down
	c, _ := NewClient("http://"+addr, "alpha", envbridge.Options{}, ClientOptions{RetryFor: 5 * time.Second, Backoff: 20 * time.Millisecond})
	go func() {
		time.Sleep(300 * time.Millisecond)
		ln2, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		srv := NewServer(&fakeRegistry{}, ServerOptions{})
		hs := &http.Server{Handler: srv.Handler()}
		t.Cleanup(func() { hs.Close(); srv.Close() })
		go hs.Serve(ln2)
	}()
	start := time.Now()
	if _, _, err := c.Reset(context.Background(), 1); err != nil {
		t.Fatalf("create while the server restarts: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("reset answered after %v, before the server was back", d)
	}
	c.Close()

	// Nobody comes back: bounded.
	ln, _ = net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	c2, _ := NewClient("http://"+dead, "alpha", envbridge.Options{}, ClientOptions{RetryFor: 400 * time.Millisecond, Backoff: 20 * time.Millisecond})
	start = time.Now()
	_, _, err = c2.Reset(context.Background(), 1)
	// The client stops once its next backoff would pass RetryFor: with
	// delays of 20, 40, 80, 160 ms that is at 240 ms at the earliest (the
	// sleeps only overshoot), so anything under 200 ms retried too little.
	if d := time.Since(start); !errors.Is(err, ErrServerGone) || d < 200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("dead server: %v after %v", err, d)
	}
}
