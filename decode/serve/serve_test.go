package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"smtrain/data"
	"smtrain/decode"
)

func TestModelsAndRoutes(t *testing.T) {
	_, ts := tinyServer(t, nil)
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "tiny-test" ||
		list.Data[0].Object != "model" || list.Data[0].Created == 0 || list.Data[0].OwnedBy == "" {
		t.Fatalf("models: %d %+v", resp.StatusCode, list)
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/models/tiny-test", 200},
		{"GET", "/v1/models/gpt-4", 404},
		{"GET", "/v1/nothing", 404},
		{"GET", "/v1/chat/completions", 405},
		{"DELETE", "/v1/models", 405},
		{"GET", "/healthz", 200},
	} {
		req, _ := http.NewRequest(c.method, ts.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: status %d (want %d), %v, %v", c.method, c.path, resp.StatusCode, c.status, body, err)
		}
		if c.status >= 400 {
			e, ok := body["error"].(map[string]any)
			if !ok || e["message"] == "" || e["type"] == nil {
				t.Fatalf("%s %s: not an OpenAI error: %v", c.method, c.path, body)
			}
		}
	}
}

// checkCompletion checks the schema and the internal consistency of a
// non-streaming response: replaying each choice's actions gives tokens
// whose text is the content, and usage adds up.
func checkCompletion(t *testing.T, c *completion, tok *data.Tokenizer, n int, stops []string) {
	t.Helper()
	if !strings.HasPrefix(c.ID, "chatcmpl-") || c.Object != "chat.completion" || c.Created == 0 || c.Model == "" || c.SystemFingerprint == "" {
		t.Fatalf("header fields: %+v", c)
	}
	if len(c.Choices) != n || c.Usage == nil || c.Ext == nil {
		t.Fatalf("%d choices (want %d), usage %v, ext %v", len(c.Choices), n, c.Usage, c.Ext)
	}
	sum := 0
	for i, ch := range c.Choices {
		if ch.Index != i || ch.Message == nil || ch.Message.Role != "assistant" || ch.Message.Content == nil || ch.FinishReason == nil || ch.Ext == nil {
			t.Fatalf("choice %d: %+v", i, ch)
		}
		x := ch.Ext
		toks, ok := decode.Replay(x.Actions, tok.BkspcID(), []int32{tok.EOSID(), tok.EndID()})
		if !ok || len(toks) != x.NumTokens || len(x.Actions) != x.NumActions || x.NumTokens > c.Ext.MaxTokens || x.NumActions > c.Ext.MaxActions {
			t.Fatalf("choice %d: actions %v replay to %v (ok %v), ext %+v", i, x.Actions, toks, ok, x)
		}
		nb := 0
		for _, a := range x.Actions {
			if a == tok.BkspcID() {
				nb++
			}
		}
		if nb != x.NumBkspc {
			t.Fatalf("choice %d: %d backspaces in actions, num_bkspc %d", i, nb, x.NumBkspc)
		}
		text := viaJSON(tok.Decode(toks))
		for _, s := range stops {
			if k := strings.Index(text, s); k >= 0 {
				text = text[:k]
			}
		}
		if *ch.Message.Content != text {
			t.Fatalf("choice %d: content %q, replayed text %q", i, *ch.Message.Content, text)
		}
		want := "length"
		if x.StopReason == string(decode.StopToken) || x.StopReason == string(decode.StopString) {
			want = "stop"
		}
		if *ch.FinishReason != want {
			t.Fatalf("choice %d: finish_reason %q for stop reason %s", i, *ch.FinishReason, x.StopReason)
		}
		sum += x.NumTokens
	}
	u := c.Usage
	if u.CompletionTokens != sum || u.TotalTokens != u.PromptTokens+u.CompletionTokens || u.PromptTokens <= 0 || u.PromptTokens > c.Ext.PromptTokensFull {
		t.Fatalf("usage %+v, completion tokens summed %d, ext %+v", u, sum, c.Ext)
	}
}

