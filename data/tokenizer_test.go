package data

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var sampleTexts = []string{
	"def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
	`{"action": "execute_code", "params": {"code": "import pandas as pd\nprint(1)"}}`,
	"The quick brown fox jumps over the lazy dog. It's 12:30 — déjà vu! 日本語のテキスト 🙂",
	"   leading spaces and trailing   \n\n\t tabs\r\n",
	"x = [1, 2, 3]\nfor i in range(10):\n    x.append(i ** 2)  # squares\n",
	"<|end|> and <eos> inside text <bkspc>",
}

func roundTripCases() []string {
	return append(slices.Clone(sampleTexts),
		"", " ", "a", "\n", "  \n ", "'s'll'd", "\x00\x01\xff invalid utf8 \xc3\x28",
		"<|user|><|assistant|>", "<pad", "<|end|", strings.Repeat("a", 5000),
		strings.Repeat(" ", 300)+"x", "１２３ ½ ⅔ Ⅻ")
}

func testTokenizer(t testing.TB) *Tokenizer {
	var texts []string
	for i := 0; i < 20; i++ {
		texts = append(texts, sampleTexts...)
	}
	tok, err := BuildTokenizer(texts, 400)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSpecialIDsFixed(t *testing.T) {
	tok := testTokenizer(t)
	if tok.Specials() != DefaultSpecials() {
		t.Fatalf("specials %+v", tok.Specials())
	}
	for i, s := range SpecialTokens {
		id, ok := tok.ID(s)
		if !ok || id != int32(i) {
			t.Fatalf("%s has id %d", s, id)
		}
	}
	if tok.VocabSize() > 400 || tok.NumMerges() == 0 {
		t.Fatalf("vocab %d merges %d", tok.VocabSize(), tok.NumMerges())
	}
	ids, _ := tok.Encode("hi<|end|>there<eos>")
	if !slices.Contains(ids, EndID) || !slices.Contains(ids, EOSID) {
		t.Fatalf("specials not encoded: %v", ids)
	}
	if ids := tok.EncodeOrdinary("<|end|>"); slices.Contains(ids, EndID) {
		t.Fatal("EncodeOrdinary produced a special id")
	}
}

func TestTokenizerRoundTrip(t *testing.T) {
	toks := map[string]*Tokenizer{"bytes": ByteTokenizer(), "bpe": testTokenizer(t)}
	for name, tok := range toks {
		for _, x := range roundTripCases() {
			ids, err := tok.Encode(x)
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Decode(ids); got != x {
				t.Fatalf("%s: round trip of %q gave %q", name, x, got)
			}
			if got := tok.Decode(tok.EncodeOrdinary(x)); got != x {
				t.Fatalf("%s: ordinary round trip of %q gave %q", name, x, got)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("id %d out of range", id)
				}
			}
		}
	}
	// merges compress the training text
	tok := toks["bpe"]
	ids, _ := tok.Encode(sampleTexts[0])
	if len(ids) >= len(sampleTexts[0]) {
		t.Fatalf("no compression: %d tokens for %d bytes", len(ids), len(sampleTexts[0]))
	}
}

func TestPreTokenizePartition(t *testing.T) {
	for _, x := range roundTripCases() {
		if got := strings.Join(preTokenize(x), ""); got != x {
			t.Fatalf("pieces of %q join to %q", x, got)
		}
	}
	got := preTokenize("Hello world  it's 42!\n\n  x")
	want := []string{"Hello", " world", " ", " it", "'s", " 42", "!", "\n\n ", " x"}
	if !slices.Equal(got, want) {
		t.Fatalf("pieces %q want %q", got, want)
	}
}

func TestBuildTokenizerDeterministicAndFast(t *testing.T) {
	var texts []string
	for i := 0; i < 300; i++ {
		texts = append(texts, sampleTexts...)
	}
	start := time.Now()
	a, err := BuildTokenizer(texts, 600)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("BuildTokenizer took %v", d)
	}
	b, _ := BuildTokenizer(texts, 600)
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	if string(ja) != string(jb) {
		t.Fatal("BuildTokenizer is not deterministic")
	}
	if _, err := BuildTokenizer(texts, 100); err == nil {
		t.Fatal("vocab below minimum accepted")
	}
}

