package decode

import (
	"errors"
	"fmt"

	"smtrain/data"
)

// Grammar is a byte-level deterministic automaton that constrains what a
// completion may spell (grammar-constrained decoding; see Options.Grammar).
// envbridge.ActionGrammar is one: MLE-Dojo's agent reply format.
type Grammar interface {
	// Start is the state before any byte.
	Start() int
	// Next is the state after byte b from state s, or -1 when b is not
	// allowed there.
	Next(s int, b byte) int
	// Accepting reports whether the text that led to s is complete.
	Accepting(s int) bool
	// Dist is the fewest bytes from s to an accepting state (-1: none).
	Dist(s int) int
}

// grammarRun is one sample's view of the grammar: the automaton state
// after each completion token, popped with the token on <bkspc>.
type grammarRun struct {
	c      *grammarCache
	states []int // states[i]: after the first i completion tokens
}

// grammarCache holds, for each automaton state a batch has reached, the
// state after every token (so a step's mask costs one lookup per token,
// not a walk over its bytes: 1.3 ms per step for a 50k vocabulary), and
// the states' distances. One per batch (the samples of a batch share it).
type grammarCache struct {
	g    Grammar
	toks [][]byte        // bytes of each token that may extend a completion (nil: never)
	next map[int][]int32 // state -> state after each token (-1: refused)
	dist []int32         // by state: g.Dist, or -2 before it is asked
}

func newGrammarCache(g Grammar, toks [][]byte) *grammarCache {
	return &grammarCache{g: g, toks: toks, next: map[int][]int32{}}
}

// row is the state after each token from state s.
func (c *grammarCache) row(s int) []int32 {
	if r, ok := c.next[s]; ok {
		return r
	}
	r := make([]int32, len(c.toks))
	for id, b := range c.toks {
		r[id] = -1
		if b != nil {
			r[id] = int32(advance(c.g, s, b))
		}
	}
	c.next[s] = r
	return r
}

// distance is g.Dist(s), memoised.
func (c *grammarCache) distance(s int) int {
	for s >= len(c.dist) {
		c.dist = append(c.dist, -2)
	}
	if c.dist[s] == -2 {
		c.dist[s] = int32(c.g.Dist(s))
	}
	return int(c.dist[s])
}

// grammarTokens builds the byte table of a vocabulary of size v: ordinary
// tokens (TokenBytes reports true and a non-empty string) that are not
// banned; special tokens, stop tokens and <bkspc> never extend a
// completion.
func grammarTokens(o *Options, v int) ([][]byte, error) {
	if o.TokenBytes == nil {
		return nil, errors.New("a grammar needs TokenBytes")
	}
	toks := make([][]byte, v)
	var single [256]bool
	for id := 0; id < v; id++ {
		b, ok := o.TokenBytes(int32(id))
		if !ok || len(b) == 0 || int32(id) == o.BkspcID || containsID(o.StopTokens, int32(id)) || containsID(o.Banned, int32(id)) {
			continue
		}
		toks[id] = b
		if len(b) == 1 {
			single[b[0]] = true
		}
	}
	// The budget rule (a token may be chosen only when the grammar can still
	// be completed within the tokens left) counts one token per byte: it
	// holds when every byte is a token of its own, as in byte-level BPE.
	for c, ok := range single {
		if !ok {
			return nil, fmt.Errorf("a grammar needs a single-byte token for every byte; the vocabulary has none for %#02x", c)
		}
	}
	return toks, nil
}

// top is the state after the current completion.
func (r *grammarRun) top() int { return r.states[len(r.states)-1] }

// advance is the state after token bytes b from state s (-1: refused).
func advance(g Grammar, s int, b []byte) int {
	for _, c := range b {
		if s = g.Next(s, c); s < 0 {
			return -1
		}
	}
	return s
}

// push records completion token id (which the mask allowed).
func (r *grammarRun) push(id int32) {
	r.states = append(r.states, int(r.c.row(r.top())[id]))
}

// pop drops the last completion token's state.
func (r *grammarRun) pop() {
	if len(r.states) > 1 {
		r.states = r.states[:len(r.states)-1]
	}
}

// canPop reports whether a backspace, costing one of acts actions left,
// leaves a text that can still be completed in the rest.
func (r *grammarRun) canPop(acts int) bool {
	if len(r.states) < 2 {
		return false
	}
	d := r.c.distance(r.states[len(r.states)-2])
	return d >= 0 && d <= acts-1
}

// allow fills allow (len V) with the actions the grammar permits next when
// left more completion tokens (and actions) fit: a token whose bytes the
// automaton takes and after which the text can still be completed within
// left − 1 tokens, and the stop tokens once the text is complete.
func (r *grammarRun) allow(allow []bool, stops []int32, left int) {
	s := r.top()
	for id, n := range r.c.row(s) {
		ok := false
		if n >= 0 && left > 0 {
			d := r.c.distance(int(n))
			ok = d >= 0 && d <= left-1
		}
		allow[id] = ok
	}
	done := r.c.g.Accepting(s)
	for _, t := range stops {
		if int(t) < len(allow) {
			allow[t] = done
		}
	}
}

// TokenBytes returns Options.TokenBytes for tok: the bytes of its ordinary
// (byte-level BPE) tokens.
func TokenBytes(tok *data.Tokenizer) func(id int32) ([]byte, bool) {
	return func(id int32) ([]byte, bool) {
		if !tok.IsOrdinary(id) {
			return nil, false
		}
		s, ok := tok.Token(id)
		return []byte(s), ok
	}
}