// viaJSON is s after a JSON round trip (invalid UTF-8 becomes U+FFFD).
func viaJSON(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

func TestChatCompletionSchemaAndSeed(t *testing.T) {
	s, ts := tinyServer(t, nil)
	tok := s.cfg.Tok
	body := `{"model":"tiny-test","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}],"max_tokens":12,"n":4,"seed":7,"temperature":1}`
	st, b := post(t, context.Background(), ts.URL, body)
	if st != 200 {
		t.Fatalf("status %d: %s", st, b)
	}
	c := decodeCompletion(t, b)
	checkCompletion(t, c, tok, 4, nil)
	want, err := decode.ChatPrompt(tok, []data.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hello"}}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if c.Usage.PromptTokens != len(want) || c.Ext.PromptTruncated || c.Ext.Seed != 7 || c.Model != "tiny-test" {
		t.Fatalf("prompt tokens %d (want %d), ext %+v, model %q", c.Usage.PromptTokens, len(want), c.Ext, c.Model)
	}
	bk := 0
	for _, ch := range c.Choices {
		bk += ch.Ext.NumBkspc
		if ch.Ext.NumBkspc > 0 && !strings.Contains(ch.Ext.ActionsText, "~~") {
			t.Fatalf("deletions not rendered: %q", ch.Ext.ActionsText)
		}
	}
	if bk == 0 {
		t.Fatal("no backspace in any choice: the test does not exercise deletions")
	}
	// Same seed: same choices. Another seed: different ones.
	_, b2 := post(t, context.Background(), ts.URL, body)
	c2 := decodeCompletion(t, b2)
	_, b3 := post(t, context.Background(), ts.URL, strings.Replace(body, `"seed":7`, `"seed":8`, 1))
	c3 := decodeCompletion(t, b3)
	same := true
	for i := range c.Choices {
		if !slices.Equal(c.Choices[i].Ext.Actions, c2.Choices[i].Ext.Actions) || *c.Choices[i].Message.Content != *c2.Choices[i].Message.Content {
			t.Fatalf("choice %d differs for the same seed", i)
		}
		same = same && slices.Equal(c.Choices[i].Ext.Actions, c3.Choices[i].Ext.Actions)
	}
	if same {
		t.Fatal("seed 8 gave the same choices as seed 7")
	}
	if c.ID == c2.ID {
		t.Fatal("two responses share an id")
	}
	// Without a seed the server picks one, reports it, and it reproduces.
	noSeed := strings.Replace(body, `"seed":7,`, ``, 1)
	_, b4 := post(t, context.Background(), ts.URL, noSeed)
	c4 := decodeCompletion(t, b4)
	_, b5 := post(t, context.Background(), ts.URL, strings.Replace(body, `"seed":7`, fmt.Sprintf(`"seed":%d`, int64(c4.Ext.Seed)), 1))
	c5 := decodeCompletion(t, b5)
	for i := range c4.Choices {
		if !slices.Equal(c4.Choices[i].Ext.Actions, c5.Choices[i].Ext.Actions) {
			t.Fatalf("reported seed %d does not reproduce choice %d", c4.Ext.Seed, i)
		}
	}
}

func TestGreedyAndContentParts(t *testing.T) {
	s, ts := tinyServer(t, nil)
	body := `{"messages":[{"role":"developer","content":[{"type":"text","text":"be"},{"type":"text","text":"brief"}]},{"role":"user","content":"hi"}],"temperature":0,"n":2,"max_completion_tokens":10}`
	st, b := post(t, context.Background(), ts.URL, body)
	if st != 200 {
		t.Fatalf("status %d: %s", st, b)
	}
	c := decodeCompletion(t, b)
	checkCompletion(t, c, s.cfg.Tok, 2, nil)
	if !c.Ext.Greedy || c.Ext.MaxTokens != 10 || !c.Choices[0].Ext.RetryBlock {
		t.Fatalf("greedy not applied: %+v %+v", c.Ext, c.Choices[0].Ext)
	}
	if !slices.Equal(c.Choices[0].Ext.Actions, c.Choices[1].Ext.Actions) {
		t.Fatal("greedy choices differ")
	}
	want, _ := decode.ChatPrompt(s.cfg.Tok, []data.Message{{Role: "system", Content: "be\nbrief"}, {Role: "user", Content: "hi"}}, 1000)
	if c.Usage.PromptTokens != len(want) {
		t.Fatalf("prompt tokens %d, want %d (parts joined by newlines, developer as system)", c.Usage.PromptTokens, len(want))
	}
}

func TestStopSequences(t *testing.T) {
	tok := data.ByteTokenizer()
	f := &slowFake{tok: tok, pattern: tok.EncodeOrdinary("abcd")}
	_, ts := startServer(t, f.config(256))
	// The prompt has some length L; the fake writes pattern[depth % 4] from
	// there, so the completion is a rotation of "abcd..." and "da" appears
	// within 5 tokens.
	st, b := post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"x"}],"stop":["da","zz"],"max_tokens":20,"seed":1}`)
	if st != 200 {
		t.Fatalf("status %d: %s", st, b)
	}
	c := decodeCompletion(t, b)
	checkCompletion(t, c, tok, 1, []string{"da", "zz"})
	ch := c.Choices[0]
	if *ch.FinishReason != "stop" || ch.Ext.StopReason != string(decode.StopString) || strings.Contains(*ch.Message.Content, "da") || !strings.HasSuffix(tok.Decode(tok.EncodeOrdinary(*ch.Message.Content))+"da", "da") {
		t.Fatalf("stop string: %q %s %+v", *ch.Message.Content, *ch.FinishReason, ch.Ext)
	}
	if len(*ch.Message.Content) > 4 {
		t.Fatalf("content %q runs past the first stop", *ch.Message.Content)
	}
	// Without a stop the fake never ends: finish_reason length.
	st, b = post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"x"}],"max_tokens":7,"stop":"zz"}`)
	c = decodeCompletion(t, b)
	if st != 200 || *c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != 7 || len(*c.Choices[0].Message.Content) != 7 {
		t.Fatalf("length: %d %s", st, b)
	}
}

