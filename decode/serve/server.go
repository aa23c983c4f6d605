// Package serve puts a trained policy behind an OpenAI-compatible HTTP API
// (the chat-completions subset agent frameworks and MLE-Dojo use):
//
//	GET  /v1/models                 the one model served
//	GET  /v1/models/{id}
//	POST /v1/chat/completions       messages, max_tokens, temperature,
//	                                top_p, stop, seed, n, stream
//	GET  /healthz                   {"ok": true, "active", "queued", ...}
//
// Messages go through the training chat template (data.ChatSeq) and are
// left-truncated like training (data.Truncate, whole turns first) to leave
// room for max_tokens, or rejected with 400 context_length_exceeded when
// the server was started with RejectLong. max_tokens itself is lowered when
// the prompt needs the room, never below half the context (see
// Config.ClampMaxTokens). The policy decodes with backspace
// over the KV cache (decode.RunBatch); the returned content is the final
// text after every backspace. Each choice carries an extension object
// "smtrain" with the full action sequence (ids, <bkspc> included), its
// rendering with deletions as ~~x~~, and the backspace and action counts.
//
// Streaming (stream: true) sends server-sent events in the OpenAI chunk
// format ending with "data: [DONE]". Because a backspace may delete any
// generated token until the sample ends, a choice's content is sent once it
// is final, when the choice finishes; while it is being decoded, chunks with
// an empty delta report in their "smtrain" extension the actions taken
// since the last chunk and the text the completion holds now (so a client
// can show the policy typing and deleting). The concatenated content deltas
// equal the non-streaming content for the same request and seed.
//
// Concurrency: at most MaxConcurrency requests decode at once; up to
// MaxQueue more wait in a queue (each until its client goes away) and
// further requests get 429 rate_limit_exceeded at once. A client that
// disconnects cancels its request: decoding stops before the next action
// (decode.RunBatch checks the context at every step) and its slot is freed.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/internal/apikey"
	"smtrain/model"
)

// Config configures a Server. Build it with ConfigFor (from a checkpoint)
// and adjust the serving limits.
type Config struct {
	// ModelName is the id reported by /v1/models and in responses. The
	// model field of requests is accepted and ignored (one model is served).
	ModelName string
	// Created is the model's creation time (reported by /v1/models).
	Created time.Time
	// Tok is the checkpoint's tokenizer (chat template, detokenizer).
	Tok *data.Tokenizer
	// Factory builds a decoder with nseq slots of maxLen entries; one per
	// request.
	Factory decode.Factory
	// ContextLen is the model's context window (n_positions).
	ContextLen int
	// VocabSize is the width of the model's logits; ids at or above the
	// tokenizer's vocabulary are never sampled.
	VocabSize int
	// AllowBkspc lets the policy choose <bkspc> (false when the model has
	// none).
	AllowBkspc bool
	// MaxActionsFactor caps all actions (tokens, backspaces, the stop
	// token) at this multiple of max_tokens; 0 means 4 (decode's default).
	MaxActionsFactor int
	// Grammar, when set, constrains every completion (decode.Options.Grammar;
	// e.g. envbridge.NewActionGrammar for MLE-Dojo's reply format). A
	// request whose max_tokens cannot hold the grammar's shortest text is a
	// 400.
	Grammar decode.Grammar

	// MaxConcurrency is the number of requests decoded at once (>= 1).
	MaxConcurrency int
	// MaxQueue is the number of requests that may wait for a slot; more
	// get 429. 0: none wait.
	MaxQueue int
	// DefaultMaxTokens is max_tokens when a request gives none. It is
	// lowered when the prompt needs the room, never below half the context
	// (the prompt is truncated to fit beside it).
	DefaultMaxTokens int
	// ClampMaxTokens lowers a request's max_tokens the same way instead of
	// rejecting values beyond the context (agent frameworks often send
	// max_tokens of several thousand); the response's smtrain extension
	// says when it happened. When false, max_tokens above context-2 is a
	// 400 and the prompt is truncated to context - max_tokens.
	ClampMaxTokens bool
	// MaxN is the largest n accepted (choices per request).
	MaxN int
	// NoProgress turns off the progress chunks of streams (empty deltas
	// carrying the actions taken), for clients that expect content in
	// every chunk; a stream then has only role, content and finish chunks.
	NoProgress bool
	// StreamWindow bounds how far back <bkspc> reaches in a streamed
	// reply (decode.Options.BkspcWindow): text no <bkspc> can reach any
	// more is sent as content while the reply decodes. 0: unbounded, the
	// content then arrives when the reply is done. Non-streamed replies
	// are never bounded.
	StreamWindow int
	// AnyModel answers requests for any model id (and GET
	// /v1/models/{id} for any id) with the served model; by default an id
	// other than ModelName is a 404 model_not_found, as OpenAI does.
	AnyModel bool
	// RejectLong rejects prompts that do not fit instead of truncating.
	RejectLong bool
	// MaxBodyBytes bounds a request body (413 beyond); 0: 8 MiB.
	MaxBodyBytes int64
	// Seed derives the seed of requests that give none (request k gets a
	// seed mixed from Seed and k); the seed used is in the response.
	Seed uint64
	// Log receives one line per request (nil: none).
	Log io.Writer
	// Keys, when set, are the API keys every route but the health checks
	// needs (see auth.go).
	Keys *apikey.Keys
}

