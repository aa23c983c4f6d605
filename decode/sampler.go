package decode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NewRand returns the random stream of sample index under seed. Every
// sample draws from its own stream, so results do not depend on how
// samples are scheduled.
func NewRand(seed uint64, index int) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix(seed), splitmix(seed^(uint64(index)+1)*0x9e3779b97f4a7c15)))
}

// splitmix is the SplitMix64 finaliser (decorrelates nearby seeds).
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// seqState is one live sample of a batch.
type seqState struct {
	res      *Result
	slot     int
	rng      *rand.Rand
	block    int32 // retry-blocked token at the current top, -1 if none
	limit    int   // completion length that ends the sample
	limitWhy StopReason
	start    time.Time
	done     bool
	gram     *grammarRun // nil without Options.Grammar
	final    int         // completion tokens no <bkspc> may reach (Options.BkspcWindow)
}

// RunBatch decodes prompts[i] in slot i of st (st must have at least
// len(prompts) slots of len(prompt) + MaxNewTokens entries). Sample i has
// index first+i, which selects its random stream. All live samples take one
// action per step; the token actions of a step go to the decoder in one
// batched Push, backspaces pop without a forward pass.
func RunBatch(ctx context.Context, st Stepper, prompts [][]int32, first int, o Options) ([]Result, Stats, error) {
	var stats Stats
	if err := o.Validate(); err != nil {
		return nil, stats, err
	}
	retry := o.retryBlockOn()
	maxActions := o.maxActions()
	results := make([]Result, len(prompts))
	states := make([]*seqState, len(prompts))

	t0 := time.Now()
	for i, p := range prompts {
		idx := first + i
		if len(p) == 0 {
			return nil, stats, fmt.Errorf("sample %d: empty prompt (it needs at least a BOS or role marker)", idx)
		}
		s := &seqState{res: &results[i], slot: i, rng: NewRand(o.Seed, idx), block: -1, limit: o.MaxNewTokens, limitWhy: StopMaxNewTokens}
		if o.ContextLen > 0 {
			room := o.ContextLen - len(p)
			if room <= 0 {
				return nil, stats, fmt.Errorf("sample %d: prompt of %d tokens fills the context window of %d", idx, len(p), o.ContextLen)
			}
			if room < s.limit {
				s.limit, s.limitWhy = room, StopContextFull
			}
		}
		*s.res = Result{Index: idx, Prompt: append([]int32(nil), p...), Tokens: []int32{}, StopTokenID: -1, RetryBlock: retry, Greedy: o.Greedy}
		if err := st.Prefill(i, p); err != nil {
			return nil, stats, fmt.Errorf("sample %d: prefill: %w", idx, err)
		}
		if n := st.Len(i); n != len(p) {
			return nil, stats, fmt.Errorf("sample %d: decoder holds %d entries after a prefill of %d", idx, n, len(p))
		}
		states[i] = s
		stats.PrefillTokens += len(p)
	}
	var allow []bool // the grammar's mask, reused across samples and steps
	if o.Grammar != nil && len(states) > 0 {
		v := len(st.Logits(states[0].slot))
		toks, err := grammarTokens(&o, v)
		if err != nil {
			return nil, stats, err
		}
		allow = make([]bool, v)
		cache := newGrammarCache(o.Grammar, toks)
		start := o.Grammar.Start()
		for _, s := range states {
			if d := o.Grammar.Dist(start); d < 0 || d > s.limit {
				return nil, stats, fmt.Errorf("sample %d: the grammar needs at least %d tokens, but the completion may have only %d", s.res.Index, d, s.limit)
			}
			s.gram = &grammarRun{c: cache, states: []int{start}}
		}
	}
	t1 := time.Now()
	stats.Prefill = t1.Sub(t0)
	for _, s := range states {
		s.start = t1
	}

	var c chooser
	seqs := make([]int, 0, len(states))
	toks := make([]int32, 0, len(states))
	pushed := make([]*seqState, 0, len(states))
	live := states
	finish := func(s *seqState, why StopReason) {
		s.done = true
		s.res.Stop = why
		s.res.HitCap = why == StopActionCap
		s.res.Duration = time.Since(s.start)
		if sec := s.res.Duration.Seconds(); sec > 0 {
			s.res.TokensPerSec = float64(s.res.NumActions-s.res.NumBkspc) / sec
		}
	}
	for len(live) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, stats, err
		}
		seqs, toks, pushed = seqs[:0], toks[:0], pushed[:0]
		for _, s := range live {
			r := s.res
			logits := st.Logits(s.slot)
			if len(logits) == 0 {
				return nil, stats, fmt.Errorf("sample %d: decoder returned no logits", r.Index)
			}
			m := stateMask(&o, len(logits), len(r.Tokens) > s.final, s.block)
			if s.gram != nil && len(allow) == len(logits) {
				// keep the text completable within both the tokens and the
				// actions left (a backspace costs an action too)
				acts := maxActions - r.NumActions
				s.gram.allow(allow, o.StopTokens, min(s.limit-len(r.Tokens), acts))
				m.allow = allow
				if m.bkspc >= 0 && !s.gram.canPop(acts) {
					m.bkspc = -1
				}
			}
			a, err := c.choose(logits, &o, m, s.rng)
			if err != nil {
				return nil, stats, fmt.Errorf("sample %d, action %d: %w", r.Index, len(r.Actions), err)
			}
			s.block = -1
			r.Actions = append(r.Actions, a)
			r.NumActions++
			switch {
			case m.bkspc >= 0 && a == m.bkspc:
				if err := st.Pop(s.slot); err != nil {
					return nil, stats, fmt.Errorf("sample %d: pop: %w", r.Index, err)
				}
				removed := r.Tokens[len(r.Tokens)-1]
				r.Tokens = r.Tokens[:len(r.Tokens)-1]
				if s.gram != nil {
					s.gram.pop()
				}
				r.NumBkspc++
				stats.Pops++
				if retry {
					s.block = removed
				}
				if r.NumActions >= maxActions {
					finish(s, StopActionCap)
				}
			case containsID(o.StopTokens, a):
				r.StopTokenID = a
				finish(s, StopToken)
			default:
				r.Tokens = append(r.Tokens, a)
				if o.BkspcWindow > 0 {
					s.final = max(s.final, len(r.Tokens)-o.BkspcWindow)
				}
				if s.gram != nil {
					s.gram.push(a)
				}
				switch {
				case stopString(&o, r):
					finish(s, StopString)
				case len(r.Tokens) >= s.limit:
					finish(s, s.limitWhy)
				case r.NumActions >= maxActions:
					finish(s, StopActionCap)
				default:
					seqs = append(seqs, s.slot)
					toks = append(toks, a)
					pushed = append(pushed, s)
				}
			}
		}
		stats.Actions += len(live)
		if len(seqs) > 0 {
			if err := st.Push(seqs, toks); err != nil {
				return nil, stats, fmt.Errorf("push of %d tokens: %w", len(seqs), err)
			}
			stats.Steps++
			stats.Pushes += len(seqs)
			for _, s := range pushed {
				s.res.NumPushes++
			}
		}
		n := 0
		for _, s := range live {
			if !s.done {
				live[n] = s
				n++
			}
		}
		live = live[:n]
	}
	stats.Decode = time.Since(t1)
	if sec := stats.Decode.Seconds(); sec > 0 {
		stats.DecodeTokensPerSec = float64(stats.Pushes) / sec
	}
	stats.Samples = len(states)
	for i := range results {
		r := &results[i]
		if r.HitCap {
			stats.HitCap++
		}
		if o.Detokenize != nil {
			r.Text = o.Detokenize(r.Tokens)
		}
	}
	return results, stats, nil
}