func TestStreaming(t *testing.T) {
	s, ts := tinyServer(t, nil)
	tok := s.cfg.Tok
	body := `{"messages":[{"role":"user","content":"stream me"}],"max_tokens":16,"n":3,"seed":11,"temperature":1.3,"top_p":0.95}`
	st, b := post(t, context.Background(), ts.URL, body)
	if st != 200 {
		t.Fatalf("status %d: %s", st, b)
	}
	ref := decodeCompletion(t, b)
	checkCompletion(t, ref, tok, 3, nil)

	sbody := strings.Replace(body, `{`, `{"stream":true,"stream_options":{"include_usage":true},`, 1)
	req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", strings.NewReader(sbody))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readSSE(t, resp.Body)
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %v", events)
	}
	text := make([]string, 3)
	role := make([]bool, 3)
	finish := make([]string, 3)
	progress := make([][]int32, 3)
	var usage *Usage
	var id string
	for k, ev := range events[:len(events)-1] {
		c := decodeCompletion(t, []byte(ev))
		if c.Object != "chat.completion.chunk" || c.Model != "tiny-test" || c.Created == 0 || (id != "" && c.ID != id) {
			t.Fatalf("event %d: %s", k, ev)
		}
		id = c.ID
		if c.Usage != nil {
			if len(c.Choices) != 0 || k != len(events)-2 {
				t.Fatalf("usage chunk %d must be last with no choices: %s", k, ev)
			}
			usage = c.Usage
			continue
		}
		if len(c.Choices) != 1 {
			t.Fatalf("event %d: %d choices", k, len(c.Choices))
		}
		ch := c.Choices[0]
		i := ch.Index
		if ch.Delta == nil || finish[i] != "" {
			t.Fatalf("event %d: no delta, or a chunk after the finish: %s", k, ev)
		}
		if ch.Delta.Role != "" {
			if role[i] || ch.Delta.Role != "assistant" {
				t.Fatalf("event %d: role %q", k, ch.Delta.Role)
			}
			role[i] = true
		} else if !role[i] {
			t.Fatalf("event %d: content before the role chunk", k)
		}
		if ch.Delta.Content != nil {
			text[i] += *ch.Delta.Content
		}
		var raw struct {
			Choices []struct {
				Ext *struct {
					Actions []int32 `json:"actions"`
					Text    *string `json:"text"`
				} `json:"smtrain"`
			} `json:"choices"`
		}
		_ = json.Unmarshal([]byte(ev), &raw)
		if ch.FinishReason != nil {
			finish[i] = *ch.FinishReason
			if ch.Ext == nil || !slices.Equal(ch.Ext.Actions, ref.Choices[i].Ext.Actions) {
				t.Fatalf("choice %d: final chunk actions differ from the non-streaming ones", i)
			}
			if !strings.HasPrefix(fmt.Sprint(ch.Ext.Actions), strings.TrimSuffix(fmt.Sprint(progress[i]), "]")) {
				t.Fatalf("choice %d: progress actions %v are not a prefix of %v", i, progress[i], ch.Ext.Actions)
			}
		} else if x := raw.Choices[0].Ext; x != nil {
			progress[i] = append(progress[i], x.Actions...)
			toks, ok := decode.Replay(progress[i], tok.BkspcID(), nil)
			if !ok || x.Text == nil || *x.Text != viaJSON(tok.Decode(toks)) {
				t.Fatalf("choice %d: progress text %v, want the text of %v", i, x.Text, toks)
			}
		}
	}
	for i := range 3 {
		if text[i] != *ref.Choices[i].Message.Content || finish[i] != *ref.Choices[i].FinishReason || !role[i] {
			t.Fatalf("choice %d: streamed %q finish %q, non-streaming %q finish %q", i, text[i], finish[i], *ref.Choices[i].Message.Content, *ref.Choices[i].FinishReason)
		}
		if len(progress[i]) == 0 && ref.Choices[i].Ext.NumActions > 2 {
			t.Fatalf("choice %d: no progress reported", i)
		}
	}
	if usage == nil || *usage != *ref.Usage {
		t.Fatalf("stream usage %+v, want %+v", usage, ref.Usage)
	}
}

