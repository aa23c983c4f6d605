package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/model"
)

// tinyParams is a random tiny model over the byte tokenizer whose <bkspc>
// logit is biased up (ln_f bias along the <bkspc> embedding row), so that
// samples backspace often.
func tinyParams(t testing.TB, tok *data.Tokenizer, ctx int) *model.Params {
	t.Helper()
	cfg := model.Tiny
	cfg.VocabSize = tok.VocabSize()
	cfg.NPositions = ctx
	p, err := model.NewParams(cfg, model.F32, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	D := cfg.NEmbd
	wte, lnfB := p.Get("wte.weight"), p.Get("ln_f.bias")
	if wte == nil || lnfB == nil {
		t.Fatal("parameter names changed")
	}
	for i := 0; i < D; i++ {
		lnfB.F32[i] = 2
		wte.F32[int(tok.BkspcID())*D+i] = 0.03
	}
	return p
}

// tinyServer serves a tiny random model (context 64) through httptest.
func tinyServer(t testing.TB, mod func(*Config)) (*Server, *httptest.Server) {
	t.Helper()
	tok := data.ByteTokenizer()
	cfg, err := ConfigFor(tinyParams(t, tok, 64), tok, "tiny-test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultMaxTokens = 16
	if mod != nil {
		mod(&cfg)
	}
	return startServer(t, cfg)
}

func startServer(t testing.TB, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

// slowFake is a decoder whose logits make the byte pattern[depth %
// len(pattern)] overwhelmingly likely (so it never stops on its own). Push
// sleeps for delay and is counted; concurrent Push calls are tracked.
type slowFake struct {
	tok     *data.Tokenizer
	pattern []int32
	delay   time.Duration
	pushes  atomic.Int64
	inPush  atomic.Int64
	maxIn   atomic.Int64
	bkspcAt int // when > 0, choose <bkspc> at every depth divisible by it (once)
}

// factory returns a decode.Factory of decoders driven by f.
func (f *slowFake) factory() decode.Factory {
	return func(nseq, maxLen int) (decode.Stepper, error) {
		return &fakeDec{f: f, maxLen: maxLen, stacks: make([][]int32, nseq), popped: make([]map[int]bool, nseq)}, nil
	}
}

// fakeConfig is a Config serving f with a large context.
func (f *slowFake) config(ctxLen int) Config {
	return Config{ModelName: "fake", Tok: f.tok, Factory: f.factory(), ContextLen: ctxLen, VocabSize: f.tok.VocabSize(),
		AllowBkspc: true, MaxConcurrency: 2, MaxQueue: 16, DefaultMaxTokens: 32, MaxN: 8}
}

type fakeDec struct {
	f      *slowFake
	maxLen int
	stacks [][]int32
	popped []map[int]bool // per slot: depths where a <bkspc> was already taken
	logit  []float32
}

func (d *fakeDec) Prefill(seq int, tokens []int32) error {
	if len(tokens) > d.maxLen {
		return fmt.Errorf("prefill of %d > %d", len(tokens), d.maxLen)
	}
	d.stacks[seq] = append([]int32(nil), tokens...)
	d.popped[seq] = map[int]bool{}
	return nil
}

func (d *fakeDec) Push(seqs []int, tokens []int32) error {
	n := d.f.inPush.Add(1)
	for {
		m := d.f.maxIn.Load()
		if n <= m || d.f.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	defer d.f.inPush.Add(-1)
	time.Sleep(d.f.delay)
	for i, q := range seqs {
		if len(d.stacks[q]) >= d.maxLen {
			return fmt.Errorf("slot %d full", q)
		}
		d.stacks[q] = append(d.stacks[q], tokens[i])
		d.f.pushes.Add(1)
	}
	return nil
}

func (d *fakeDec) Pop(seq int) error {
	d.popped[seq][len(d.stacks[seq])] = true
	d.stacks[seq] = d.stacks[seq][:len(d.stacks[seq])-1]
	return nil
}

func (d *fakeDec) Logits(seq int) []float32 {
	V := d.f.tok.VocabSize()
	if len(d.logit) != V {
		d.logit = make([]float32, V)
	}
	for i := range d.logit {
		d.logit[i] = 0
	}
	depth := len(d.stacks[seq])
	d.logit[d.f.pattern[depth%len(d.f.pattern)]] = 60
	if k := d.f.bkspcAt; k > 0 && depth%k == 0 && !d.popped[seq][depth] {
		d.logit[d.f.tok.BkspcID()] = 80
	}
	return d.logit
}

func (d *fakeDec) Len(seq int) int { return len(d.stacks[seq]) }
func (d *fakeDec) Reset(seq int)   { d.stacks[seq] = nil }

// post sends a JSON body and returns the status and the body.
func post(t testing.TB, ctx context.Context, url string, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// completion is the client's view of a chat.completion.
type completion struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Index   int `json:"index"`
		Message *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string    `json:"finish_reason"`
		Ext          *ChoiceExt `json:"smtrain"`
	} `json:"choices"`
	Usage *Usage       `json:"usage"`
	Ext   *ResponseExt `json:"smtrain"`
}

func decodeCompletion(t testing.TB, b []byte) *completion {
	t.Helper()
	var c completion
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return &c
}

// readSSE parses an event stream into its data payloads, checking the
// framing: every event is one "data: " line followed by a blank line.
func readSSE(t testing.TB, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	expectBlank := false
	for sc.Scan() {
		line := sc.Text()
		if expectBlank {
			if line != "" {
				t.Fatalf("event not followed by a blank line: %q", line)
			}
			expectBlank = false
			continue
		}
		if !strings.HasPrefix(line, "data: ") {
			t.Fatalf("unexpected SSE line %q", line)
		}
		out = append(out, strings.TrimPrefix(line, "data: "))
		expectBlank = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond every 5 ms for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuf is a goroutine-safe bytes.Buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
