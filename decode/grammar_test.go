package decode

import (
	"context"
	"strings"
	"testing"

	"smtrain/envbridge"
)

// grammarVocab is a byte-level test vocabulary: ids 0-6 special (pad, eos,
// bkspc, ..., end), then one token per byte, then a few longer tokens of
// the action format (so tokens may cross the grammar's structure).
func grammarVocab() (v int, bytesOf func(int32) ([]byte, bool), detok func([]int32) string) {
	long := []string{"```json\n", "{\"action\": \"", "execute_code", "\", \"params\": {\"", "code", "\": \"", "print(1)", "\"}}\n```", "import", " the", "\\n", "reset", "info_type"}
	toks := make([][]byte, 7)
	for c := 0; c < 256; c++ {
		toks = append(toks, []byte{byte(c)})
	}
	for _, s := range long {
		toks = append(toks, []byte(s))
	}
	bytesOf = func(id int32) ([]byte, bool) {
		if id < 7 || int(id) >= len(toks) {
			return nil, false
		}
		return toks[id], true
	}
	detok = func(ids []int32) string {
		var b strings.Builder
		for _, id := range ids {
			if s, ok := bytesOf(id); ok {
				b.Write(s)
			}
		}
		return b.String()
	}
	return len(toks), bytesOf, detok
}

// TestGrammarConstrainedSamples: under the action grammar, samples from a
// model with random logits (with backspaces, top-p, tight and loose token
// budgets) all end as texts the grammar accepts, and every one parses into
// a valid MLE-Dojo action; without the grammar almost none do.
func TestGrammarConstrainedSamples(t *testing.T) {
	v, bytesOf, detok := grammarVocab()
	g := envbridge.NewActionGrammar()
	prompts := make([][]int32, 24)
	for i := range prompts {
		prompts[i] = []int32{5, int32(7 + i)}
	}
	run := func(grammar bool, maxNew int, topP float64) []Result {
		o := testOptions()
		o.MaxNewTokens = maxNew
		o.TopP = topP
		o.Detokenize = detok
		o.StopTokens = []int32{EOSID, EndID}
		o.Seed = uint64(maxNew)
		if grammar {
			o.Grammar, o.TokenBytes = g, bytesOf
		}
		res, _, err := Generate(context.Background(), fakeFactory(hashLogits(v, 4)), prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	bkspc, stops := 0, 0
	for _, maxNew := range []int{g.Dist(g.Start()), 50, 200} {
		for _, topP := range []float64{0, 0.9} {
			for _, r := range run(true, maxNew, topP) {
				if len(r.Tokens) > maxNew {
					t.Fatalf("max new %d: %d tokens", maxNew, len(r.Tokens))
				}
				if _, err := envbridge.ParseAction(r.Text); err != nil {
					t.Fatalf("max new %d, top-p %v, sample %d (stop %v): %v\n%q", maxNew, topP, r.Index, r.Stop, err, r.Text)
				}
				bkspc += r.NumBkspc
				if r.Stop == StopToken {
					stops++
				}
			}
		}
	}
	if bkspc == 0 || stops == 0 {
		t.Errorf("backspaces %d, stops by a stop token %d: want both", bkspc, stops)
	}
	valid := 0
	for _, r := range run(false, 200, 0) {
		if _, err := envbridge.ParseAction(r.Text); err == nil {
			valid++
		}
	}
	if valid > 1 {
		t.Errorf("%d of %d unconstrained random samples parse: the test model is too kind to tell", valid, len(prompts))
	}
}

// TestGrammarErrors: a budget below the grammar's shortest text, a
// vocabulary missing a single-byte token, and a grammar without TokenBytes
// or stop tokens are refused with a clear error.
func TestGrammarErrors(t *testing.T) {
	v, bytesOf, _ := grammarVocab()
	g := envbridge.NewActionGrammar()
	gen := func(o Options) error {
		_, _, err := Generate(context.Background(), fakeFactory(hashLogits(v, 4)), [][]int32{{5}}, o)
		return err
	}
	o := testOptions()
	o.Grammar, o.TokenBytes = g, bytesOf
	o.MaxNewTokens = g.Dist(g.Start()) - 1
	if err := gen(o); err == nil || !strings.Contains(err.Error(), "grammar needs at least") {
		t.Errorf("short budget: %v", err)
	}
	o.MaxNewTokens = 100
	o.TokenBytes = func(id int32) ([]byte, bool) {
		if b, ok := bytesOf(id); ok && !(len(b) == 1 && b[0] == '}') {
			return b, true
		}
		return nil, false
	}
	if err := gen(o); err == nil || !strings.Contains(err.Error(), "0x7d") {
		t.Errorf("no single-byte '}': %v", err)
	}
	o.TokenBytes = bytesOf
	o.Banned = append(o.Banned, 7+'{') // the single-byte token '{'
	if err := gen(o); err == nil || !strings.Contains(err.Error(), "0x7b") {
		t.Errorf("single-byte '{' banned: %v", err)
	}
	o.Banned = o.Banned[:len(o.Banned)-1]
	o.TokenBytes = nil
	if err := gen(o); err == nil || !strings.Contains(err.Error(), "TokenBytes") {
		t.Errorf("no TokenBytes: %v", err)
	}
	o.TokenBytes, o.StopTokens = bytesOf, nil
	if err := gen(o); err == nil || !strings.Contains(err.Error(), "stop token") {
		t.Errorf("no stop token: %v", err)
	}
}