func TestBadRequests(t *testing.T) {
	s, ts := tinyServer(t, func(c *Config) { c.MaxBodyBytes, c.ClampMaxTokens = 4096, false })
	ok := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		name, body, param string
	}{
		{"empty body", ``, ""},
		{"bad JSON", `{"messages":[`, ""},
		{"syntax", `{"messages": nope}`, ""},
		{"trailing data", `{` + ok + `} {}`, ""},
		{"array body", `[1,2]`, ""},
		{"null body", `null`, ""},
		{"no messages", `{"model":"m"}`, "messages"},
		{"empty messages", `{"messages":[]}`, "messages"},
		{"messages a string", `{"messages":"hi"}`, "messages"},
		{"role a number", `{"messages":[{"role":5,"content":"hi"}]}`, "messages.role"},
		{"unknown role", `{"messages":[{"role":"robot","content":"hi"}]}`, "messages[0].role"},
		{"missing role", `{"messages":[{"content":"hi"}]}`, "messages[0].role"},
		{"content a number", `{"messages":[{"role":"user","content":3}]}`, "messages[0].content"},
		{"user content null", `{"messages":[{"role":"user","content":null}]}`, "messages[0].content"},
		{"image part", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, "messages[0].content"},
		{"max_tokens string", `{` + ok + `,"max_tokens":"12"}`, "max_tokens"},
		{"max_tokens float", `{` + ok + `,"max_tokens":1.5}`, "max_tokens"},
		{"max_tokens 0", `{` + ok + `,"max_tokens":0}`, "max_tokens"},
		{"max_tokens too large", `{` + ok + `,"max_tokens":100000}`, "max_tokens"},
		{"temperature string", `{` + ok + `,"temperature":"hot"}`, "temperature"},
		{"temperature 3", `{` + ok + `,"temperature":3}`, "temperature"},
		{"top_p 2", `{` + ok + `,"top_p":2}`, "top_p"},
		{"n 0", `{` + ok + `,"n":0}`, "n"},
		{"n 100", `{` + ok + `,"n":100}`, "n"},
		{"stream string", `{` + ok + `,"stream":"yes"}`, "stream"},
		{"stop number", `{` + ok + `,"stop":3}`, "stop"},
		{"stop empty", `{` + ok + `,"stop":[""]}`, "stop"},
		{"stop 5", `{` + ok + `,"stop":["a","b","c","d","e"]}`, "stop"},
		{"seed string", `{` + ok + `,"seed":"1"}`, "seed"},
		{"tools", `{` + ok + `,"tools":[{"type":"function","function":{"name":"f"}}]}`, "tools"},
		{"logprobs", `{` + ok + `,"logprobs":true}`, "logprobs"},
		{"json mode", `{` + ok + `,"response_format":{"type":"json_object"}}`, "response_format"},
		{"penalty", `{` + ok + `,"frequency_penalty":0.5}`, "frequency_penalty"},
		{"stream_options without stream", `{` + ok + `,"stream_options":{"include_usage":true}}`, "stream_options"},
	}
	for _, c := range cases {
		st, b := post(t, context.Background(), ts.URL, c.body)
		var e struct {
			Error *struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil || st != 400 || e.Error == nil || e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
			t.Errorf("%s: status %d body %s", c.name, st, b)
			continue
		}
		got := ""
		if e.Error.Param != nil {
			got = *e.Error.Param
		}
		if got != c.param {
			t.Errorf("%s: param %q, want %q (%s)", c.name, got, c.param, e.Error.Message)
		}
		if c.name == "max_tokens string" && !strings.Contains(e.Error.Message, "'max_tokens': expected an integer, got string") {
			t.Errorf("%s: message %q does not say what was expected", c.name, e.Error.Message)
		}
	}
	st, b := post(t, context.Background(), ts.URL, `{`+ok+`,"user":"`+strings.Repeat("x", 5000)+`"}`)
	if st != 413 || !strings.Contains(string(b), `"error"`) {
		t.Errorf("oversize body: %d %s", st, b)
	}
	// Ignored fields with default values and a foreign model name are fine.
	st, b = post(t, context.Background(), ts.URL, `{`+ok+`,"model":"tiny-test","user":"u","presence_penalty":0,"tools":[],"logprobs":false,"response_format":{"type":"text"},"max_tokens":4}`)
	if st != 200 {
		t.Errorf("benign extras: %d %s", st, b)
	}
	if got := s.Stats(); got.Completed != 1 || got.Active != 0 {
		t.Errorf("stats %+v", got)
	}
}