func TestTokenizerSaveLoad(t *testing.T) {
	tok := testTokenizer(t)
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := tok.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("saved file is not JSON: %v", err)
	}
	back, err := LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.VocabSize() != tok.VocabSize() || back.NumMerges() != tok.NumMerges() || back.Specials() != tok.Specials() {
		t.Fatalf("loaded %d/%d, saved %d/%d", back.VocabSize(), back.NumMerges(), tok.VocabSize(), tok.NumMerges())
	}
	for _, x := range roundTripCases() {
		a, _ := tok.Encode(x)
		b, _ := back.Encode(x)
		if !slices.Equal(a, b) {
			t.Fatalf("encodings differ after reload for %q", x)
		}
	}
	// re-saving gives the same bytes
	j2, _ := back.MarshalJSON()
	if string(j2) != string(raw) {
		t.Fatal("save/load/save is not stable")
	}
}

// A hand-made GPT-2 style tokenizer.json: byte vocabulary, a few merges in
// HF's two merge syntaxes, <|endoftext|> as an added token.
func gpt2StyleJSON(pairs bool) []byte {
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteEncoder[b])] = b
	}
	merges := [][2]string{{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}}
	next := 256
	for _, m := range merges {
		vocab[m[0]+m[1]] = next
		next++
	}
	vocab["<|endoftext|>"] = next
	var ms []any
	for _, m := range merges {
		if pairs {
			ms = append(ms, []string{m[0], m[1]})
		} else {
			ms = append(ms, m[0]+" "+m[1])
		}
	}
	doc := map[string]any{
		"version":       "1.0",
		"added_tokens":  []any{map[string]any{"id": next, "content": "<|endoftext|>", "special": true}},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": ms},
	}
	b, _ := json.Marshal(doc)
	return b
}

