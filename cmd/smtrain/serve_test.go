package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"smtrain/envbridge"
)

// lockedBuf is a goroutine-safe buffer for a running command's output.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs `smtrain serve` on a free port over a tiny checkpoint
// reached through a training output folder's 'latest' marker. It returns
// the base URL, the output folder, the command's stdout, and a stop
// function that sends the shutdown (cancels ctx) and returns the exit code.
func startServe(t *testing.T, extra ...string) (string, string, *lockedBuf, func() int) {
	t.Helper()
	dir, _ := tinyCheckpoint(t)
	out := filepath.Dir(dir)
	if err := os.WriteFile(filepath.Join(out, "latest"), []byte(filepath.Base(dir)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &lockedBuf{}, &lockedBuf{}
	code := make(chan int, 1)
	args := append([]string{"serve", "-ckpt", out, "-addr", "127.0.0.1:0", "-max_tokens", "16", "-seed", "5"}, extra...)
	go func() { code <- run(ctx, args, stdout, stderr) }()
	re := regexp.MustCompile(`listening on (http://[0-9.:]+/v1)`)
	deadline := time.Now().Add(20 * time.Second)
	var base string
	for base == "" {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited with %d: %s%s", c, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no address printed: %s %s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := false
	stop := func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		select {
		case c := <-code:
			return c
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not stop after the shutdown signal")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	return base, out, stdout, stop
}

func TestServeCommand(t *testing.T) {
	base, out, stdout, stop := startServe(t)
	resp, err := http.Get(base + "/models")
	if err != nil {
		t.Fatal(err)
	}
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&models)
	resp.Body.Close()
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != filepath.Base(out) {
		t.Fatalf("models: %v %+v", err, models)
	}
	body := `{"messages":[{"role":"user","content":"hello"}],"max_tokens":8,"seed":3}`
	resp, err = http.Post(base+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var c struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &c); err != nil || resp.StatusCode != 200 || c.Object != "chat.completion" || len(c.Choices) != 1 || c.Usage.CompletionTokens > 8 {
		t.Fatalf("chat: %d %s %v", resp.StatusCode, b, err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d after shutdown", code)
	}
	if !strings.Contains(stdout.String(), "stopped | 1 completed") {
		t.Fatalf("stdout: %s", stdout.String())
	}
	if _, err := http.Get(base + "/models"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestServeUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "-ckpt is required"},
		{[]string{"-ckpt", "x", "-max_concurrency", "0"}, 2, "-max_concurrency"},
		{[]string{"-ckpt", "x", "-max_tokens", "0"}, 2, "-max_tokens"},
		{[]string{"-ckpt", "x", "extra"}, 2, "unexpected argument"},
		{[]string{"-ckpt", filepath.Join(t.TempDir(), "none")}, 1, "no such folder"},
		{[]string{"-ckpt", t.TempDir()}, 1, "neither a checkpoint folder"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"serve"}, c.args...), &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errb.String())
		}
	}
}

// TestServeCurl streams with curl when it is installed.
func TestServeCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	base, _, _, _ := startServe(t)
	cmd := exec.Command(curl, "-sS", "-N", "--max-time", "60", base+"/chat/completions",
		"-H", "Content-Type: application/json",
		"-d", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":10,"stream":true,"seed":1}`)
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "data: {") || !strings.HasSuffix(s, "data: [DONE]\n\n") || !strings.Contains(s, `"finish_reason":"`) {
		t.Fatalf("curl stream:\n%s", s)
	}
	b, err = exec.Command(curl, "-sS", "--max-time", "60", "-w", "\n%{http_code}", base+"/chat/completions", "-d", `{"messages":[]}`).Output()
	if err != nil || !strings.HasSuffix(string(b), "\n400") || !strings.Contains(string(b), `"invalid_request_error"`) {
		t.Fatalf("curl bad request: %v %s", err, b)
	}
}

// openaiClientJS exercises the official openai npm client (CommonJS, so
// NODE_PATH finds the package): models, a non-streaming call, a streaming
// call read chunk by chunk, the client's stream helper that accumulates a
// final completion, and its mapping of a 400.
const openaiClientJS = `
const OpenAI = require('openai');
const client = new OpenAI({ baseURL: process.argv[2], apiKey: 'unused', maxRetries: 0, timeout: 60000 });
const req = { model: process.argv[3], messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello' }], max_tokens: 12, n: 2, seed: 5, temperature: 1 };
(async () => {
  const out = { version: require('openai/version').VERSION };
  out.models = (await client.models.list()).data.map(m => m.id);
  out.json = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  out.stream = { texts: {}, finish: {}, usage: null, chunks: 0 };
  for await (const chunk of stream) {
    out.stream.chunks++;
    for (const c of chunk.choices) {
      out.stream.texts[c.index] = (out.stream.texts[c.index] || '') + (c.delta.content || '');
      if (c.finish_reason) out.stream.finish[c.index] = c.finish_reason;
    }
    if (chunk.usage) out.stream.usage = chunk.usage;
  }
  const runner = client.chat.completions.stream(req);
  out.helper = await runner.finalChatCompletion();
  try {
    await client.chat.completions.create({ model: process.argv[3], messages: [] });
    out.err = null;
  } catch (e) {
    out.err = { status: e.status, name: e.constructor.name, message: e.message, param: e.param, type: e.type };
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e && e.stack || e); process.exit(1); });
`