func TestPromptTruncation(t *testing.T) {
	s, ts := tinyServer(t, nil)
	tok := s.cfg.Tok
	msgs := []data.Message{{Role: "system", Content: "sys"}}
	for i := range 6 {
		msgs = append(msgs, data.Message{Role: "user", Content: fmt.Sprintf("question %d", i)}, data.Message{Role: "assistant", Content: fmt.Sprintf("answer %d", i)})
	}
	msgs = append(msgs, data.Message{Role: "user", Content: "last"})
	mb, _ := json.Marshal(msgs)
	body := fmt.Sprintf(`{"messages":%s,"max_tokens":20,"seed":3}`, mb)
	st, b := post(t, context.Background(), ts.URL, body)
	if st != 200 {
		t.Fatalf("status %d: %s", st, b)
	}
	c := decodeCompletion(t, b)
	checkCompletion(t, c, tok, 1, nil)
	want, err := decode.ChatPrompt(tok, msgs, 64-20)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Ext.PromptTruncated || c.Usage.PromptTokens != len(want) || c.Usage.PromptTokens > 44 || c.Ext.PromptTokensFull <= 64 {
		t.Fatalf("truncation: usage %+v ext %+v (want prompt %d)", c.Usage, c.Ext, len(want))
	}
	// Without max_tokens the completion gets the default (16) when the
	// prompt fits beside it, and the truncation leaves that much room.
	st, b = post(t, context.Background(), ts.URL, fmt.Sprintf(`{"messages":%s}`, mb))
	c = decodeCompletion(t, b)
	if st != 200 || c.Ext.MaxTokens != 16 || c.Usage.PromptTokens > 64-16 {
		t.Fatalf("default max tokens: %d %+v", st, c.Ext)
	}
	// A max_tokens beyond the context is clamped (to half the context,
	// as the prompt needs the rest) and reported.
	st, b = post(t, context.Background(), ts.URL, fmt.Sprintf(`{"messages":%s,"max_tokens":100000}`, mb))
	c = decodeCompletion(t, b)
	if st != 200 || c.Ext.MaxTokens != 32 || !c.Ext.MaxTokensClamped || c.Usage.PromptTokens > 32 || !c.Ext.PromptTruncated {
		t.Fatalf("clamped max tokens: %d %s", st, b)
	}
	st, b = post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"short"}],"max_tokens":100000}`)
	c = decodeCompletion(t, b)
	if st != 200 || c.Ext.MaxTokens != 64-c.Usage.PromptTokens || !c.Ext.MaxTokensClamped || c.Ext.PromptTruncated {
		t.Fatalf("clamped max tokens, short prompt: %d %s", st, b)
	}
	// Rejecting instead of truncating.
	_, ts2 := tinyServer(t, func(c *Config) { c.RejectLong = true })
	st, b = post(t, context.Background(), ts2.URL, body)
	if st != 400 || !strings.Contains(string(b), "context_length_exceeded") {
		t.Fatalf("reject long: %d %s", st, b)
	}
	st, b = post(t, context.Background(), ts2.URL, `{"messages":[{"role":"user","content":"short"}],"max_tokens":20}`)
	if st != 200 {
		t.Fatalf("short prompt rejected: %d %s", st, b)
	}
}

// TestCancelNonStreaming: a client that gives up stops its generation. The
// fake decoder counts forward steps; after the client cancels, the count
// must stop growing long before max_tokens.
func TestCancelNonStreaming(t *testing.T) {
	tok := data.ByteTokenizer()
	f := &slowFake{tok: tok, pattern: tok.EncodeOrdinary("ab"), delay: 2 * time.Millisecond}
	s, ts := startServer(t, f.config(100000))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions", strings.NewReader(`{"messages":[{"role":"user","content":"go"}],"max_tokens":50000}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, 10*time.Second, "generation to start", func() bool { return f.pushes.Load() >= 10 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("request finished instead of being cancelled")
	}
	waitFor(t, 10*time.Second, "the server to drop the request", func() bool { st := s.Stats(); return st.Cancelled == 1 && st.Active == 0 })
	n1 := f.pushes.Load()
	time.Sleep(50 * time.Millisecond)
	if n2 := f.pushes.Load(); n2 != n1 || n1 > 5000 {
		t.Fatalf("generation went on after the client left: %d then %d forward steps (max 50000)", n1, n2)
	}
}

