package serve

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"smtrain/data"
	"smtrain/decode"
)

// streamTimed posts a streaming request and returns its events with their
// arrival times since the request was sent.
func streamTimed(t *testing.T, url, body string) ([]string, []time.Duration) {
	t.Helper()
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(context.Background(), "POST", url+"/v1/chat/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var evs []string
	var at []time.Duration
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			evs = append(evs, line)
			at = append(at, time.Since(t0))
		}
	}
	return evs, at
}

// TestStreamingIsIncremental: with -stream_window 4 the content of a
// streamed reply arrives while it decodes (the first content long before
// the finish chunk), its pieces add up to the final text, and no
// backspace of the reply reaches back more than 4 tokens. Before, the
// whole content came in one chunk at the end.
func TestStreamingIsIncremental(t *testing.T) {
	tok := data.ByteTokenizer()
	f := &slowFake{tok: tok, pattern: tok.EncodeOrdinary("streams: é, ok. "), delay: 4 * time.Millisecond, bkspcAt: 5}
	cfg := f.config(256)
	cfg.StreamWindow = 4
	_, ts := startServer(t, cfg)
	body := `{"messages":[{"role":"user","content":"go"}],"max_tokens":48,"seed":1,"stream":true,"stop":["ZZ"]}`
	evs, at := streamTimed(t, ts.URL, body)
	if len(evs) == 0 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("no [DONE]: %v", evs)
	}
	var content strings.Builder
	firstContent, finishAt, pieces := time.Duration(-1), time.Duration(0), 0
	var actions []int32
	for k, ev := range evs[:len(evs)-1] {
		c := decodeCompletion(t, []byte(ev))
		if len(c.Choices) == 0 {
			continue
		}
		ch := c.Choices[0]
		if ch.Delta != nil && ch.Delta.Content != nil && *ch.Delta.Content != "" {
			if ch.FinishReason == nil && firstContent < 0 {
				firstContent = at[k]
			}
			pieces++
			content.WriteString(*ch.Delta.Content)
		}
		if ch.FinishReason != nil {
			finishAt = at[k]
			actions = ch.Ext.Actions
		}
	}
	if firstContent < 0 || pieces < 3 {
		t.Fatalf("content came in %d pieces, first at %v: not streamed", pieces, firstContent)
	}
	if firstContent > finishAt/2 {
		t.Fatalf("first content at %v, finish at %v: content is not incremental", firstContent, finishAt)
	}
	toks, ok := decode.Replay(actions, tok.BkspcID(), nil)
	if !ok || content.String() != tok.Decode(toks) {
		t.Fatalf("streamed content %q, final text %q", content.String(), tok.Decode(toks))
	}
	n, high := 0, 0
	for _, a := range actions {
		if a == tok.BkspcID() {
			n--
		} else {
			n++
		}
		high = max(high, n)
		if high-n > 4 {
			t.Fatalf("a backspace reached %d tokens back, window 4", high-n)
		}
	}
	t.Logf("time to first content %v, finish %v, %d content pieces", firstContent, finishAt, pieces)
}

func TestStreamable(t *testing.T) {
	for _, c := range []struct {
		text  string
		stops []string
		want  string
	}{
		{"hello wor", nil, "hello wor"},
		{"hello\n\nrest", []string{"\n\n"}, "hello"},
		{"hello\n", []string{"\n\n"}, "hello"}, // "\n" may start the stop string
		{"caf\xc3", nil, "caf"},                // é not complete yet
		{"café", nil, "café"},
	} {
		hold := 0
		for _, s := range c.stops {
			hold = max(hold, len(s)-1)
		}
		if got := streamable(c.text, c.stops, hold); got != c.want {
			t.Errorf("streamable(%q, %q) = %q, want %q", c.text, c.stops, got, c.want)
		}
	}
}
