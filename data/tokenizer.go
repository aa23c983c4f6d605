package data

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Fixed ids of the special tokens of every tokenizer trained or built by
// this package (they occupy the start of the vocabulary). A tokenizer loaded
// from a foreign tokenizer.json may place them elsewhere: use the
// Tokenizer's ID methods (or Specials) rather than these constants when the
// tokenizer was loaded.
const (
	PadID       int32 = 0 // <pad>: padding, never an input of a real slot
	EOSID       int32 = 1 // <eos>: end of a plain-text episode (terminal); BOS of plain text
	BkspcID     int32 = 2 // <bkspc>: the backspace action
	SystemID    int32 = 3 // <|system|> role marker
	UserID      int32 = 4 // <|user|> role marker
	AssistantID int32 = 5 // <|assistant|> role marker
	EndID       int32 = 6 // <|end|>: end of an assistant turn (an action)

	// NumSpecial is the number of fixed special tokens.
	NumSpecial = 7
)

// Special token strings, in id order.
const (
	PadToken       = "<pad>"
	EOSToken       = "<eos>"
	BkspcToken     = "<bkspc>"
	SystemToken    = "<|system|>"
	UserToken      = "<|user|>"
	AssistantToken = "<|assistant|>"
	EndToken       = "<|end|>"
)

// SpecialTokens lists the special token strings in id order (index = fixed id).
var SpecialTokens = [NumSpecial]string{PadToken, EOSToken, BkspcToken, SystemToken, UserToken, AssistantToken, EndToken}

// Specials holds the ids of the special tokens in one vocabulary.
type Specials struct {
	Pad, EOS, Bkspc, System, User, Assistant, End int32
}

// DefaultSpecials are the fixed ids used by tokenizers of this package.
func DefaultSpecials() Specials {
	return Specials{PadID, EOSID, BkspcID, SystemID, UserID, AssistantID, EndID}
}

// IsSpecial reports whether id is one of the special tokens.
func (s Specials) IsSpecial(id int32) bool {
	return id == s.Pad || id == s.EOS || id == s.Bkspc || id == s.System || id == s.User || id == s.Assistant || id == s.End
}

// byteEncoder maps a byte to the printable rune GPT-2's byte-level BPE uses
// for it; byteDecoder is the inverse.
var (
	byteEncoder [256]rune
	byteDecoder = map[rune]byte{}
)

func init() {
	var bs []int
	for b := '!'; b <= '~'; b++ {
		bs = append(bs, int(b))
	}
	for b := '¡'; b <= '¬'; b++ {
		bs = append(bs, int(b))
	}
	for b := '®'; b <= 'ÿ'; b++ {
		bs = append(bs, int(b))
	}
	in := make([]bool, 256)
	for _, b := range bs {
		in[b] = true
		byteEncoder[b] = rune(b)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !in[b] {
			byteEncoder[b] = rune(256 + n)
			n++
		}
	}
	for b := 0; b < 256; b++ {
		byteDecoder[byteEncoder[b]] = byte(b)
	}
}

// byteLevel returns the byte-level (GPT-2 unicode) form of s.
func byteLevel(s string) string {
	var sb strings.Builder
	sb.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteEncoder[s[i]])
	}
	return sb.String()
}