func TestCancelStreaming(t *testing.T) {
	tok := data.ByteTokenizer()
	f := &slowFake{tok: tok, pattern: tok.EncodeOrdinary("ab"), delay: 2 * time.Millisecond, bkspcAt: 5}
	s, ts := startServer(t, f.config(100000))
	resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":"go"}],"max_tokens":50000,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	// Read until a progress chunk with a backspace arrives, then hang up.
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), fmt.Sprintf(",%d", tok.BkspcID())) {
		k, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("stream ended early: %v (%s)", err, seen.String())
		}
		seen.Write(buf[:k])
	}
	if !strings.Contains(seen.String(), `"delta":{}`) || !strings.Contains(seen.String(), `"role":"assistant"`) {
		t.Fatalf("unexpected stream start: %s", seen.String())
	}
	resp.Body.Close()
	waitFor(t, 10*time.Second, "the server to drop the stream", func() bool { st := s.Stats(); return st.Cancelled == 1 && st.Active == 0 })
	n1 := f.pushes.Load()
	time.Sleep(50 * time.Millisecond)
	if n2 := f.pushes.Load(); n2 != n1 || n1 > 5000 {
		t.Fatalf("generation went on after the client left: %d then %d forward steps", n1, n2)
	}
}

// TestConcurrencyBound: with MaxConcurrency 2 and a queue, six concurrent
// requests all succeed and never more than two decode at once (measured
// inside the decoder, not only by the server's own counter).
func TestConcurrencyBound(t *testing.T) {
	tok := data.ByteTokenizer()
	f := &slowFake{tok: tok, pattern: tok.EncodeOrdinary("xyz"), delay: 3 * time.Millisecond}
	cfg := f.config(4096)
	cfg.MaxConcurrency, cfg.MaxQueue = 2, 8
	s, ts := startServer(t, cfg)
	var wg sync.WaitGroup
	codes := make([]int, 6)
	bodies := make([][]byte, 6)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := ""
			if i%2 == 1 {
				stream = `"stream":true,`
			}
			codes[i], bodies[i] = post(t, context.Background(), ts.URL, `{`+stream+`"messages":[{"role":"user","content":"go"}],"max_tokens":15}`)
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: %d %s", i, c, bodies[i])
		}
	}
	st := s.Stats()
	if st.Completed != 6 || st.MaxActive != 2 || f.maxIn.Load() > 2 || f.maxIn.Load() < 2 || st.Active != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v, max concurrent decoder steps %d (want 2)", st, f.maxIn.Load())
	}
}

