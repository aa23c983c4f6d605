package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"smtrain/internal/atomicfile"
)

// MarshalJSON writes the tokenizer as a Hugging Face tokenizer.json (BPE
// model with a ByteLevel pre-tokenizer and decoder; special tokens as
// added_tokens and also in the model vocabulary, as HF's trainer does).
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	for i, a := range t.added {
		if i > 0 {
			b.WriteString(",")
		}
		c, _ := json.Marshal(a.Content)
		fmt.Fprintf(&b, "\n    {\"id\": %d, \"content\": %s, \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": %t}", a.ID, c, a.Special)
	}
	b.WriteString("\n  ],\n  \"normalizer\": null,\n")
	b.WriteString("  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n")
	b.WriteString("  \"post_processor\": null,\n")
	b.WriteString("  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n")
	b.WriteString("  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {")
	first := true
	for id, s := range t.vocab {
		if s == "" {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		c, _ := json.Marshal(s)
		fmt.Fprintf(&b, "\n      %s: %d", c, id)
	}
	b.WriteString("\n    },\n    \"merges\": [")
	for i, m := range t.order {
		if i > 0 {
			b.WriteString(",")
		}
		c, _ := json.Marshal(t.vocab[m[0]] + " " + t.vocab[m[1]])
		fmt.Fprintf(&b, "\n      %s", c)
	}
	b.WriteString("\n    ]\n  }\n}\n")
	return b.Bytes(), nil
}

// Save writes the tokenizer as tokenizer.json at path atomically.
func (t *Tokenizer) Save(path string) error {
	js, err := t.MarshalJSON()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, js)
}

// hfTokenizer is the part of an HF tokenizer.json this package reads.
type hfTokenizer struct {
	AddedTokens []struct {
		ID      *int32 `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        *struct {
		Type                    string            `json:"type"`
		Vocab                   map[string]int32  `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	} `json:"model"`
}

// LoadTokenizer reads a tokenizer.json: one written by Save, or a Hugging
// Face GPT-2 style byte-level BPE tokenizer. Special tokens of this package
// missing from the file are appended as added tokens with ids max_id+1,
// max_id+2, ... in the fixed order <pad>, <eos>, <bkspc>, <|system|>,
// <|user|>, <|assistant|>, <|end|> (so a GPT-2 vocabulary of 50,257 gets
// <pad>=50257 ... <|end|>=50263; its <|endoftext|> stays an ordinary added
// token).
func LoadTokenizer(path string) (*Tokenizer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := ParseTokenizerJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// ParseTokenizerJSON parses the contents of a tokenizer.json (see LoadTokenizer).
func ParseTokenizerJSON(raw []byte) (*Tokenizer, error) {
	var hf hfTokenizer
	if err := json.Unmarshal(raw, &hf); err != nil {
		return nil, jsonErr(raw, err)
	}
	if hf.Model == nil {
		return nil, fmt.Errorf("no \"model\" object")
	}
	if hf.Model.Type != "" && hf.Model.Type != "BPE" {
		return nil, fmt.Errorf("model.type is %q; only byte-level BPE is supported", hf.Model.Type)
	}
	if p := hf.Model.ContinuingSubwordPrefix; p != nil && *p != "" {
		return nil, fmt.Errorf("model.continuing_subword_prefix %q is not supported (not GPT-2 byte-level BPE)", *p)
	}
	if p := hf.Model.EndOfWordSuffix; p != nil && *p != "" {
		return nil, fmt.Errorf("model.end_of_word_suffix %q is not supported (not GPT-2 byte-level BPE)", *p)
	}
	if len(hf.PreTokenizer) > 0 && string(hf.PreTokenizer) != "null" && !bytes.Contains(hf.PreTokenizer, []byte(`"ByteLevel"`)) {
		return nil, fmt.Errorf("pre_tokenizer is not ByteLevel; only byte-level BPE is supported")
	}
	if len(hf.Model.Vocab) == 0 {
		return nil, fmt.Errorf("model.vocab is empty")
	}
	maxID := int32(-1)
	for s, id := range hf.Model.Vocab {
		if id < 0 || id > 1<<24 {
			return nil, fmt.Errorf("model.vocab[%q]: id %d out of range", s, id)
		}
		maxID = max(maxID, id)
	}
	for _, a := range hf.AddedTokens {
		if a.ID != nil && *a.ID >= 0 && *a.ID <= 1<<24 {
			maxID = max(maxID, *a.ID)
		}
	}
	if n := len(hf.Model.Vocab) + len(hf.AddedTokens); int(maxID) >= 2*n+1024 {
		return nil, fmt.Errorf("token ids up to %d for %d tokens: the vocabulary is too sparse", maxID, n)
	}
	var added []addedToken
	addedContent := map[string]bool{}
	for i, a := range hf.AddedTokens {
		if a.ID == nil {
			return nil, fmt.Errorf("added_tokens[%d]: no id", i)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("added_tokens[%d]: empty content", i)
		}
		if *a.ID < 0 || *a.ID > 1<<24 {
			return nil, fmt.Errorf("added_tokens[%d]: id %d out of range", i, *a.ID)
		}
		if addedContent[a.Content] {
			return nil, fmt.Errorf("added_tokens[%d]: %q listed twice", i, a.Content)
		}
		addedContent[a.Content] = true
		added = append(added, addedToken{Content: a.Content, ID: *a.ID, Special: a.Special})
		maxID = max(maxID, *a.ID)
	}
	// vocabulary: ids that are added tokens keep their added form
	addedID := map[int32]bool{}
	for _, a := range added {
		addedID[a.ID] = true
	}
	vocab := make([]string, maxID+1)
	for s, id := range hf.Model.Vocab {
		if addedID[id] {
			continue
		}
		if vocab[id] != "" {
			return nil, fmt.Errorf("model.vocab: id %d used by %q and %q", id, vocab[id], s)
		}
		vocab[id] = s
	}
	fileVocab := int(maxID) + 1
	for _, s := range SpecialTokens {
		if !addedContent[s] {
			maxID++
			added = append(added, addedToken{Content: s, ID: maxID, Special: true})
			addedContent[s] = true
		}
	}
	merges := make([][2]string, 0, len(hf.Model.Merges))
	for i, m := range hf.Model.Merges {
		var pair [2]string
		var s string
		var arr []string
		switch {
		case json.Unmarshal(m, &s) == nil:
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("model.merges[%d]: %q is not two tokens separated by one space", i, s)
			}
			pair = [2]string{parts[0], parts[1]}
		case json.Unmarshal(m, &arr) == nil && len(arr) == 2:
			pair = [2]string{arr[0], arr[1]}
		default:
			return nil, fmt.Errorf("model.merges[%d]: want \"a b\" or [\"a\", \"b\"]", i)
		}
		merges = append(merges, pair)
	}
	t, err := newTokenizer(vocab, merges, added)
	if err != nil {
		return nil, err
	}
	t.fileVocab = fileVocab
	return t, nil
}