func TestLoadGPT2Style(t *testing.T) {
	for _, pairs := range []bool{false, true} {
		tok, err := ParseTokenizerJSON(gpt2StyleJSON(pairs))
		if err != nil {
			t.Fatal(err)
		}
		// 256 bytes + 4 merges + <|endoftext|> = 261 ids; specials appended
		sp := tok.Specials()
		want := Specials{261, 262, 263, 264, 265, 266, 267}
		if sp != want || tok.VocabSize() != 268 || tok.FileVocabSize() != 261 {
			t.Fatalf("specials %+v vocab %d (file %d)", sp, tok.VocabSize(), tok.FileVocabSize())
		}
		if bt := ByteTokenizer(); bt.FileVocabSize() != bt.VocabSize() {
			t.Fatalf("byte tokenizer: file vocabulary %d of %d", bt.FileVocabSize(), bt.VocabSize())
		}
		ids, _ := tok.Encode(" the cat in<|endoftext|>")
		// " the" -> Ġthe (258), " cat" -> bytes, " in" -> Ġ + in (259)
		if ids[0] != 258 {
			t.Fatalf("ids %v", ids)
		}
		if ids[len(ids)-1] != 260 {
			t.Fatalf("<|endoftext|> not matched: %v", ids)
		}
		for _, x := range roundTripCases() {
			ids, _ := tok.Encode(x)
			if tok.Decode(ids) != x {
				t.Fatalf("round trip %q", x)
			}
		}
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	cases := map[string]string{
		"truncated":   `{"model": {"type": "BPE", "vocab": {"a": 0}`,
		"wordpiece":   `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`,
		"no bytes":    `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`,
		"bad merge":   string(gpt2StyleJSON(false)[:0]) + `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1]}}`,
		"no model":    `{"added_tokens": []}`,
		"wrong types": `{"model": {"type": "BPE", "vocab": ["a"]}}`,
	}
	for name, js := range cases {
		if _, err := ParseTokenizerJSON([]byte(js)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadTokenizer(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestTrainSugarme(t *testing.T) {
	var texts []string
	for i := 0; i < 30; i++ {
		texts = append(texts, sampleTexts...)
	}
	tok, err := TrainSugarme(texts, 350)
	if err != nil {
		t.Fatal(err)
	}
	if tok.NumMerges() < 20 || tok.VocabSize() > 350 {
		t.Fatalf("sugarme: %d merges, vocab %d", tok.NumMerges(), tok.VocabSize())
	}
	if tok.Specials() != DefaultSpecials() {
		t.Fatal("specials moved")
	}
	for _, x := range roundTripCases() {
		ids, _ := tok.Encode(x)
		if tok.Decode(ids) != x {
			t.Fatalf("round trip %q", x)
		}
	}
	ids, _ := tok.Encode(sampleTexts[0])
	if len(ids) >= len(sampleTexts[0])*3/4 {
		t.Fatalf("sugarme merges barely compress: %d tokens for %d bytes", len(ids), len(sampleTexts[0]))
	}
}

func FuzzTokenizerRoundTrip(f *testing.F) {
	for _, x := range roundTripCases() {
		f.Add(x)
	}
	tok := testTokenizer(f)
	f.Fuzz(func(t *testing.T, x string) {
		ids, err := tok.Encode(x)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Decode(ids); got != x {
			t.Fatalf("round trip of %q gave %q", x, got)
		}
		if utf8.ValidString(x) {
			if got := tok.Decode(tok.EncodeOrdinary(x)); got != x {
				t.Fatalf("ordinary round trip of %q gave %q", x, got)
			}
		}
	})
}

func FuzzParseTokenizerJSON(f *testing.F) {
	f.Add(gpt2StyleJSON(false))
	f.Add(gpt2StyleJSON(true))
	js, _ := ByteTokenizer().MarshalJSON()
	f.Add(js)
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tok, err := ParseTokenizerJSON(raw)
		if err != nil {
			return
		}
		x := "hello <|end|> wörld 123"
		ids, _ := tok.Encode(x)
		if tok.Decode(ids) != x {
			t.Fatalf("round trip failed for a loaded tokenizer")
		}
	})
}

// TestParseTokenizerJSONMutations feeds randomly mutated tokenizer files
// (byte flips, inserted numbers, copied and deleted spans) to the parser:
// no panic, no hang, and every tokenizer it accepts round-trips text.
func TestParseTokenizerJSONMutations(t *testing.T) {
	js, _ := ByteTokenizer().MarshalJSON()
	seeds := [][]byte{gpt2StyleJSON(false), gpt2StyleJSON(true), js}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 3000
	}
	accepted := 0
	for i := 0; i < n; i++ {
		s := append([]byte(nil), seeds[i%len(seeds)]...)
		for k := 0; k < 1+rng.IntN(6); k++ {
			switch rng.IntN(4) {
			case 0:
				s[rng.IntN(len(s))] = byte(rng.IntN(256))
			case 1:
				p := rng.IntN(len(s))
				s = append(s[:p], append([]byte(strconv.Itoa(rng.IntN(100000))), s[p:]...)...)
			case 2:
				p := rng.IntN(len(s))
				q := p + rng.IntN(len(s)-p)
				r := rng.IntN(len(s))
				seg := append([]byte(nil), s[p:q]...)
				s = append(s[:r], append(seg, s[r:]...)...)
			case 3:
				p := rng.IntN(len(s))
				q := p + rng.IntN(min(50, len(s)-p))
				s = append(s[:p], s[q:]...)
			}
			if len(s) == 0 {
				s = []byte("{}")
			}
		}
		tok, err := ParseTokenizerJSON(s)
		if err != nil {
			continue
		}
		accepted++
		x := "hello <|end|> wörld 123 \x00\xff"
		ids, _ := tok.Encode(x)
		if tok.Decode(ids) != x {
			t.Fatalf("accepted tokenizer does not round-trip (input %d)", i)
		}
	}
	t.Logf("%d of %d mutated files accepted", accepted, n)
}