// ConfigFor returns a Config serving float32 params p with tokenizer tok,
// after checking that they agree (vocabulary, <bkspc> id), with default
// limits: 2 concurrent requests, a queue of 16, max_tokens 256, n up to 8.
func ConfigFor(p *model.Params, tok *data.Tokenizer, name string) (Config, error) {
	cfg := p.Cfg
	if p.DType != model.F32 {
		return Config{}, fmt.Errorf("serve: needs float32 parameters, got %v", p.DType)
	}
	if tok.VocabSize() > cfg.VocabSize {
		return Config{}, fmt.Errorf("tokenizer has %d tokens but the model's vocabulary is %d", tok.VocabSize(), cfg.VocabSize)
	}
	if cfg.BkspcTokenID >= 0 && int32(cfg.BkspcTokenID) != tok.BkspcID() {
		return Config{}, fmt.Errorf("config bkspc_token_id %d but the tokenizer's <bkspc> is %d", cfg.BkspcTokenID, tok.BkspcID())
	}
	return Config{
		ModelName:        name,
		Created:          time.Now(),
		Tok:              tok,
		Factory:          decode.ModelFactory(p),
		ContextLen:       cfg.NPositions,
		VocabSize:        cfg.VocabSize,
		AllowBkspc:       cfg.BkspcTokenID >= 0,
		MaxConcurrency:   2,
		MaxQueue:         16,
		DefaultMaxTokens: 256,
		ClampMaxTokens:   true,
		MaxN:             8,
	}, nil
}

// Stats are the server's counters (also served by /healthz).
type Stats struct {
	// Active requests are decoding; Queued wait for a slot.
	Active int64 `json:"active"`
	Queued int64 `json:"queued"`
	// MaxActive is the most requests ever decoding at once.
	MaxActive int64 `json:"max_active"`
	// Completed requests ended with a response; Rejected got 429;
	// Cancelled were abandoned by their client (while queued or
	// decoding); Failed ended with a server error.
	Completed int64 `json:"completed"`
	Rejected  int64 `json:"rejected"`
	Cancelled int64 `json:"cancelled"`
	Failed    int64 `json:"failed"`
	// Shutdown requests were cut when the shutdown grace ran out: a
	// stream then ends with an error event and [DONE], a non-streaming
	// request gets a 503.
	Shutdown int64 `json:"shutdown"`
}

// Server serves one policy. It is safe for concurrent use.
type Server struct {
	cfg   Config
	lim   limits
	slots chan struct{}
	base  decode.Options
	start time.Time

	reqs                                   atomic.Uint64
	active, queued, maxActive              atomic.Int64
	completed, rejected, cancelled, failed atomic.Int64
	shutdown                               atomic.Int64
	logMu                                  sync.Mutex

	// stopping is cancelled when the shutdown grace runs out: running
	// requests then stop decoding and end with a shutdown error.
	stopping   context.Context
	stopCancel context.CancelFunc
}

// errShutdown is the cause of a request context cut at shutdown.
var errShutdown = errors.New("the server is shutting down")

// requestContext is ctx, also cancelled (with cause errShutdown) when the
// server's shutdown grace runs out.
func (s *Server) requestContext(ctx context.Context) (context.Context, func()) {
	c, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.stopping, func() { cancel(errShutdown) })
	return c, func() { stop(); cancel(nil) }
}

