package envbridge

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// run feeds text to g from its start and returns the final state (-1 when
// a byte was refused).
func run(g *ActionGrammar, text string) int {
	s := g.Start()
	for i := 0; i < len(text) && s >= 0; i++ {
		s = g.Next(s, text[i])
	}
	return s
}

// TestActionGrammarAcceptsFormatAction: every reply FormatAction writes
// (each action kind, code with escapes, quotes, non-ASCII and newlines,
// with and without prose) is accepted, and not one byte before its end.
func TestActionGrammarAcceptsFormatAction(t *testing.T) {
	g := NewActionGrammar()
	acts := []Action{
		{Name: ActReset},
		{Name: ActGetHistory, Params: map[string]any{}},
		{Name: ActExecuteCode, Params: map[string]any{"code": "import pandas as pd\nprint(\"héllo\\t\", 'x')\n# ü ✓ \u0001"}},
		{Name: ActValidateCode, Params: map[string]any{"code": " \n x"}},
	}
	for _, it := range InfoTypes {
		acts = append(acts, Action{Name: ActRequestInfo, Params: map[string]any{"info_type": it}})
	}
	for _, a := range acts {
		for _, prose := range []string{"", "I will look at the data first.\nThen train, 100% sure: {ok}."} {
			text := FormatAction(prose, a)
			s := run(g, text)
			if s < 0 || !g.Accepting(s) {
				t.Fatalf("not accepted (state %d): %q", s, text)
			}
			if g.Dist(s) != 0 {
				t.Fatalf("accepting state with distance %d", g.Dist(s))
			}
			if s2 := run(g, text[:len(text)-1]); s2 < 0 || g.Accepting(s2) || g.Dist(s2) != 1 {
				t.Fatalf("one byte short: state %d, want a non-accepting state at distance 1: %q", s2, text)
			}
		}
	}
}

// TestActionGrammarRejects: replies ParseAction would refuse (or that the
// grammar leaves out by design) are refused.
func TestActionGrammarRejects(t *testing.T) {
	g := NewActionGrammar()
	for _, text := range []string{
		"```json\n{\"action\": \"train\", \"params\": {}}\n```",                              // unknown action
		"```json\n{\"action\": \"reset\"}\n```",                                              // params missing
		"```json\n{\"action\": \"request_info\", \"params\": {\"info_type\": \"x\"}}\n```",   // unknown info type
		"```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"a\nb\"}}\n```",     // raw newline in a string
		"```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"\\q\"}}\n```",      // bad escape
		"```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"\\u12g4\"}}\n```",  // bad \u escape
		"```json\n{\"action\": \"execute_code\", \"params\": {\"code\": 3}}\n```",            // not a string
		"```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \" \\n\\t \"}}\n```", // blank code
		"Use `pd` here.\n```json\n{\"action\": \"reset\", \"params\": {}}\n```",              // backtick in prose
		"```python\nprint(1)\n```",                                    // not a json block
		"```json\n{\"action\": \"reset\", \"params\": {}}\n```\nmore", // text after the block
	} {
		if s := run(g, text); s >= 0 && g.Accepting(s) {
			t.Errorf("accepted: %q", text)
		}
	}
}

// TestActionGrammarRandomWalks: texts drawn at random from the automaton
// (random allowed bytes, keeping within a byte budget by the distances)
// all end accepted and all parse into valid actions; the walks reach every
// action and both sides of the code strings' escapes.
func TestActionGrammarRandomWalks(t *testing.T) {
	g := NewActionGrammar()
	shortest := "```json\n{\"action\":\"reset\",\"params\":{}}```"
	if g.Dist(g.Start()) != len(shortest) {
		t.Fatalf("Dist(start) = %d, want %d (%q)", g.Dist(g.Start()), len(shortest), shortest)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	seen := map[string]int{}
	escapes := 0
	var allowed []byte
	for walk := 0; walk < 3000; walk++ {
		budget := g.Dist(g.Start()) + rng.IntN(120)
		s := g.Start()
		var buf []byte
		for !g.Accepting(s) || (rng.IntN(4) == 0 && len(buf) < budget) {
			allowed = allowed[:0]
			for c := 0; c < 256; c++ {
				if n := g.Next(s, byte(c)); n >= 0 && g.Dist(n) <= budget-len(buf)-1 {
					allowed = append(allowed, byte(c))
				}
			}
			if len(allowed) == 0 {
				if g.Accepting(s) {
					break
				}
				t.Fatalf("walk %d: stuck at state %d after %q", walk, s, buf)
			}
			// favour the structural bytes so walks get past the prose
			c := allowed[rng.IntN(len(allowed))]
			if rng.IntN(3) > 0 {
				for _, p := range []byte("`{}\":,") {
					if strings.IndexByte(string(allowed), p) >= 0 {
						c = p
						break
					}
				}
			}
			buf = append(buf, c)
			s = g.Next(s, c)
		}
		if len(buf) > budget {
			t.Fatalf("walk %d: %d bytes over a budget of %d", walk, len(buf), budget)
		}
		a, err := ParseAction(string(buf))
		if err != nil {
			t.Fatalf("walk %d: accepted text does not parse: %v\n%q", walk, err, buf)
		}
		seen[a.Name]++
		if strings.Contains(string(buf), `\`) {
			escapes++
		}
	}
	for _, name := range []string{ActRequestInfo, ActValidateCode, ActExecuteCode, ActReset, ActGetHistory} {
		if seen[name] == 0 {
			t.Errorf("no walk produced %s (%v)", name, seen)
		}
	}
	if escapes == 0 {
		t.Error("no walk produced an escape")
	}
	t.Logf("%d states; actions drawn: %v; %d with escapes", g.NumStates(), seen, escapes)
}
