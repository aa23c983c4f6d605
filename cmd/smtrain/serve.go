package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"smtrain/decode"
	"smtrain/decode/serve"
	"smtrain/internal/apikey"
	"smtrain/model"
)

var cmdServe = &Command{
	Name:      "serve",
	UsageLine: "smtrain serve -ckpt DIR [-addr 127.0.0.1:8314] [-max_concurrency N] [-max_queue N] [-max_tokens N] [-max_n N] [-clamp_max_tokens=false] [-name ID] [-seed S] [-reject_long] [-no_bkspc] [-constrain action|none] [-api_key_file FILE] [-insecure_no_auth] [-quiet]",
	Short:     "serve a policy behind an OpenAI-compatible chat-completions API",
	Long: `Serve loads a checkpoint folder (or a training output folder with a
'latest' marker) and serves the policy over HTTP with the OpenAI
chat-completions API, so agent frameworks (and MLE-Dojo's local mode, which
expects one at localhost:8314) can use it with no glue code:

  GET  /v1/models, /v1/models/{id}
  POST /v1/chat/completions   messages, max_tokens (or max_completion_tokens),
                              temperature (0: greedy), top_p (0: greedy),
                              stop (up to 4),
                              seed, n, stream (+ stream_options.include_usage)
  GET  /healthz               counters: active, queued, completed, ...

Messages use the training chat template (roles system, user, assistant;
developer counts as system, tool as user). Prompts longer than the context
less max_tokens are left-truncated as in training (whole turns first); with
-reject_long they get 400 context_length_exceeded instead. A completion
gets max_tokens (or -max_tokens when the request has none), lowered when
the prompt needs the room but never below half the context; the prompt is
then truncated to fit beside it. Agent frameworks often ask for thousands
of tokens, more than a small model's context: the response's "smtrain"
object reports max_tokens_clamped. With -clamp_max_tokens=false a request's
max_tokens is used as given and one above the context is a 400.

The policy may backspace while it writes; the content returned is the final
text. Each choice has an extension object "smtrain" with the action ids
(<bkspc> included), their rendering with deleted text as ~~x~~, and the
backspace and action counts; usage.completion_tokens counts final tokens.
With stream: true the reply streams: a backspace in a streamed reply
reaches back at most -stream_window tokens (default 16; 0: unbounded),
so text further back is final and is sent as delta content while the
reply decodes (held back only where a stop string may still cut it).
Each chunk's "smtrain" extension also carries the raw actions taken since
the previous chunk (tokens and <bkspc>) and the current text, which may
still change, for clients that understand backspaces
(-stream_progress=false leaves the extension out). Non-streamed replies
have no window: a backspace may reach back to the prompt.

With -constrain action every reply is decoded under a grammar of MLE-Dojo's
reply format (prose, then a ` + "```" + `json action block that parses and
validates; see smtrain rollout), so an agent loop always gets a valid
action; a max_tokens too small for the shortest such reply is a 400.

At most -max_concurrency requests decode at once; up to -max_queue more
wait (until their client hangs up) and the rest get 429. A client that
disconnects cancels its generation. Bad requests get OpenAI-style error
JSON with status 400; features the policy cannot honour (tools, logprobs,
JSON mode, penalties) are refused, not ignored. One model is served,
named by -name (default: the checkpoint folder's name): a request for
another model id is a 404 model_not_found, as GET /v1/models/{id} is,
unless -any_model (then every id is answered by this model). A
max_tokens beyond the context is lowered to fit (-clamp_max_tokens, the
default; the response's smtrain.max_tokens_clamped and the header
X-Smtrain-Max-Tokens say so) or, without it, a 400 that states the real
limit.
Authentication: with -api_key_file FILE (one key per line, # comments) or
$SMTRAIN_SERVE_API_KEY (comma-separated keys) every route but /healthz needs
'Authorization: Bearer KEY' (an OpenAI client's apiKey); a missing or wrong
key is a 401 invalid_api_key. Without keys there is no authentication (an
Authorization header is ignored), so a non-loopback -addr (":8314" listens
on every interface) is refused unless -insecure_no_auth. Keys travel in
clear over http://: beyond a trusted network put a TLS reverse proxy
(Caddy, nginx) in front.

Requests without a seed get one derived from -seed and the request number
(reported in the response's "smtrain" object, so any answer can be
reproduced). SIGINT or SIGTERM stops accepting requests, lets running ones
finish for -grace, then closes.`,
}

