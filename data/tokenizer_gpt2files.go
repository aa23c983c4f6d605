package data

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GPT2VocabFile and GPT2MergesFile are the names of the original GPT-2
// tokenizer files (OpenAI's encoder.json/vocab.bpe as Hugging Face ships
// them, beside or instead of tokenizer.json).
const (
	GPT2VocabFile  = "vocab.json"
	GPT2MergesFile = "merges.txt"
)

// gpt2EndOfText is GPT-2's one special token: an entry of vocab.json that
// tokenizer.json lists as an added token (never split by BPE).
const gpt2EndOfText = "<|endoftext|>"

// LoadGPT2Files reads a GPT-2 style byte-level BPE tokenizer from its
// vocab.json (token -> id) and merges.txt (an optional "#version" line,
// then one "a b" merge per line in priority order), giving the same
// tokenizer as the equivalent tokenizer.json: <|endoftext|>, when in the
// vocabulary, becomes a special added token, and smtrain's special tokens
// are appended as LoadTokenizer does. Errors name the file and line.
func LoadGPT2Files(vocabPath, mergesPath string) (*Tokenizer, error) {
	raw, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var vocab map[string]int32
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", vocabPath, jsonErr(raw, err))
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("tokenizer %s: empty vocabulary", vocabPath)
	}
	f, err := os.Open(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	var merges []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" || (line == 1 && strings.HasPrefix(s, "#version")) {
			continue
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("tokenizer %s:%d: %q is not two tokens separated by one space", mergesPath, line, s)
		}
		for _, tok := range []string{a, b, a + b} {
			if _, ok := vocab[tok]; !ok {
				return nil, fmt.Errorf("tokenizer %s:%d: %q is not in %s", mergesPath, line, tok, vocabPath)
			}
		}
		merges = append(merges, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", mergesPath, err)
	}
	added := []any{}
	if id, ok := vocab[gpt2EndOfText]; ok {
		added = append(added, map[string]any{"id": id, "content": gpt2EndOfText, "special": true})
	}
	js, err := json.Marshal(map[string]any{
		"added_tokens":  added,
		"pre_tokenizer": map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	})
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", vocabPath, err)
	}
	t, err := ParseTokenizerJSON(js)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s + %s: %w", vocabPath, mergesPath, err)
	}
	return t, nil
}

// LoadTokenizerFile reads a tokenizer from path: GPT-2's vocab.json (with
// merges.txt beside it) when the file is named vocab.json, otherwise a
// tokenizer.json.
func LoadTokenizerFile(path string) (*Tokenizer, error) {
	if filepath.Base(path) == GPT2VocabFile {
		return LoadGPT2Files(path, filepath.Join(filepath.Dir(path), GPT2MergesFile))
	}
	return LoadTokenizer(path)
}