// fromByteLevel undoes byteLevel; ok is false if a rune is not a byte rune.
func fromByteLevel(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := byteDecoder[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

// preTokenize splits s like GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (hand-written because Go's regexp has no look-ahead). The pieces partition
// s exactly, so the concatenation of the pieces is s (invalid UTF-8 bytes
// are treated as "other" characters).
func preTokenize(s string) []string {
	var out []string
	i := 0
	for i < len(s) {
		j := matchPiece(s, i)
		out = append(out, s[i:j])
		i = j
	}
	return out
}

type runeClass uint8

const (
	clsLetter runeClass = iota
	clsNumber
	clsSpace
	clsOther
)

func classAt(s string, i int) (runeClass, int) {
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return clsOther, 1
	}
	switch {
	case unicode.IsLetter(r):
		return clsLetter, n
	case unicode.IsNumber(r):
		return clsNumber, n
	case unicode.IsSpace(r):
		return clsSpace, n
	}
	return clsOther, n
}

// runEnd returns the end of the maximal run of class c starting at i.
func runEnd(s string, i int, c runeClass) int {
	for i < len(s) {
		k, n := classAt(s, i)
		if k != c {
			break
		}
		i += n
	}
	return i
}

var contractions = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// matchPiece returns the end of the piece starting at i (i < len(s)).
func matchPiece(s string, i int) int {
	if s[i] == '\'' {
		for _, c := range contractions {
			if strings.HasPrefix(s[i:], c) {
				return i + len(c)
			}
		}
	}
	start := i
	if s[i] == ' ' && i+1 < len(s) {
		if c, _ := classAt(s, i+1); c != clsSpace {
			return runEnd(s, i+1, c)
		}
	}
	c, n := classAt(s, start)
	if c != clsSpace {
		return runEnd(s, start, c)
	}
	// whitespace run: \s+(?!\S) then \s+
	end := runEnd(s, start, clsSpace)
	if end == len(s) {
		return end
	}
	// followed by a non-space: leave the last whitespace rune for the next piece
	_, lastSize := utf8.DecodeLastRuneInString(s[start:end])
	if end-lastSize > start {
		return end - lastSize
	}
	return start + n
}

// merge is one BPE merge rule.
type mergeRule struct {
	rank  int32
	newID int32
}

// addedToken is a token matched literally in the input before BPE.
type addedToken struct {
	Content string
	ID      int32
	Special bool
}

// Tokenizer is a byte-level BPE tokenizer (GPT-2 style) with special tokens.
// It is safe for concurrent use.
type Tokenizer struct {
	vocab  []string         // id -> token (byte-level form for BPE tokens, literal for added tokens)
	ids    map[string]int32 // BPE token (byte-level form) -> id
	merges map[[2]int32]mergeRule
	order  [][2]int32 // merges in rank order
	byteID [256]int32 // id of each single-byte token
	added  []addedToken
	isAdd  map[int32]bool
	sp     Specials
	// fileVocab is the size of the vocabulary read from a file before
	// smtrain's missing special tokens were appended (0: not read so)
	fileVocab int

	mu    sync.Mutex
	cache map[string][]int32
}

// VocabSize is the number of token ids (max id + 1).
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// FileVocabSize is the vocabulary size of the tokenizer file this one was
// read from, before smtrain's missing special tokens were appended after
// it (VocabSize when none were, or when it was not read from a file).
func (t *Tokenizer) FileVocabSize() int {
	if t.fileVocab > 0 {
		return t.fileVocab
	}
	return len(t.vocab)
}

// Specials returns the ids of the special tokens.
func (t *Tokenizer) Specials() Specials { return t.sp }

// PadID returns the id of <pad>.
func (t *Tokenizer) PadID() int32 { return t.sp.Pad }

// EOSID returns the id of <eos>.
func (t *Tokenizer) EOSID() int32 { return t.sp.EOS }

// BkspcID returns the id of <bkspc>.
func (t *Tokenizer) BkspcID() int32 { return t.sp.Bkspc }

// SystemID returns the id of <|system|>.
func (t *Tokenizer) SystemID() int32 { return t.sp.System }

// UserID returns the id of <|user|>.
func (t *Tokenizer) UserID() int32 { return t.sp.User }

// AssistantID returns the id of <|assistant|>.
func (t *Tokenizer) AssistantID() int32 { return t.sp.Assistant }

// EndID returns the id of <|end|> (end of an assistant turn).
func (t *Tokenizer) EndID() int32 { return t.sp.End }

// NumMerges is the number of BPE merge rules.
func (t *Tokenizer) NumMerges() int { return len(t.order) }

// Token returns the string of token id (the literal text for special and
// added tokens, the decoded bytes as a string for BPE tokens) and whether
// the id exists.
func (t *Tokenizer) Token(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.vocab) || t.vocab[id] == "" {
		return "", false
	}
	if t.isAdd[id] {
		return t.vocab[id], true
	}
	b, ok := fromByteLevel(t.vocab[id])
	if !ok {
		return t.vocab[id], true
	}
	return string(b), true
}

// IsOrdinary reports whether id is an ordinary (non-special, non-added)
// token: the tokens random noise is drawn from.
func (t *Tokenizer) IsOrdinary(id int32) bool {
	return id >= 0 && int(id) < len(t.vocab) && t.vocab[id] != "" && !t.isAdd[id]
}

// OrdinaryIDs lists the ordinary token ids in increasing order.
func (t *Tokenizer) OrdinaryIDs() []int32 {
	var out []int32
	for id := range t.vocab {
		if t.IsOrdinary(int32(id)) {
			out = append(out, int32(id))
		}
	}
	return out
}

