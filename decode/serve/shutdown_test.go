package serve

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"smtrain/data"
)

// TestShutdownEndsStreams: a stream still decoding when the shutdown
// grace runs out ends with an OpenAI-style error event and [DONE] (it was
// cut with neither), and is counted in Stats.Shutdown (it was counted
// nowhere).
func TestShutdownEndsStreams(t *testing.T) {
	tok := data.ByteTokenizer()
	f := &slowFake{tok: tok, pattern: tok.EncodeOrdinary("s"), delay: 2 * time.Millisecond}
	s, err := New(f.config(100000))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 50*time.Millisecond) }()
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"go"}],"max_tokens":50000,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, 10*time.Second, "decoding to start", func() bool { return f.pushes.Load() > 0 })
	cancel()
	events := readSSE(t, resp.Body)
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	n := len(events)
	if n < 2 || events[n-1] != "[DONE]" || !strings.Contains(events[n-2], `"error"`) || !strings.Contains(events[n-2], "server_shutting_down") {
		t.Fatalf("stream cut at shutdown ends with %q", events[max(0, n-2):])
	}
	if st := s.Stats(); st.Shutdown != 1 || st.Active != 0 {
		t.Fatalf("stats %+v, want 1 request cut at shutdown", st)
	}
}