func init() { cmdServe.Run = runServe }

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdServe.NewFlagSet(stderr)
	ckpt := fs.String("ckpt", "", "checkpoint folder or training output folder (required)")
	addr := fs.String("addr", "127.0.0.1:8314", "listen address (host:port; port 0 picks a free one)")
	maxConc := fs.Int("max_concurrency", 2, "requests decoded at once")
	maxQueue := fs.Int("max_queue", 16, "requests waiting for a slot before 429")
	maxTokens := fs.Int("max_tokens", 256, "completion tokens when a request gives no max_tokens")
	maxN := fs.Int("max_n", 8, "largest n (choices per request) accepted")
	actions := fs.Int("max_actions_factor", 4, "cap on all actions (tokens, <bkspc>) as a multiple of max_tokens")
	name := fs.String("name", "", "model id reported by /v1/models (default: the checkpoint folder's name)")
	seed := fs.Uint64("seed", 0, "seed for requests without one (0: from the clock, printed)")
	clamp := fs.Bool("clamp_max_tokens", true, "lower a request's max_tokens to fit the context instead of rejecting it")
	rejectLong := fs.Bool("reject_long", false, "reject prompts that do not fit instead of truncating them")
	noBkspc := fs.Bool("no_bkspc", false, "never choose <bkspc>")
	maxBody := fs.Int64("max_body", 8<<20, "largest request body in bytes")
	grace := fs.Duration("grace", 10*time.Second, "time running requests get to finish at shutdown")
	progress := fs.Bool("stream_progress", true, "send the actions taken and the current text in each stream chunk's extension while a stream decodes")
	window := fs.Int("stream_window", 16, "tokens a backspace may reach back in a streamed reply; older text streams as it becomes final (0: unbounded, content at the end)")
	quiet := fs.Bool("quiet", false, "no per-request log lines on stderr")
	anyModel := fs.Bool("any_model", false, "answer requests for any model id with this model (default: another id is a 404 model_not_found, as OpenAI does)")
	constrain := addConstrainFlag(fs, "constrain every reply")
	weights := addWeightsFlag(fs)
	auth := addServerAuthFlags(fs, apikey.ServeKey)
	if err := cmdServe.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	switch {
	case *ckpt == "":
		return usagef("-ckpt is required")
	case *maxConc < 1:
		return usagef("-max_concurrency must be >= 1, got %d", *maxConc)
	case *maxQueue < 0:
		return usagef("-max_queue must be >= 0, got %d", *maxQueue)
	case *maxTokens < 1:
		return usagef("-max_tokens must be >= 1, got %d", *maxTokens)
	case *maxN < 1:
		return usagef("-max_n must be >= 1, got %d", *maxN)
	case *actions < 1:
		return usagef("-max_actions_factor must be >= 1, got %d", *actions)
	case *maxBody < 1:
		return usagef("-max_body must be >= 1, got %d", *maxBody)
	case *grace < 0:
		return usagef("-grace must be >= 0, got %v", *grace)
	}
	keys, err := auth.keys()
	if err != nil {
		return err
	}
	dir, p, tok, err := loadPolicy(*ckpt)
	if err != nil {
		return err
	}
	id := *name
	if id == "" {
		id = filepath.Base(filepath.Clean(*ckpt))
	}
	cfg, err := serve.ConfigFor(p, tok, id)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	w, err := weights.load(p)
	if err != nil {
		return err
	}
	cfg.Factory = decode.WeightsFactory(w)
	if fi, err := os.Stat(filepath.Join(dir, model.ModelFile)); err == nil {
		cfg.Created = fi.ModTime()
	}
	cfg.AllowBkspc = cfg.AllowBkspc && !*noBkspc
	cfg.MaxConcurrency, cfg.MaxQueue = *maxConc, *maxQueue
	cfg.DefaultMaxTokens, cfg.MaxN, cfg.MaxActionsFactor = *maxTokens, *maxN, *actions
	cfg.RejectLong, cfg.MaxBodyBytes, cfg.ClampMaxTokens = *rejectLong, *maxBody, *clamp
	cfg.Seed = *seed
	cfg.NoProgress = !*progress
	cfg.AnyModel = *anyModel
	if *window < 0 {
		return usagef("-stream_window must be >= 0, got %d", *window)
	}
	cfg.StreamWindow = *window
	cfg.Grammar = constrain.grammar()
	cfg.Keys = keys
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if !*quiet {
		cfg.Log = stderr
	}
	srv, err := serve.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if err := auth.check(ln, keys, stderr); err != nil {
		return err
	}
	c := p.Cfg
	fmt.Fprintf(stdout, "serve: listening on http://%s/v1 | model %q (%s) L%d D%d H%d context %d vocab %d, %s weights | max concurrency %d, queue %d | seed %d | %s | %s\n",
		ln.Addr(), id, dir, c.NLayer, c.NEmbd, c.NHead, c.NPositions, c.VocabSize, w.Format(), *maxConc, *maxQueue, cfg.Seed, blasName(), authNote(keys))
	if err := srv.Serve(ctx, ln, *grace); err != nil {
		return err
	}
	st := srv.Stats()
	fmt.Fprintf(stdout, "serve: stopped | %d completed, %d rejected (429), %d cancelled, %d failed, %d cut at shutdown (-grace %s)\n", st.Completed, st.Rejected, st.Cancelled, st.Failed, st.Shutdown, *grace)
	return nil
}