// TestQueueFull: with one slot and no queue a second request gets 429 at
// once; with a queue of one it waits and succeeds.
func TestQueueFull(t *testing.T) {
	tok := data.ByteTokenizer()
	for _, queue := range []int{0, 1} {
		f := &slowFake{tok: tok, pattern: tok.EncodeOrdinary("q"), delay: 2 * time.Millisecond}
		cfg := f.config(4096)
		cfg.MaxConcurrency, cfg.MaxQueue = 1, queue
		s, ts := startServer(t, cfg)
		first := make(chan int, 1)
		go func() {
			st, _ := post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"go"}],"max_tokens":150}`)
			first <- st
		}()
		waitFor(t, 10*time.Second, "the first request to decode", func() bool { return f.pushes.Load() > 0 })
		st, b := post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"go"}],"max_tokens":5}`)
		if queue == 0 {
			if st != 429 || !strings.Contains(string(b), `"rate_limit_exceeded"`) || s.Stats().Rejected != 1 {
				t.Fatalf("queue 0: %d %s", st, b)
			}
			if f.pushes.Load() >= 150 {
				t.Fatal("the first request finished before the second was sent: the test proves nothing")
			}
		} else if st != 200 {
			t.Fatalf("queue 1: %d %s", st, b)
		}
		if st := <-first; st != 200 {
			t.Fatalf("first request: %d", st)
		}
	}
}

func TestNewValidates(t *testing.T) {
	tok := data.ByteTokenizer()
	f := &slowFake{tok: tok, pattern: []int32{10}}
	base := f.config(64)
	for name, mod := range map[string]func(*Config){
		"no tokenizer":   func(c *Config) { c.Tok = nil },
		"concurrency 0":  func(c *Config) { c.MaxConcurrency = 0 },
		"negative queue": func(c *Config) { c.MaxQueue = -1 },
		"tiny context":   func(c *Config) { c.ContextLen = 2 },
		"small vocab":    func(c *Config) { c.VocabSize = 10 },
		"max n 0":        func(c *Config) { c.MaxN = 0 },
	} {
		c := base
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if s, err := New(base); err != nil || !reflect.DeepEqual(s.Stats(), Stats{}) {
		t.Fatalf("valid config: %v", err)
	}
}

// TestGracefulShutdown: cancelling Serve's context lets a running request
// finish within the grace period; past it the connection is closed and the
// generation cancelled.
func TestGracefulShutdown(t *testing.T) {
	tok := data.ByteTokenizer()
	for _, grace := range []time.Duration{30 * time.Second, 50 * time.Millisecond} {
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
		go func() { served <- s.Serve(ctx, ln, grace) }()
		url := "http://" + ln.Addr().String()
		maxTok := 200 // 0.4 s of decoding
		if grace < time.Second {
			maxTok = 50000
		}
		type reply struct {
			status int
			err    error
		}
		got := make(chan reply, 1)
		go func() {
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(`{"messages":[{"role":"user","content":"go"}],"max_tokens":%d}`, maxTok)))
			if err != nil {
				got <- reply{0, err}
				return
			}
			resp.Body.Close()
			got <- reply{resp.StatusCode, nil}
		}()
		waitFor(t, 10*time.Second, "decoding to start", func() bool { return f.pushes.Load() > 0 })
		cancel()
		if err := <-served; err != nil {
			t.Fatalf("grace %v: Serve: %v", grace, err)
		}
		r := <-got
		if grace > time.Second {
			if r.status != 200 || f.pushes.Load() != int64(maxTok-1) {
				t.Fatalf("grace %v: in-flight request got %d %v after %d steps, want 200 after %d", grace, r.status, r.err, f.pushes.Load(), maxTok-1)
			}
		} else {
			if r.err != nil || r.status != 503 {
				t.Fatalf("grace %v: cut request got %d %v, want a 503 shutdown error", grace, r.status, r.err)
			}
			waitFor(t, 10*time.Second, "generation to stop", func() bool { return s.Stats().Active == 0 })
			if n := f.pushes.Load(); n > 5000 {
				t.Fatalf("grace %v: %d steps: generation was not cancelled", grace, n)
			}
		}
	}
}

