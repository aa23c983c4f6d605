package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeGPT2Files writes a GPT-2 style vocab.json + merges.txt: the 256
// byte tokens, merges of digit pairs and common English pairs, then
// <|endoftext|>; it returns the folder and the same tokenizer as a
// tokenizer.json parsed by ParseTokenizerJSON.
func writeGPT2Files(t *testing.T) (dir string, want *Tokenizer) {
	t.Helper()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteEncoder[b])] = b
	}
	var merges []string
	merge := func(a, b string) {
		if _, ok := vocab[a+b]; !ok {
			vocab[a+b] = len(vocab)
			merges = append(merges, a+" "+b)
		}
	}
	for a := '0'; a <= '9'; a++ {
		merge(string(a), "0")
	}
	sp := string(byteEncoder[' '])
	merge("t", "h")
	merge("th", "e")
	merge(sp, "the")
	merge("i", "n")
	merge(sp, "in")
	vocab[gpt2EndOfText] = len(vocab)
	dir = t.TempDir()
	js, err := json.Marshal(vocab)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, GPT2VocabFile), js, 0o644); err != nil {
		t.Fatal(err)
	}
	txt := "#version: 0.2\n" + strings.Join(merges, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, GPT2MergesFile), []byte(txt), 0o644); err != nil {
		t.Fatal(err)
	}
	full, err := json.Marshal(map[string]any{
		"added_tokens":  []any{map[string]any{"id": vocab[gpt2EndOfText], "content": gpt2EndOfText, "special": true}},
		"pre_tokenizer": map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err = ParseTokenizerJSON(full)
	if err != nil {
		t.Fatal(err)
	}
	return dir, want
}

// TestLoadGPT2Files: vocab.json + merges.txt load as the same tokenizer
// as the equivalent tokenizer.json (same ids for text, specials and
// <|endoftext|>), through LoadTokenizerFile too.
func TestLoadGPT2Files(t *testing.T) {
	dir, want := writeGPT2Files(t)
	for _, load := range []func() (*Tokenizer, error){
		func() (*Tokenizer, error) {
			return LoadGPT2Files(filepath.Join(dir, GPT2VocabFile), filepath.Join(dir, GPT2MergesFile))
		},
		func() (*Tokenizer, error) { return LoadTokenizerFile(filepath.Join(dir, GPT2VocabFile)) },
	} {
		got, err := load()
		if err != nil {
			t.Fatal(err)
		}
		if got.VocabSize() != want.VocabSize() || got.VocabSize() != 256+15+1+len(SpecialTokens) {
			t.Fatalf("vocab size %d, tokenizer.json %d", got.VocabSize(), want.VocabSize())
		}
		if got.EOSID() != want.EOSID() || got.BkspcID() != want.BkspcID() {
			t.Fatalf("specials: eos %d bkspc %d, tokenizer.json %d %d", got.EOSID(), got.BkspcID(), want.EOSID(), want.BkspcID())
		}
		for _, s := range []string{"the theory in 1990 within<|endoftext|>then", " in the 30 000 ünïcode\n\tthe"} {
			g, err1 := got.Encode(s)
			w, err2 := want.Encode(s)
			if err1 != nil || err2 != nil || !slices.Equal(g, w) {
				t.Fatalf("%q: %v, tokenizer.json %v", s, g, w)
			}
			if got.Decode(g) != s {
				t.Fatalf("%q decodes to %q", s, got.Decode(g))
			}
		}
		if ids, _ := got.Encode(" the"); len(ids) != 1 {
			t.Fatalf("\" the\" is %v, want the merged token", ids)
		}
	}
}

// TestLoadGPT2FilesErrors: bad files give one-line errors naming the file
// (and the line of merges.txt).
func TestLoadGPT2FilesErrors(t *testing.T) {
	dir, _ := writeGPT2Files(t)
	v, m := filepath.Join(dir, GPT2VocabFile), filepath.Join(dir, GPT2MergesFile)
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := os.ReadFile(m)
	goodV, _ := os.ReadFile(v)
	for _, c := range []struct{ merges, want string }{
		{"#version: 0.2\nt h\nth e x\n", "merges.txt:3"},
		{"t h\nq z\n", `merges.txt:2: "qz" is not in`},
		{"t  h\n", "merges.txt:1"},
	} {
		write(m, c.merges)
		_, err := LoadGPT2Files(v, m)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("merges %q: error %v, want one line containing %q", c.merges, err, c.want)
		}
	}
	write(m, string(good))
	write(v, "{\"a\": 1,\n \"b\": }")
	if _, err := LoadGPT2Files(v, m); err == nil || !strings.Contains(err.Error(), "vocab.json") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad vocab.json: %v", err)
	}
	write(v, string(goodV))
	if _, err := LoadGPT2Files(v, filepath.Join(dir, "missing.txt")); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing merges: %v", err)
	}
}