// Encode tokenizes text. Occurrences of the special and added token strings
// (e.g. "<|end|>") become their ids; everything else is byte-level BPE, so
// Decode(Encode(x)) == x for every string x.
func (t *Tokenizer) Encode(text string) ([]int32, error) {
	// next[k] is the absolute position of the next occurrence of added
	// token k at or after cur (-1: none); recomputed only when passed, so
	// text with many special strings is not rescanned quadratically.
	next := make([]int, len(t.added))
	find := func(k, from int) int {
		c := t.added[k].Content
		if c == "" {
			return -1
		}
		p := strings.Index(text[from:], c)
		if p < 0 {
			return -1
		}
		return from + p
	}
	for k := range t.added {
		next[k] = find(k, 0)
	}
	var out []int32
	cur := 0
	for cur < len(text) {
		best := -1
		for k := range t.added {
			if next[k] >= 0 && next[k] < cur {
				next[k] = find(k, cur)
			}
			if next[k] < 0 {
				continue
			}
			if best < 0 || next[k] < next[best] || (next[k] == next[best] && len(t.added[k].Content) > len(t.added[best].Content)) {
				best = k
			}
		}
		if best < 0 {
			out = t.appendOrdinary(out, text[cur:])
			break
		}
		p := next[best]
		out = t.appendOrdinary(out, text[cur:p])
		out = append(out, t.added[best].ID)
		cur = p + len(t.added[best].Content)
	}
	return out, nil
}

// EncodeOrdinary tokenizes text as plain bytes: special token strings in it
// are NOT turned into special ids. The chat template uses it for message
// contents, so data can never inject an <eos> or <|end|> action.
func (t *Tokenizer) EncodeOrdinary(text string) []int32 {
	return t.appendOrdinary(nil, text)
}

func (t *Tokenizer) appendOrdinary(out []int32, text string) []int32 {
	for _, piece := range preTokenize(text) {
		out = append(out, t.encodeWord(piece)...)
	}
	return out
}

const maxCacheEntries = 1 << 16

// encodeWord applies the BPE merges to one pre-tokenized piece.
func (t *Tokenizer) encodeWord(w string) []int32 {
	if len(w) <= 64 {
		t.mu.Lock()
		if ids, ok := t.cache[w]; ok {
			t.mu.Unlock()
			return ids
		}
		t.mu.Unlock()
	}
	ids := make([]int32, len(w))
	for i := 0; i < len(w); i++ {
		ids[i] = t.byteID[w[i]]
	}
	ids = t.applyMerges(ids)
	if len(w) <= 64 {
		t.mu.Lock()
		if t.cache == nil || len(t.cache) >= maxCacheEntries {
			t.cache = make(map[string][]int32)
		}
		t.cache[w] = ids
		t.mu.Unlock()
	}
	return ids
}

// mergeCand is a candidate merge at symbol position pos.
type mergeCand struct {
	rank int32
	pos  int32
	l, r int32 // token ids at pos and its right neighbour when queued
}

type candHeap []mergeCand

func (h candHeap) Len() int { return len(h) }
func (h candHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h candHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)   { *h = append(*h, x.(mergeCand)) }
func (h *candHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// applyMerges merges adjacent symbols by lowest rank first (leftmost on
// ties), in O(n log n) with a linked list and a heap.
func (t *Tokenizer) applyMerges(sym []int32) []int32 {
	n := len(sym)
	if n < 2 || len(t.merges) == 0 {
		return sym
	}
	prev := make([]int32, n)
	next := make([]int32, n)
	alive := make([]bool, n)
	for i := range sym {
		prev[i] = int32(i - 1)
		next[i] = int32(i + 1)
		alive[i] = true
	}
	next[n-1] = -1
	h := &candHeap{}
	push := func(i int32) {
		j := next[i]
		if i < 0 || j < 0 {
			return
		}
		if m, ok := t.merges[[2]int32{sym[i], sym[j]}]; ok {
			heap.Push(h, mergeCand{m.rank, i, sym[i], sym[j]})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(int32(i))
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(mergeCand)
		i := c.pos
		if !alive[i] || sym[i] != c.l {
			continue
		}
		j := next[i]
		if j < 0 || sym[j] != c.r {
			continue
		}
		m := t.merges[[2]int32{sym[i], sym[j]}]
		sym[i] = m.newID
		alive[j] = false
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		if prev[i] >= 0 {
			push(prev[i])
		}
		push(i)
	}
	out := make([]int32, 0, n)
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, sym[i])
	}
	return out
}

// Decode turns ids back into text. Special and added tokens become their
// literal strings (so Decode(Encode(x)) == x); unknown ids are skipped.
// Backspaces are not applied: use DecodeActions for that.
func (t *Tokenizer) Decode(ids []int32) string {
	var buf []byte
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.vocab) {
			continue
		}
		s := t.vocab[id]
		if t.isAdd[id] {
			buf = append(buf, s...)
			continue
		}
		for _, r := range s {
			if b, ok := byteDecoder[r]; ok {
				buf = append(buf, b)
			}
		}
	}
	return string(buf)
}