// TestOddHistories: histories the template must still handle.
func TestOddHistories(t *testing.T) {
	s, ts := tinyServer(t, nil)
	long := strings.Repeat("a long observation line\n", 30)
	for _, c := range []struct {
		name, msgs string
		truncated  bool
	}{
		{"only an assistant turn", `[{"role":"assistant","content":"x"}]`, false},
		{"assistant content null", `[{"role":"user","content":"hi"},{"role":"assistant","content":null},{"role":"tool","content":"out"}]`, false},
		{"one message longer than the context", `[{"role":"user","content":"` + strings.ReplaceAll(long, "\n", `\n`) + `"}]`, true},
		{"unicode", `[{"role":"user","content":"héllo → 世界 🙂"}]`, false},
	} {
		st, b := post(t, context.Background(), ts.URL, `{"messages":`+c.msgs+`,"max_tokens":10,"seed":1}`)
		if st != 200 {
			t.Fatalf("%s: %d %s", c.name, st, b)
		}
		comp := decodeCompletion(t, b)
		checkCompletion(t, comp, s.cfg.Tok, 1, nil)
		if comp.Ext.PromptTruncated != c.truncated || comp.Usage.PromptTokens > 64-10 {
			t.Fatalf("%s: ext %+v usage %+v", c.name, comp.Ext, comp.Usage)
		}
	}
}

// TestStreamNoProgress: without progress chunks a stream of n choices has
// a role, a content and a finish chunk per choice, then [DONE].
func TestStreamNoProgress(t *testing.T) {
	tok := data.ByteTokenizer()
	f := &slowFake{tok: tok, pattern: tok.EncodeOrdinary("pq"), bkspcAt: 3}
	cfg := f.config(256)
	cfg.NoProgress = true
	_, ts := startServer(t, cfg)
	resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":"x"}],"max_tokens":9,"n":2,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := readSSE(t, resp.Body)
	if len(events) != 7 || events[6] != "[DONE]" {
		t.Fatalf("%d events: %v", len(events), events)
	}
	for i, ev := range events[:6] {
		c := decodeCompletion(t, []byte(ev))
		d := c.Choices[0].Delta
		role, content, fin := d.Role != "", d.Content != nil && *d.Content != "", c.Choices[0].FinishReason != nil
		if (i < 2) != role || (i == 2 || i == 4) != content || (i == 3 || i == 5) != fin {
			t.Fatalf("event %d: %s", i, ev)
		}
		if fin && (c.Choices[0].Ext == nil || c.Choices[0].Ext.NumBkspc == 0 || len(*events2content(t, events, c.Choices[0].Index)) != 9) {
			t.Fatalf("event %d: final chunk %s", i, ev)
		}
	}
}

// events2content concatenates the content deltas of choice idx.
func events2content(t *testing.T, events []string, idx int) *string {
	s := ""
	for _, ev := range events[:len(events)-1] {
		c := decodeCompletion(t, []byte(ev))
		if len(c.Choices) == 1 && c.Choices[0].Index == idx && c.Choices[0].Delta.Content != nil {
			s += *c.Choices[0].Delta.Content
		}
	}
	return &s
}
