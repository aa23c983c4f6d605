package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"smtrain/decode"
)

// sse writes server-sent events ("data: JSON\n\n"), flushing each one.
type sse struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
	err error
}

// event writes one data event with v as JSON (or raw when v is a string
// like "[DONE]").
func (e *sse) event(v any) {
	if e.err != nil {
		return
	}
	e.buf.Reset()
	e.buf.WriteString("data: ")
	if s, ok := v.(string); ok {
		e.buf.WriteString(s)
	} else {
		b, err := json.Marshal(v)
		if err != nil {
			e.err = err
			return
		}
		e.buf.Write(b)
	}
	e.buf.WriteString("\n\n")
	if _, err := e.w.Write(e.buf.Bytes()); err != nil {
		e.err = err
		return
	}
	e.err = e.rc.Flush()
}

// stream decodes j and answers with chat.completion.chunk events: a role
// chunk per choice, progress chunks (empty delta; the actions taken and
// the current text in the smtrain extension) while decoding, then per choice its final content and a
// finish chunk, the usage chunk if asked for, and data: [DONE].
func (s *Server) stream(w http.ResponseWriter, ctx context.Context, j *job, t0 time.Time) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
	out := &sse{w: w, rc: http.NewResponseController(w)}
	chunk := func(choices ...any) *response {
		if choices == nil {
			choices = []any{}
		}
		return &response{ID: j.id, Object: "chat.completion.chunk", Created: j.created, Model: s.cfg.ModelName, SystemFingerprint: fingerprint, Choices: choices}
	}
	empty := ""
	for i := 0; i < j.p.N; i++ {
		out.event(chunk(choice{Index: i, Delta: &message{Role: "assistant", Content: &empty}}))
	}

	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	obs := newObserver(j.p.N, s.base.BkspcID)
	type result struct {
		res []decode.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.run(gctx, j, obs)
		done <- result{res, err}
	}()
	// sent[i] is the content of choice i sent so far: the text of tokens
	// no <bkspc> can reach (Config.StreamWindow), less what a stop string
	// could still cut.
	sent := make([]string, j.p.N)
	holdBack := 0
	for _, st := range j.p.Stop {
		holdBack = max(holdBack, len(st)-1)
	}
	final := j.opts
	sendProgress := func() {
		actions, cur, high := obs.take()
		for i, acts := range actions {
			if len(acts) == 0 {
				continue
			}
			var delta *string
			if n := final.FinalTokens(high[i]); n > 0 && n <= len(cur[i]) {
				text := streamable(s.cfg.Tok.Decode(cur[i][:n]), j.p.Stop, holdBack)
				if len(text) > len(sent[i]) && strings.HasPrefix(text, sent[i]) {
					d := text[len(sent[i]):]
					delta, sent[i] = &d, text
				}
			}
			if s.cfg.NoProgress {
				if delta != nil {
					out.event(chunk(choice{Index: i, Delta: &message{Content: delta}}))
				}
				continue
			}
			out.event(chunk(progressChoice{Index: i, Delta: message{Content: delta}, Ext: progress{Actions: acts, Text: s.cfg.Tok.Decode(cur[i])}}))
		}
		if out.err != nil {
			cancel() // the client is gone: stop decoding
		}
	}
	var r result
loop:
	for {
		select {
		case <-obs.notify:
			if s.cfg.NoProgress && final.BkspcWindow == 0 {
				obs.take()
				continue
			}
			sendProgress()
		case r = <-done:
			break loop
		}
	}
	if r.err != nil {
		if context.Cause(ctx) == errShutdown && out.err == nil {
			s.shutdown.Add(1)
			s.logf("POST /v1/chat/completions %s: stream cut at shutdown", j.id)
			out.event(errorBody{Error: shutdownError()})
			out.event("[DONE]")
			return
		}
		if ctx.Err() != nil || out.err != nil {
			s.cancelled.Add(1)
			s.logf("POST /v1/chat/completions %s: stream cancelled by the client", j.id)
			return
		}
		s.failed.Add(1)
		s.logf("POST /v1/chat/completions %s stream error %v", j.id, r.err)
		out.event(errorBody{Error: &apiError{Status: 500, Type: "server_error", Message: "generation failed: " + r.err.Error()}})
		return
	}
	if !s.cfg.NoProgress {
		sendProgress()
	}
	for i := range r.res {
		res := &r.res[i]
		text := content(res, j.p.Stop)
		if !strings.HasPrefix(text, sent[i]) { // cannot happen: sent text is final
			s.logf("POST /v1/chat/completions %s: streamed content %q is not a prefix of the reply %q", j.id, sent[i], text)
			sent[i] = ""
		}
		if rest := text[len(sent[i]):]; rest != "" {
			out.event(chunk(choice{Index: i, Delta: &message{Content: &rest}}))
		}
		fr := finishReason(res.Stop)
		out.event(chunk(choice{Index: i, Delta: &message{}, FinishReason: &fr, Ext: s.choiceExt(res)}))
	}
	if j.p.IncludeUsage {
		c := chunk()
		c.Usage = s.usage(j, r.res)
		c.Ext = s.responseExt(j)
		out.event(c)
	}
	out.event("[DONE]")
	if out.err != nil {
		s.cancelled.Add(1)
		return
	}
	s.completed.Add(1)
	s.logLine(j, r.res, t0, 200)
}