// DecodeActions applies the backspaces in an action sequence (each <bkspc>
// deletes the previous remaining token, never below zero tokens) and decodes
// the result.
func (t *Tokenizer) DecodeActions(ids []int32) string {
	return t.Decode(ApplyBackspaces(ids, t.sp.Bkspc))
}

// ApplyBackspaces returns the tokens left after each bkspc deleted the last
// remaining token (a bkspc with nothing to delete is dropped).
func ApplyBackspaces(ids []int32, bkspc int32) []int32 {
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		if id == bkspc {
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, id)
	}
	return out
}

// ID returns the id of a token given as text: a special/added token string
// or a single BPE token in its decoded form.
func (t *Tokenizer) ID(token string) (int32, bool) {
	for _, a := range t.added {
		if a.Content == token {
			return a.ID, true
		}
	}
	id, ok := t.ids[byteLevel(token)]
	return id, ok
}

// newTokenizer assembles a Tokenizer from BPE tokens (byte-level form, index
// = id, "" for ids used by added tokens), merges in rank order (as pairs of
// byte-level strings) and added tokens. It checks that every byte has a
// token and that the specials exist.
func newTokenizer(vocab []string, merges [][2]string, added []addedToken) (*Tokenizer, error) {
	t := &Tokenizer{
		vocab:  append([]string(nil), vocab...),
		ids:    make(map[string]int32, len(vocab)),
		merges: make(map[[2]int32]mergeRule, len(merges)),
		isAdd:  map[int32]bool{},
	}
	for _, a := range added {
		if a.ID < 0 || a.ID > 1<<24 {
			return nil, fmt.Errorf("added token %q: id %d out of range", a.Content, a.ID)
		}
		for int(a.ID) >= len(t.vocab) {
			t.vocab = append(t.vocab, "")
		}
		if t.vocab[a.ID] != "" && t.vocab[a.ID] != a.Content && !t.isAdd[a.ID] {
			// an added token sharing an id with a BPE token of the same text is fine
			if b, ok := fromByteLevel(t.vocab[a.ID]); !ok || string(b) != a.Content {
				return nil, fmt.Errorf("added token %q: id %d already used by %q", a.Content, a.ID, t.vocab[a.ID])
			}
		}
		if a.Content == "" {
			return nil, fmt.Errorf("added token with id %d has empty content", a.ID)
		}
		t.vocab[a.ID] = a.Content
		t.isAdd[a.ID] = true
		t.added = append(t.added, a)
	}
	for id, s := range t.vocab {
		if s == "" || t.isAdd[int32(id)] {
			continue
		}
		if _, dup := t.ids[s]; dup {
			return nil, fmt.Errorf("token %q appears twice in the vocabulary", s)
		}
		t.ids[s] = int32(id)
	}
	for b := 0; b < 256; b++ {
		id, ok := t.ids[string(byteEncoder[b])]
		if !ok {
			return nil, fmt.Errorf("vocabulary has no token for byte 0x%02x (not a byte-level BPE vocabulary)", b)
		}
		t.byteID[b] = id
	}
	for r, m := range merges {
		a, ok1 := t.ids[m[0]]
		b, ok2 := t.ids[m[1]]
		c, ok3 := t.ids[m[0]+m[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("merge %d (%q %q): token missing from the vocabulary", r, m[0], m[1])
		}
		key := [2]int32{a, b}
		if _, dup := t.merges[key]; dup {
			continue // HF keeps the first (lowest rank)
		}
		t.merges[key] = mergeRule{rank: int32(r), newID: c}
		t.order = append(t.order, key)
	}
	sp, err := findSpecials(t)
	if err != nil {
		return nil, err
	}
	t.sp = sp
	// added tokens in id order (Encode prefers the earliest, then longest, match)
	sort.SliceStable(t.added, func(i, j int) bool { return t.added[i].ID < t.added[j].ID })
	return t, nil
}

func findSpecials(t *Tokenizer) (Specials, error) {
	var ids [NumSpecial]int32
	for i, s := range SpecialTokens {
		found := false
		for _, a := range t.added {
			if a.Content == s {
				ids[i], found = a.ID, true
				break
			}
		}
		if !found {
			return Specials{}, fmt.Errorf("special token %s missing", s)
		}
	}
	return Specials{ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6]}, nil
}