// shutdownError is the error a request cut at shutdown gets.
func shutdownError() *apiError {
	code := "server_shutting_down"
	return &apiError{Status: 503, Type: "server_error", Code: &code, Message: "the server is shutting down and stopped this generation; retry on another server or later"}
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Tok == nil || cfg.Factory == nil:
		return nil, errors.New("serve: config needs a tokenizer and a decoder factory")
	case cfg.ContextLen < 4:
		return nil, fmt.Errorf("serve: context length %d is too small", cfg.ContextLen)
	case cfg.VocabSize < cfg.Tok.VocabSize():
		return nil, fmt.Errorf("serve: model vocabulary %d is smaller than the tokenizer's %d", cfg.VocabSize, cfg.Tok.VocabSize())
	case cfg.MaxConcurrency < 1:
		return nil, fmt.Errorf("serve: max concurrency must be >= 1, got %d", cfg.MaxConcurrency)
	case cfg.MaxQueue < 0:
		return nil, fmt.Errorf("serve: max queue must be >= 0, got %d", cfg.MaxQueue)
	case cfg.DefaultMaxTokens < 1:
		return nil, fmt.Errorf("serve: default max tokens must be >= 1, got %d", cfg.DefaultMaxTokens)
	case cfg.MaxN < 1:
		return nil, fmt.Errorf("serve: max n must be >= 1, got %d", cfg.MaxN)
	case cfg.MaxActionsFactor < 0:
		return nil, fmt.Errorf("serve: max actions factor must be >= 0, got %d", cfg.MaxActionsFactor)
	}
	if cfg.ModelName == "" {
		cfg.ModelName = "smtrain"
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.MaxActionsFactor == 0 {
		cfg.MaxActionsFactor = 4
	}
	tok := cfg.Tok
	o := decode.DefaultOptions()
	o.AllowBkspc = cfg.AllowBkspc
	o.Workers = 1
	o.Grammar = cfg.Grammar
	o = decode.OptionsFor(tok, decode.Settings{Base: o, ModelVocab: cfg.VocabSize, ContextLen: cfg.ContextLen})
	s := &Server{
		cfg:   cfg,
		slots: make(chan struct{}, cfg.MaxConcurrency),
		base:  o,
		start: time.Now(),
		lim: limits{
			MaxTokens: cfg.ContextLen - 2,
			MaxN:      cfg.MaxN,
			Context:   cfg.ContextLen,
			Model:     cfg.ModelName,
			AnyModel:  cfg.AnyModel,
		},
	}
	if cfg.ClampMaxTokens {
		s.lim.MaxTokens = math.MaxInt
	}
	s.stopping, s.stopCancel = context.WithCancel(context.Background())
	return s, nil
}

// ModelName is the served model's id.
func (s *Server) ModelName() string { return s.cfg.ModelName }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Active: s.active.Load(), Queued: s.queued.Load(), MaxActive: s.maxActive.Load(),
		Completed: s.completed.Load(), Rejected: s.rejected.Load(),
		Cancelled: s.cancelled.Load(), Failed: s.failed.Load(), Shutdown: s.shutdown.Load(),
	}
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("GET /v1/models/{id...}", s.handleModel)
	mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /v1/healthz", s.handleHealth)
	mux.HandleFunc("/", s.handleNotFound)
	return s.withAuth(mux)
}

// Serve serves the API on ln until ctx is done, then shuts down: it stops
// accepting, lets running requests finish for up to grace, then stops the
// remaining generations, whose requests end with a shutdown error (a
// stream with an error event and [DONE], others with a 503; counted in
// Stats.Shutdown), and closes the connections.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		// Grace is over: stop the generations, let their handlers write
		// the shutdown error (bounded), then close what is left.
		s.stopCancel()
		fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
		if srv.Shutdown(fctx) != nil {
			srv.Close()
		}
		fcancel()
	}
	<-errc
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeError writes an OpenAI-style error.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, errorBody{Error: e})
}

func (s *Server) modelObject() map[string]any {
	return map[string]any{"id": s.cfg.ModelName, "object": "model", "created": s.cfg.Created.Unix(), "owned_by": "smtrain"}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"object": "list", "data": []any{s.modelObject()}})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.cfg.AnyModel {
		m := s.modelObject()
		m["id"] = id
		writeJSON(w, 200, m)
		return
	}
	if id != s.cfg.ModelName {
		code := "model_not_found"
		writeError(w, &apiError{Status: 404, Type: "invalid_request_error", Message: fmt.Sprintf("the model %q does not exist (this server serves %q)", id, s.cfg.ModelName), Code: &code})
		return
	}
	writeJSON(w, 200, s.modelObject())
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	st := s.Stats()
	writeJSON(w, 200, struct {
		OK    bool   `json:"ok"`
		Model string `json:"model"`
		Stats
	}{true, s.cfg.ModelName, st})
}

// knownPaths answer 405 (not 404) to other methods.
var knownPaths = map[string]bool{"/v1/models": true, "/v1/chat/completions": true, "/healthz": true, "/v1/healthz": true}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	if knownPaths[r.URL.Path] {
		writeError(w, &apiError{Status: 405, Type: "invalid_request_error", Message: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
		return
	}
	code := "unknown_url"
	writeError(w, &apiError{Status: 404, Type: "invalid_request_error", Message: fmt.Sprintf("unknown URL: %s %s", r.Method, r.URL.Path), Code: &code})
}

// errBusy means the queue is full.
var errBusy = errors.New("busy")

// acquire takes a decoding slot, waiting in the queue (bounded by MaxQueue)
// until ctx is done. It returns errBusy when the queue is full.
func (s *Server) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
	default:
		if s.queued.Add(1) > int64(s.cfg.MaxQueue) {
			s.queued.Add(-1)
			return errBusy
		}
		select {
		case s.slots <- struct{}{}:
			s.queued.Add(-1)
		case <-ctx.Done():
			s.queued.Add(-1)
			return ctx.Err()
		}
	}
	n := s.active.Add(1)
	for {
		m := s.maxActive.Load()
		if n <= m || s.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	return nil
}

func (s *Server) release() {
	s.active.Add(-1)
	<-s.slots
}

// logf writes one log line.
func (s *Server) logf(format string, args ...any) {
	if s.cfg.Log == nil {
		return
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.cfg.Log, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}
