package envbridge

import "fmt"

// ActionGrammar is a byte-level automaton (a DFA) for constrained decoding
// of replies in MLE-Dojo's agent format, the shape FormatAction writes:
// optional prose (any text without a backtick or control character other
// than newline, tab and carriage return), then
//
//	```json
//	{"action": NAME, "params": PARAMS}
//	```
//
// with JSON whitespace allowed between tokens, the keys in that order, and
// PARAMS what ValidateAction wants for NAME: {"info_type": one of
// InfoTypes} for request_info, {"code": a JSON string} for validate_code
// and execute_code, {} for reset and get_history. Every text it accepts
// parses with ParseAction into a valid action (tested). Dist gives the
// fewest bytes from a state to acceptance, so a decoder can keep a reply
// completable within its token budget.
type ActionGrammar struct {
	next   [][256]int32 // -1: no transition
	accept []bool
	dist   []int32 // fewest bytes to an accepting state
}

// Start is the state before any byte.
func (g *ActionGrammar) Start() int { return 0 }

// Next is the state after byte b from state s, or -1 when b is not allowed
// there.
func (g *ActionGrammar) Next(s int, b byte) int { return int(g.next[s][b]) }

// Accepting reports whether the text so far is a complete reply.
func (g *ActionGrammar) Accepting(s int) bool { return g.accept[s] }

// Dist is the fewest bytes that take state s to an accepting state.
func (g *ActionGrammar) Dist(s int) int { return int(g.dist[s]) }

// NumStates is the automaton's size.
func (g *ActionGrammar) NumStates() int { return len(g.next) }

// NewActionGrammar builds the automaton.
func NewActionGrammar() *ActionGrammar {
	b := &grammarBuilder{g: &ActionGrammar{}}
	prose := b.state()
	for c := 0; c < 256; c++ {
		if c >= 0x20 && c != '`' || c == '\n' || c == '\t' || c == '\r' {
			b.edge(prose, byte(c), prose)
		}
	}
	s := b.lit(prose, "```json\n")
	b.ws(s)
	s = b.token(s, `{`)
	s = b.token(s, `"action"`)
	s = b.token(s, `:`)
	end := b.state() // after the closing brace of params
	for _, name := range []string{ActRequestInfo, ActValidateCode, ActExecuteCode, ActReset, ActGetHistory} {
		a := b.lit(s, `"`+name+`"`)
		b.ws(a)
		a = b.token(a, `,`)
		a = b.token(a, `"params"`)
		a = b.token(a, `:`)
		a = b.token(a, `{`)
		switch name {
		case ActRequestInfo:
			a = b.token(a, `"info_type"`)
			a = b.token(a, `:`)
			v := b.state()
			for _, it := range InfoTypes {
				b.litTo(a, `"`+it+`"`, v)
			}
			b.ws(v)
			a = v
		case ActValidateCode, ActExecuteCode:
			a = b.token(a, `"code"`)
			a = b.token(a, `:`)
			a = b.jsonString(a)
			b.ws(a)
		}
		b.litTo(a, `}`, end)
	}
	b.ws(end)
	s = b.token(end, `}`)
	acc := b.lit(s, "```")
	b.g.accept[acc] = true
	b.distances()
	return b.g
}

type grammarBuilder struct{ g *ActionGrammar }

func (b *grammarBuilder) state() int32 {
	var row [256]int32
	for i := range row {
		row[i] = -1
	}
	b.g.next = append(b.g.next, row)
	b.g.accept = append(b.g.accept, false)
	return int32(len(b.g.next) - 1)
}

// edge adds from --c--> to; two different targets for one byte would make
// the automaton nondeterministic, a bug in the grammar above.
func (b *grammarBuilder) edge(from int32, c byte, to int32) {
	if old := b.g.next[from][c]; old >= 0 && old != to {
		panic(fmt.Sprintf("action grammar: byte %q from state %d goes to both %d and %d", c, from, old, to))
	}
	b.g.next[from][c] = to
}

// lit follows (or adds) the bytes of s from state from and returns the
// state after them; literals that share a prefix share its states.
func (b *grammarBuilder) lit(from int32, s string) int32 {
	for i := 0; i < len(s); i++ {
		to := b.g.next[from][s[i]]
		if to < 0 {
			to = b.state()
			b.edge(from, s[i], to)
		}
		from = to
	}
	return from
}

// litTo is lit ending in state to.
func (b *grammarBuilder) litTo(from int32, s string, to int32) {
	b.edge(b.lit(from, s[:len(s)-1]), s[len(s)-1], to)
}

// ws lets JSON whitespace repeat at state s.
func (b *grammarBuilder) ws(s int32) {
	for _, c := range []byte(" \t\n\r") {
		b.edge(s, c, s)
	}
}

// token is lit followed by optional whitespace.
func (b *grammarBuilder) token(from int32, s string) int32 {
	to := b.lit(from, s)
	b.ws(to)
	return to
}

// jsonString adds a JSON string value from state from (its opening quote
// included) and returns the state after the closing quote: unescaped
// bytes from 0x20 up except the quote and backslash (UTF-8 is not checked:
// encoding/json replaces invalid sequences), and the escapes \" \\ \/ \b
// \f \n \r \t \uXXXX. The value must not be blank (ValidateAction refuses
// code that is only whitespace): the closing quote is allowed only after
// an ASCII character that is not a space, or an escape of one; until then
// non-ASCII bytes and \u escapes count as blank (they might spell a
// Unicode space).
func (b *grammarBuilder) jsonString(from int32) int32 {
	blank, in, end := b.state(), b.state(), b.state()
	b.edge(from, '"', blank)
	// body adds the bytes and escapes of one phase: from state st, content
	// bytes go to in, and blank ones (space, the \f \n \r \t escapes,
	// non-ASCII, \u) to onBlank
	body := func(st, onBlank int32) {
		esc := b.state()
		for c := 0x20; c < 256; c++ {
			switch {
			case c == '"':
			case c == '\\':
				b.edge(st, '\\', esc)
			case c == ' ' || c >= 0x80:
				b.edge(st, byte(c), onBlank)
			default:
				b.edge(st, byte(c), in)
			}
		}
		for _, c := range []byte(`"\/b`) {
			b.edge(esc, c, in)
		}
		for _, c := range []byte("fnrt") {
			b.edge(esc, c, onBlank)
		}
		h := b.state()
		b.edge(esc, 'u', h)
		for i := 0; i < 4; i++ {
			next := onBlank
			if i < 3 {
				next = b.state()
			}
			for _, c := range []byte("0123456789abcdefABCDEF") {
				b.edge(h, c, next)
			}
			h = next
		}
	}
	body(blank, blank)
	body(in, in)
	b.edge(in, '"', end)
	return end
}

// distances fills dist by a breadth-first search from the accepting
// states over reversed edges.
func (b *grammarBuilder) distances() {
	g := b.g
	n := len(g.next)
	rev := make([][]int32, n)
	for s := range g.next {
		seen := map[int32]bool{}
		for _, t := range g.next[s] {
			if t >= 0 && !seen[t] {
				seen[t] = true
				rev[t] = append(rev[t], int32(s))
			}
		}
	}
	g.dist = make([]int32, n)
	var queue []int32
	for s := range g.dist {
		g.dist[s] = -1
		if g.accept[s] {
			g.dist[s] = 0
			queue = append(queue, int32(s))
		}
	}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		for _, s := range rev[t] {
			if g.dist[s] < 0 {
				g.dist[s] = g.dist[t] + 1
				queue = append(queue, s)
			}
		}
	}
}
