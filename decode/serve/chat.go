package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"smtrain/data"
	"smtrain/decode"
)

// job is one validated chat-completions request, ready to decode.
type job struct {
	id        string
	created   int64
	p         *params
	prompt    []int32 // after truncation
	fullLen   int     // prompt tokens before truncation
	maxTokens int
	clamped   bool // max_tokens was lowered to fit the context
	opts      decode.Options
}

// Usage is OpenAI's token accounting. CompletionTokens counts the final
// tokens of every choice (what the content holds); the actions behind them,
// backspaces included, are in the smtrain extension.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ChoiceExt is the "smtrain" extension of a choice: how the final text was
// reached.
type ChoiceExt struct {
	// Actions are the action ids in order: tokens, <bkspc> and the stop
	// token if one was chosen. Replaying them gives the final tokens.
	Actions []int32 `json:"actions"`
	// ActionsText renders the actions with deleted text as ~~x~~.
	ActionsText string `json:"actions_text"`
	NumActions  int    `json:"num_actions"`
	NumBkspc    int    `json:"num_bkspc"`
	// NumTokens is the number of final completion tokens.
	NumTokens int `json:"num_tokens"`
	// HitCap is true when the choice ended at the action cap.
	HitCap bool `json:"hit_cap"`
	// StopReason is decode's reason (stop_token, stop_string,
	// max_new_tokens, context_full, action_cap).
	StopReason string `json:"stop_reason"`
	RetryBlock bool   `json:"retry_block"`
}

// ResponseExt is the top-level "smtrain" extension of a response.
type ResponseExt struct {
	// Seed is the seed used: the request's (as the int64 of its 64-bit
	// pattern), or one the server derived, below 2^53 so that every JSON
	// client (JavaScript's numbers included) can send it back unchanged.
	Seed int64 `json:"seed"`
	// PromptTokensFull is the templated prompt's length before
	// truncation; PromptTruncated says whether turns were dropped.
	PromptTokensFull int  `json:"prompt_tokens_full"`
	PromptTruncated  bool `json:"prompt_truncated"`
	// MaxTokens is the completion budget used; MaxTokensClamped says it is
	// lower than the request's max_tokens (see Config.ClampMaxTokens).
	MaxTokens        int   `json:"max_tokens"`
	MaxTokensClamped bool  `json:"max_tokens_clamped"`
	MaxActions       int   `json:"max_actions"`
	Greedy           bool  `json:"greedy"`
	BkspcID          int32 `json:"bkspc_id"`
}