// stopString reports whether r's completion contains a stop string and
// records the match.
func stopString(o *Options, r *Result) bool {
	if len(o.StopStrings) == 0 {
		return false
	}
	text := o.Detokenize(r.Tokens)
	for _, s := range o.StopStrings {
		if strings.Contains(text, s) {
			r.StopText = s
			return true
		}
	}
	return false
}

// Generate decodes one sample per prompt (sample i has index i). Samples
// are cut into batches of o.BatchSize by index; o.Workers goroutines each
// build a decoder with f and decode whole batches. The results are in
// prompt order and identical for any number of workers (see
// Options.BatchSize for the batch layout).
func Generate(ctx context.Context, f Factory, prompts [][]int32, o Options) ([]Result, Stats, error) {
	var stats Stats
	if err := o.Validate(); err != nil {
		return nil, stats, err
	}
	if len(prompts) == 0 {
		return nil, stats, errors.New("no prompts")
	}
	bs := o.BatchSize
	if bs == 0 {
		bs = min(8, len(prompts))
	}
	groups := (len(prompts) + bs - 1) / bs
	workers := o.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, groups)
	maxLen := 0
	for _, p := range prompts {
		maxLen = max(maxLen, len(p)+o.MaxNewTokens)
	}
	if o.ContextLen > 0 {
		maxLen = min(maxLen, o.ContextLen)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]Result, len(prompts))
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	t0 := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := f(bs, maxLen)
			if err != nil {
				fail(fmt.Errorf("decoder: %w", err))
				return
			}
			for {
				g := int(next.Add(1) - 1)
				if g >= groups || ctx.Err() != nil {
					return
				}
				lo, hi := g*bs, min((g+1)*bs, len(prompts))
				res, s, err := RunBatch(ctx, st, prompts[lo:hi], lo, o)
				if err != nil {
					fail(err)
					return
				}
				copy(results[lo:hi], res)
				mu.Lock()
				stats.add(s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, stats, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, stats, err
	}
	stats.Wall = time.Since(t0)
	if sec := stats.Wall.Seconds(); sec > 0 {
		stats.TokensPerSec = float64(stats.Pushes) / sec
	}
	if sec := stats.Decode.Seconds(); sec > 0 {
		stats.DecodeTokensPerSec = float64(stats.Pushes) / sec
	}
	return results, stats, nil
}
