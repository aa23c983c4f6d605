package decode

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"smtrain/data"
	"smtrain/model"
)

// loudModel returns a model over a vocabulary padded to modelVocab rows
// whose logits favour the ids in loud by far: ln_f outputs its bias e for
// every input, and each loud id's embedding row (the tied LM head) is 40 e.
func loudModel(t *testing.T, modelVocab int, loud []int32) *model.Params {
	t.Helper()
	cfg := model.Tiny
	cfg.VocabSize, cfg.NPositions = modelVocab, 96
	p := randomModel(t, cfg, 3)
	D := cfg.NEmbd
	lnw, lnb, wte := p.Get("ln_f.weight"), p.Get("ln_f.bias"), p.Get("wte.weight")
	for i := range D {
		lnw.F32[i] = 0
		lnb.F32[i] = float32(1 - 2*(i%2))
	}
	for _, id := range loud {
		for i := range D {
			wte.F32[int(id)*D+i] = 40 * lnb.F32[i]
		}
	}
	return p
}

// TestChatPolicyNeverSamplesMissingOrSpecialIDs: the policy rollout uses
// (NewChatPolicy) on a checkpoint whose vocab_size is padded past the
// tokenizer never samples a padded row or a role marker, even when the
// model puts almost all its mass on them (before OptionsFor only <pad>
// was banned there).
func TestChatPolicyNeverSamplesMissingOrSpecialIDs(t *testing.T) {
	tok := data.ByteTokenizer()
	V := tok.VocabSize() + 61
	sp := tok.Specials()
	loud := []int32{sp.User, sp.Assistant, sp.System, sp.Pad}
	for id := tok.VocabSize(); id < V; id++ {
		loud = append(loud, int32(id))
	}
	p := loudModel(t, V, loud)
	o := DefaultOptions()
	o.MaxNewTokens = 12
	cp := NewChatPolicy(p, tok, o)
	res, _, err := cp.Complete(context.Background(), []data.Message{{Role: data.RoleUser, Content: "hi"}}, 6, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if len(r.Actions) == 0 {
			t.Fatalf("sample %d: no actions", i)
		}
		for _, id := range r.Actions {
			if int(id) >= tok.VocabSize() {
				t.Fatalf("sample %d: sampled id %d, the tokenizer has %d tokens (actions %v)", i, id, tok.VocabSize(), r.Actions)
			}
			if id == sp.User || id == sp.Assistant || id == sp.System || id == sp.Pad {
				t.Fatalf("sample %d: sampled special token %d into a reply (%q)", i, id, r.Text)
			}
		}
		if strings.Contains(r.Text, "<|") {
			t.Fatalf("sample %d: role marker in the text %q", i, r.Text)
		}
	}
}

// TestOptionsFor: the stop tokens and <bkspc> stay allowed; <pad>, role
// markers and padded rows are banned (role markers only without
// RoleMarkers); the context is the model's; base choices are kept.
func TestOptionsFor(t *testing.T) {
	tok := data.ByteTokenizer()
	sp := tok.Specials()
	base := DefaultOptions()
	base.Temperature, base.Banned = 0.7, []int32{100}
	V := tok.VocabSize() + 5
	o := OptionsFor(tok, Settings{Base: base, ModelVocab: V, ContextLen: 64})
	banned := map[int32]bool{}
	for _, id := range o.Banned {
		banned[id] = true
	}
	for _, id := range []int32{sp.EOS, sp.End, sp.Bkspc} {
		if banned[id] {
			t.Errorf("id %d banned", id)
		}
	}
	want := []int32{100, sp.Pad, sp.User, sp.Assistant, sp.System}
	for id := tok.VocabSize(); id < V; id++ {
		want = append(want, int32(id))
	}
	for _, id := range want {
		if !banned[id] {
			t.Errorf("id %d not banned", id)
		}
	}
	if o.Temperature != 0.7 || o.ContextLen != 64 || o.BkspcID != sp.Bkspc || o.Detokenize == nil || o.TokenBytes == nil {
		t.Fatalf("options %+v", o)
	}
	raw := OptionsFor(tok, Settings{Base: DefaultOptions(), RoleMarkers: true})
	for _, id := range raw.Banned {
		if id == sp.User {
			t.Fatal("RoleMarkers: <|user|> banned")
		}
	}
}

// TestOptionsBuiltInOnePlace: no package outside decode sets the
// tokenizer-derived fields of decode.Options itself (they come from
// OptionsFor), so a new caller cannot forget a banned id again.
func TestOptionsBuiltInOnePlace(t *testing.T) {
	re := regexp.MustCompile(`\.(StopTokens|Banned|BkspcID|Detokenize|TokenBytes)\s*(,[^=]*)?=\s*(?:[^=n\s]|n[^i])`)
	root := ".."
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || filepath.Dir(path) == "." {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if re.MatchString(line) && strings.Contains(string(b), "smtrain/decode\"") {
				t.Errorf("%s:%d sets a tokenizer-derived decode option itself; use decode.OptionsFor: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