// message is a response message or a stream delta.
type message struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type choice struct {
	Index        int        `json:"index"`
	Message      *message   `json:"message,omitempty"`
	Delta        *message   `json:"delta,omitempty"`
	Logprobs     *struct{}  `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
	Ext          *ChoiceExt `json:"smtrain,omitempty"`
}

// progress is the extension of a progress chunk: the actions taken since
// the choice's previous chunk (tokens and <bkspc>; the final chunk's
// extension has the full sequence) and the text the completion holds now
// (after backspaces; it may still change, so it is not content).
type progress struct {
	Actions []int32 `json:"actions"`
	Text    string  `json:"text"`
}

// response is a chat.completion or a chat.completion.chunk.
type response struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []any        `json:"choices"`
	Usage             *Usage       `json:"usage,omitempty"`
	Ext               *ResponseExt `json:"smtrain,omitempty"`
}

// progressChoice is a stream chunk choice reporting actions in progress.
type progressChoice struct {
	Index        int       `json:"index"`
	Delta        message   `json:"delta"` // content: text no <bkspc> can reach any more
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
	Ext          progress  `json:"smtrain"`
}

// maxDerivedSeed bounds the seeds the server derives: 2^53 - 1, the
// largest integer a float64 (a JavaScript number) holds exactly.
const maxDerivedSeed = 1<<53 - 1

// splitmix is the SplitMix64 finaliser (derives request seeds).
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// prepare applies the chat template, sizes the completion and truncates
// (or rejects) the prompt.
func (s *Server) prepare(p *params) (*job, *apiError) {
	k := s.reqs.Add(1)
	j := &job{
		id:      fmt.Sprintf("chatcmpl-%x-%d", s.start.UnixNano()&0xffffffffff, k),
		created: time.Now().Unix(),
		p:       p,
	}
	tok := s.cfg.Tok
	all := append(append([]data.Message(nil), p.Messages...), data.Message{Role: data.RoleAssistant})
	seq, err := data.ChatSeq(tok, all)
	if err != nil {
		return nil, badRequest("messages", "invalid_value", "chat template: %v", err)
	}
	j.fullLen = seq.NumInputs()
	ctxLen := s.cfg.ContextLen
	j.maxTokens = p.MaxTokens
	if !p.MaxTokensSet || s.cfg.ClampMaxTokens {
		// The completion gets what was asked for (or the default), shrunk
		// when the prompt needs the room, but never below half the context.
		want := p.MaxTokens
		if !p.MaxTokensSet {
			want = s.cfg.DefaultMaxTokens
		}
		j.maxTokens = min(want, max(ctxLen-j.fullLen, ctxLen/2))
		j.clamped = p.MaxTokensSet && j.maxTokens < want
	}
	if g := s.cfg.Grammar; g != nil && j.maxTokens < g.Dist(g.Start()) {
		return nil, badRequest("max_tokens", "invalid_value", "this server constrains replies to a format whose shortest reply takes %d tokens; max_tokens is %d", g.Dist(g.Start()), j.maxTokens)
	}
	room := ctxLen - j.maxTokens
	if j.fullLen > room && s.cfg.RejectLong {
		return nil, badRequest("messages", "context_length_exceeded",
			"this model's context window is %d tokens; the messages take %d tokens and max_tokens is %d: shorten the messages or lower max_tokens", ctxLen, j.fullLen, j.maxTokens)
	}
	j.prompt, err = decode.ChatPrompt(tok, p.Messages, room)
	if err != nil {
		return nil, badRequest("messages", "context_length_exceeded", "messages do not fit in %d tokens (context %d less max_tokens %d): %v", room, ctxLen, j.maxTokens, err)
	}
	o := s.base
	if p.Stream {
		o.BkspcWindow = s.cfg.StreamWindow
	}
	o.MaxNewTokens = j.maxTokens
	o.MaxActions = s.cfg.MaxActionsFactor * j.maxTokens
	o.Greedy = p.Greedy
	if !p.Greedy {
		o.Temperature = p.Temperature
		if p.TopP < 1 {
			o.TopP = p.TopP
		}
	}
	o.StopStrings = p.Stop
	o.Seed = p.Seed
	if !p.SeedSet {
		o.Seed = splitmix(s.cfg.Seed^splitmix(k)) & maxDerivedSeed
	}
	o.BatchSize = p.N
	if err := o.Validate(); err != nil {
		return nil, badRequest("", "invalid_value", "%v", err)
	}
	j.opts = o
	return j, nil
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	p, aerr := parseRequest(r.Body, s.lim)
	var j *job
	if aerr == nil {
		j, aerr = s.prepare(p)
	}
	if aerr != nil {
		s.logf("POST /v1/chat/completions %d %s", aerr.Status, aerr.Message)
		writeError(w, aerr)
		return
	}
	if j.clamped {
		// Clients that ignore the smtrain extension see it here.
		w.Header().Set("X-Smtrain-Max-Tokens", fmt.Sprintf("%d (max_tokens %d lowered to fit the context of %d tokens)", j.maxTokens, p.MaxTokens, s.cfg.ContextLen))
	}
	ctx, done := s.requestContext(r.Context())
	defer done()
	if err := s.acquire(ctx); err != nil {
		if errors.Is(err, errBusy) {
			s.rejected.Add(1)
			code := "rate_limit_exceeded"
			e := &apiError{Status: 429, Type: "rate_limit_error", Code: &code,
				Message: fmt.Sprintf("server busy: %d requests decoding and %d queued (limits %d and %d); retry later", s.active.Load(), s.queued.Load(), s.cfg.MaxConcurrency, s.cfg.MaxQueue)}
			w.Header().Set("Retry-After", "1")
			s.logf("POST /v1/chat/completions 429 busy")
			writeError(w, e)
			return
		}
		if context.Cause(ctx) == errShutdown {
			s.shutdown.Add(1)
			s.logf("POST /v1/chat/completions %s 503: shutdown while queued", j.id)
			writeError(w, shutdownError())
			return
		}
		s.cancelled.Add(1)
		s.logf("POST /v1/chat/completions %s: client left while queued", j.id)
		return
	}
	defer s.release()
	if j.p.Stream {
		s.stream(w, ctx, j, t0)
		return
	}
	res, err := s.run(ctx, j, nil)
	if err != nil {
		s.fail(w, ctx, j, err)
		return
	}
	resp := s.response(j, res)
	s.completed.Add(1)
	s.logLine(j, res, t0, 200)
	writeJSON(w, 200, resp)
}

// fail handles a decoding error: a cancelled request is counted and left
// (its client is gone), anything else is a 500.
func (s *Server) fail(w http.ResponseWriter, ctx context.Context, j *job, err error) {
	if context.Cause(ctx) == errShutdown {
		s.shutdown.Add(1)
		s.logf("POST /v1/chat/completions %s 503: cut at shutdown", j.id)
		writeError(w, shutdownError())
		return
	}
	if ctx.Err() != nil {
		s.cancelled.Add(1)
		s.logf("POST /v1/chat/completions %s: cancelled by the client", j.id)
		return
	}
	s.failed.Add(1)
	s.logf("POST /v1/chat/completions %s 500 %v", j.id, err)
	writeError(w, &apiError{Status: 500, Type: "server_error", Message: "generation failed: " + err.Error()})
}

// run decodes the job's n choices in one batched decoder. obs, when not
// nil, wraps the decoder to report actions as they are taken.
func (s *Server) run(ctx context.Context, j *job, obs *observer) ([]decode.Result, error) {
	n := j.p.N
	maxLen := min(len(j.prompt)+j.opts.MaxNewTokens, s.cfg.ContextLen)
	st, err := s.cfg.Factory(n, maxLen)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if obs != nil {
		obs.Stepper = st
		st = obs
	}
	prompts := make([][]int32, n)
	for i := range prompts {
		prompts[i] = j.prompt
	}
	res, _, err := decode.RunBatch(ctx, st, prompts, 0, j.opts)
	return res, err
}

// finishReason maps decode's stop reason onto OpenAI's.
func finishReason(r decode.StopReason) string {
	switch r {
	case decode.StopToken, decode.StopString:
		return "stop"
	}
	return "length" // max_new_tokens, context_full, action_cap
}

// content returns the choice's final text, cut before the first stop
// string (OpenAI does not return the stop sequence).
func content(r *decode.Result, stops []string) string {
	text := r.Text
	cut := len(text)
	for _, s := range stops {
		if i := strings.Index(text, s); i >= 0 && i < cut {
			cut = i
		}
	}
	return text[:cut]
}

func (s *Server) choiceExt(r *decode.Result) *ChoiceExt {
	return &ChoiceExt{
		Actions:     r.Actions,
		ActionsText: decode.RenderActions(r.Actions, s.base.BkspcID, s.cfg.Tok.Decode),
		NumActions:  r.NumActions,
		NumBkspc:    r.NumBkspc,
		NumTokens:   len(r.Tokens),
		HitCap:      r.HitCap,
		StopReason:  string(r.Stop),
		RetryBlock:  r.RetryBlock,
	}
}

func (s *Server) usage(j *job, res []decode.Result) *Usage {
	u := &Usage{PromptTokens: len(j.prompt)}
	for i := range res {
		u.CompletionTokens += len(res[i].Tokens)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

func (s *Server) responseExt(j *job) *ResponseExt {
	return &ResponseExt{
		Seed:             int64(j.opts.Seed),
		PromptTokensFull: j.fullLen,
		PromptTruncated:  len(j.prompt) < j.fullLen,
		MaxTokens:        j.maxTokens,
		MaxTokensClamped: j.clamped,
		MaxActions:       j.opts.MaxActions,
		Greedy:           j.opts.Greedy,
		BkspcID:          s.base.BkspcID,
	}
}

// fingerprint identifies the serving setup.
const fingerprint = "smtrain-backspace"

// response builds a non-streaming chat.completion.
func (s *Server) response(j *job, res []decode.Result) *response {
	out := &response{ID: j.id, Object: "chat.completion", Created: j.created, Model: s.cfg.ModelName, SystemFingerprint: fingerprint}
	for i := range res {
		r := &res[i]
		text := content(r, j.p.Stop)
		fr := finishReason(r.Stop)
		out.Choices = append(out.Choices, choice{Index: i, Message: &message{Role: "assistant", Content: &text}, FinishReason: &fr, Ext: s.choiceExt(r)})
	}
	out.Usage = s.usage(j, res)
	out.Ext = s.responseExt(j)
	return out
}

func (s *Server) logLine(j *job, res []decode.Result, t0 time.Time, status int) {
	toks, acts, bk := 0, 0, 0
	for i := range res {
		toks += len(res[i].Tokens)
		acts += res[i].NumActions
		bk += res[i].NumBkspc
	}
	mode := "json"
	if j.p.Stream {
		mode = "stream"
	}
	s.logf("POST /v1/chat/completions %s %d %s n=%d prompt=%d/%d completion=%d actions=%d bkspc=%d %.2fs",
		j.id, status, mode, j.p.N, len(j.prompt), j.fullLen, toks, acts, bk, time.Since(t0).Seconds())
}

// observer wraps a decoder and records, per slot, the actions taken since
// the last take: pushed tokens and pops (<bkspc>). Stop tokens and a last
// token that ends a sample are not pushed, so they only appear in the
// final result.
type observer struct {
	decode.Stepper
	bkspc   int32
	mu      sync.Mutex
	pending [][]int32 // per slot: actions since the last take
	cur     [][]int32 // per slot: the completion tokens now
	high    []int     // per slot: the most tokens the completion has had
	notify  chan struct{}
}

var _ decode.Stepper = (*observer)(nil)

func newObserver(n int, bkspc int32) *observer {
	return &observer{bkspc: bkspc, pending: make([][]int32, n), cur: make([][]int32, n), high: make([]int, n), notify: make(chan struct{}, 1)}
}

// Push forwards to the decoder and records the tokens.
func (o *observer) Push(seqs []int, tokens []int32) error {
	if err := o.Stepper.Push(seqs, tokens); err != nil {
		return err
	}
	o.mu.Lock()
	for i, q := range seqs {
		o.pending[q] = append(o.pending[q], tokens[i])
		o.cur[q] = append(o.cur[q], tokens[i])
		o.high[q] = max(o.high[q], len(o.cur[q]))
	}
	o.mu.Unlock()
	o.signal()
	return nil
}

// Pop forwards to the decoder and records a <bkspc>.
func (o *observer) Pop(seq int) error {
	if err := o.Stepper.Pop(seq); err != nil {
		return err
	}
	o.mu.Lock()
	o.pending[seq] = append(o.pending[seq], o.bkspc)
	if n := len(o.cur[seq]); n > 0 {
		o.cur[seq] = o.cur[seq][:n-1]
	}
	o.mu.Unlock()
	o.signal()
	return nil
}

func (o *observer) signal() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// take returns and clears the recorded actions, with a copy of the
// current tokens of every slot that has new actions and the most tokens
// each slot has had.
func (o *observer) take() (actions, cur [][]int32, high []int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	actions = o.pending
	o.pending = make([][]int32, len(actions))
	cur = make([][]int32, len(actions))
	for i, a := range actions {
		if len(a) > 0 {
			cur[i] = append([]int32(nil), o.cur[i]...)
		}
	}
	return actions, cur, append([]int(nil), o.high...)
}