// openaiNodePath finds a node_modules folder holding the openai package:
// $SMTRAIN_NODE_PATH, else npm's global root. "" when there is none.
func openaiNodePath() string {
	var cands []string
	if p := os.Getenv("SMTRAIN_NODE_PATH"); p != "" {
		cands = append(cands, p)
	}
	if npm, err := exec.LookPath("npm"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if b, err := exec.CommandContext(ctx, npm, "root", "-g").Output(); err == nil {
			cands = append(cands, strings.TrimSpace(string(b)))
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "openai", "package.json")); err == nil {
			return c
		}
	}
	return ""
}

// TestServeOpenAINodeClient runs the official OpenAI client (npm openai,
// under node) against `smtrain serve`. It skips when node or the package
// is missing (install: npm install -g openai@6).
func TestServeOpenAINodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	nodePath := openaiNodePath()
	if nodePath == "" {
		t.Skip("npm package openai not installed (npm install -g openai@6, or set SMTRAIN_NODE_PATH)")
	}
	base, out, _, _ := startServe(t)
	script := filepath.Join(t.TempDir(), "client.cjs")
	if err := os.WriteFile(script, []byte(openaiClientJS), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, base, filepath.Base(out)) // the served model id
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, stderr.String())
	}
	type choice struct {
		Index        int    `json:"index"`
		FinishReason string `json:"finish_reason"`
		Message      struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Ext struct {
			Actions []int32 `json:"actions"`
		} `json:"smtrain"`
	}
	type usage struct {
		PromptTokens, CompletionTokens, TotalTokens int
	}
	var res struct {
		Version string   `json:"version"`
		Models  []string `json:"models"`
		JSON    struct {
			Object  string   `json:"object"`
			Choices []choice `json:"choices"`
			Usage   struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
				TotalTokens      int `json:"total_tokens"`
			} `json:"usage"`
		} `json:"json"`
		Stream struct {
			Texts  map[string]string `json:"texts"`
			Finish map[string]string `json:"finish"`
			Usage  *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
				TotalTokens      int `json:"total_tokens"`
			} `json:"usage"`
			Chunks int `json:"chunks"`
		} `json:"stream"`
		Helper struct {
			Choices []choice `json:"choices"`
		} `json:"helper"`
		Err *struct {
			Status int    `json:"status"`
			Name   string `json:"name"`
			Param  string `json:"param"`
			Type   string `json:"type"`
		} `json:"err"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("client output %s: %v", b, err)
	}
	t.Logf("openai npm client %s: %d stream chunks", res.Version, res.Stream.Chunks)
	if len(res.Models) != 1 || res.Models[0] != filepath.Base(out) {
		t.Fatalf("models %v", res.Models)
	}
	j := res.JSON
	if j.Object != "chat.completion" || len(j.Choices) != 2 || j.Usage.TotalTokens != j.Usage.PromptTokens+j.Usage.CompletionTokens {
		t.Fatalf("non-streaming: %+v", j)
	}
	for i, c := range j.Choices {
		k := fmt.Sprint(i)
		if c.Index != i || c.Message.Role != "assistant" || len(c.Ext.Actions) == 0 {
			t.Fatalf("choice %d: %+v", i, c)
		}
		if res.Stream.Texts[k] != c.Message.Content || res.Stream.Finish[k] != c.FinishReason {
			t.Fatalf("choice %d: streamed %q (%s), non-streaming %q (%s)", i, res.Stream.Texts[k], res.Stream.Finish[k], c.Message.Content, c.FinishReason)
		}
	}
	if u := res.Stream.Usage; u == nil || u.PromptTokens != j.Usage.PromptTokens || u.CompletionTokens != j.Usage.CompletionTokens || u.TotalTokens != j.Usage.TotalTokens {
		t.Fatalf("stream usage %+v, want %+v", res.Stream.Usage, j.Usage)
	}
	// The client's stream helper accumulated the same request (same seed,
	// same n: the same batch layout, so bit-identical samples).
	if len(res.Helper.Choices) != 2 {
		t.Fatalf("stream helper: %d choices", len(res.Helper.Choices))
	}
	for i, c := range res.Helper.Choices {
		if c.Index != i || c.Message.Content != j.Choices[i].Message.Content || c.FinishReason != j.Choices[i].FinishReason || c.Message.Role != "assistant" {
			t.Fatalf("stream helper choice %d: %+v, want content %q", i, c, j.Choices[i].Message.Content)
		}
	}
	if e := res.Err; e == nil || e.Status != 400 || e.Name != "BadRequestError" || e.Param != "messages" || e.Type != "invalid_request_error" {
		t.Fatalf("error mapping: %+v", res.Err)
	}
}

// TestServeConstrainAction: with -constrain action every choice of a random
// tiny model is a reply whose action parses and validates, and a
// max_tokens below the format's shortest reply is a 400 naming it.
func TestServeConstrainAction(t *testing.T) {
	base, _, _, _ := startServe(t, "-constrain", "action")
	post := func(body string) (int, []byte) {
		resp, err := http.Post(base+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := post(`{"messages":[{"role":"user","content":"go"}],"max_tokens":48,"n":3,"seed":4}`)
	var c struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &c); err != nil || code != 200 || len(c.Choices) != 3 {
		t.Fatalf("chat: %d %s %v", code, b, err)
	}
	for i, ch := range c.Choices {
		if _, err := envbridge.ParseAction(ch.Message.Content); err != nil {
			t.Fatalf("choice %d: %v: %q", i, err, ch.Message.Content)
		}
	}
	code, b = post(`{"messages":[{"role":"user","content":"go"}],"max_tokens":8}`)
	g := envbridge.NewActionGrammar()
	if want := fmt.Sprintf("shortest reply takes %d tokens", g.Dist(g.Start())); code != 400 || !strings.Contains(string(b), want) {
		t.Fatalf("short max_tokens: %d %s", code, b)
	}
}
