package data

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"unicode/utf8"

	"github.com/sugarme/tokenizer/model/bpe"
)

// MinVocab is the smallest vocabulary a trained tokenizer can have: the
// special tokens plus one token per byte.
const MinVocab = NumSpecial + 256

// baseVocab returns the layout every tokenizer of this package starts with:
// ids 0..6 the special tokens, ids 7..262 the bytes 0x00..0xff in order.
func baseVocab() ([]string, []addedToken) {
	vocab := make([]string, MinVocab)
	added := make([]addedToken, NumSpecial)
	for i, s := range SpecialTokens {
		added[i] = addedToken{Content: s, ID: int32(i), Special: true}
	}
	for b := 0; b < 256; b++ {
		vocab[NumSpecial+b] = string(byteEncoder[b])
	}
	return vocab, added
}

// fromMerges builds a tokenizer with the base layout followed by one new
// token per merge (merges whose result already exists add no token).
func fromMerges(merges [][2]string) (*Tokenizer, error) {
	vocab, added := baseVocab()
	seen := make(map[string]bool, len(vocab)+len(merges))
	for _, s := range vocab[NumSpecial:] {
		seen[s] = true
	}
	for _, m := range merges {
		s := m[0] + m[1]
		if !seen[s] {
			seen[s] = true
			vocab = append(vocab, s)
		}
	}
	return newTokenizer(vocab, merges, added)
}

// ByteTokenizer returns the tokenizer with no merges (vocabulary = the
// special tokens and the 256 bytes): the smallest exact tokenizer.
func ByteTokenizer() *Tokenizer {
	t, err := fromMerges(nil)
	if err != nil {
		panic("data: base vocabulary is invalid: " + err.Error()) // programming error
	}
	return t
}

// maxTrainWord bounds the bytes of a pre-tokenized word the BPE trainer
// sees: longer ones (a base64 blob, a long run of digits or symbols) are
// cut into pieces of at most this size. The trainer touches every pair of
// a word at each merge that occurs in it, so one 50 MB "word" made
// training take minutes and gigabytes; merges longer than this are not
// worth learning anyway.
const maxTrainWord = 64

// wordCounts pre-tokenizes texts and counts the byte-level words.
func wordCounts(texts []string) map[string]int {
	wc := map[string]int{}
	for _, text := range texts {
		for _, p := range preTokenize(text) {
			for len(p) > maxTrainWord {
				cut := maxTrainWord
				for cut > 0 && !utf8.RuneStart(p[cut]) {
					cut--
				}
				if cut == 0 {
					cut = maxTrainWord
				}
				wc[byteLevel(p[:cut])]++
				p = p[cut:]
			}
			wc[byteLevel(p)]++
		}
	}
	return wc
}

// BuildTokenizer trains a byte-level BPE tokenizer on in-memory texts with a
// small deterministic trainer (most frequent pair first, ties broken by the
// smaller pair of token ids), stopping at vocabSize tokens or when no pair
// occurs twice. vocabSize must be at least MinVocab. Special token strings in
// the texts are treated as plain text. It is meant for tests, the arithmetic
// task and demos (a few thousand short texts train in well under a second).
func BuildTokenizer(texts []string, vocabSize int) (*Tokenizer, error) {
	if vocabSize < MinVocab {
		return nil, fmt.Errorf("vocab size %d is below the minimum %d (specials + 256 bytes)", vocabSize, MinVocab)
	}
	merges := nativeMerges(mostFrequent(wordCounts(texts), maxTrainWords), vocabSize-MinVocab)
	return fromMerges(merges)
}

// maxTrainWords bounds the distinct words the native trainer learns from:
// the most frequent ones (ties by the words' order). Beyond it, words are
// too rare to decide a merge of a small vocabulary, and each costs memory
// in every pair set it belongs to.
const maxTrainWords = 100000

// mostFrequent keeps the k most frequent words of wc (all when fewer;
// ties in KeysByCount's order).
func mostFrequent(wc map[string]int, k int) map[string]int {
	if len(wc) <= k {
		return wc
	}
	out := make(map[string]int, k)
	for _, w := range KeysByCount(wc)[:k] {
		out[w] = wc[w]
	}
	return out
}

// nativeMerges learns up to n merges from byte-level word counts.
func nativeMerges(wc map[string]int, n int) [][2]string {
	keys := make([]string, 0, len(wc))
	for k := range wc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// symbols as ids into a growing string table
	var table []string
	index := map[string]int32{}
	intern := func(s string) int32 {
		if id, ok := index[s]; ok {
			return id
		}
		id := int32(len(table))
		table = append(table, s)
		index[s] = id
		return id
	}
	for b := 0; b < 256; b++ {
		intern(string(byteEncoder[b]))
	}
	words := make([][]int32, len(keys))
	counts := make([]int, len(keys))
	for i, k := range keys {
		for _, r := range k {
			words[i] = append(words[i], intern(string(r)))
		}
		counts[i] = wc[k]
	}
	type pair [2]int32
	pairCount := map[pair]int{}
	where := map[pair]map[int]struct{}{}
	// addWord adds (sign +1) or removes (-1) the pairs of word w. Adding
	// records w under each pair that holds only (a symbol of id >= 0 given
	// as only) so that re-adding a word after a merge does not re-insert
	// it under every pair it already was (sets may hold stale words, which
	// the merge loop handles).
	addWord := func(w int, sign int, only int32) {
		s := words[w]
		for i := 0; i+1 < len(s); i++ {
			p := pair{s[i], s[i+1]}
			pairCount[p] += sign * counts[w]
			if sign > 0 && (only < 0 || p[0] == only || p[1] == only) {
				if where[p] == nil {
					where[p] = map[int]struct{}{}
				}
				where[p][w] = struct{}{}
			}
		}
	}
	for w := range words {
		addWord(w, +1, -1)
	}
	var merges [][2]string
	produced := map[string]bool{}
	for len(merges) < n {
		var best pair
		bestC := 1 // a pair must occur at least twice
		found := false
		for p, c := range pairCount {
			if c > bestC || (c == bestC && found && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestC, found = p, c, true
			}
		}
		if !found {
			break
		}
		a, b := table[best[0]], table[best[1]]
		newID := intern(a + b)
		merges = append(merges, [2]string{a, b})
		produced[a+b] = true
		ws := make([]int, 0, len(where[best]))
		for w := range where[best] {
			ws = append(ws, w)
		}
		sort.Ints(ws)
		for _, w := range ws {
			addWord(w, -1, -1)
			s := words[w]
			out := s[:0:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best[0] && s[i+1] == best[1] {
					out = append(out, newID)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[w] = out
			addWord(w, +1, newID)
		}
		for p, c := range pairCount {
			if c <= 0 {
				delete(pairCount, p)
				delete(where, p)
			}
		}
	}
	return merges
}

// stdoutMu serialises the temporary redirection of os.Stdout while the
// sugarme trainer (which prints progress) runs.
var stdoutMu sync.Mutex

// sugarmeMaxWords is the number of distinct words handed to the sugarme
// trainer: with 10,000 or more words it counts pairs in 4 goroutines whose
// loop bound only works for the first chunk (v0.3.0 trainer.go countPairs),
// so the most frequent 9,999 words are used.
const sugarmeMaxWords = 9999

// TrainSugarme trains a byte-level BPE tokenizer with
// github.com/sugarme/tokenizer's BpeTrainer on in-memory texts. Its output
// is silenced, its panics are returned as errors. Limits of that trainer
// (v0.3.0): ties between equally frequent pairs are broken by heap order
// and wall-clock time, so the result is NOT deterministic across runs; only
// the 9,999 most frequent distinct words are used. BuildTokenizer is the
// deterministic alternative.
func TrainSugarme(texts []string, vocabSize int) (tok *Tokenizer, err error) {
	if vocabSize < MinVocab {
		return nil, fmt.Errorf("vocab size %d is below the minimum %d (specials + 256 bytes)", vocabSize, MinVocab)
	}
	wc := wordCounts(texts)
	if len(wc) > sugarmeMaxWords {
		keys := KeysByCount(wc)
		kept := make(map[string]int, sugarmeMaxWords)
		for _, k := range keys[:sugarmeMaxWords] {
			kept[k] = wc[k]
		}
		wc = kept
	}
	alphabet := bpe.CharSet{}
	for b := 0; b < 256; b++ {
		alphabet[string(byteEncoder[b])] = struct{}{}
	}
	trainer := bpe.NewBpeTrainer(0, vocabSize-NumSpecial)
	trainer.ShowProgress = false
	trainer.InitialAlphabet = alphabet

	stdoutMu.Lock()
	saved := os.Stdout
	devnull, derr := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if derr == nil {
		os.Stdout = devnull
	}
	model, merr := func() (m bpe.BPE, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("sugarme BPE trainer panicked: %v", r)
			}
		}()
		mm, _ := trainer.Train(wc)
		b, ok := mm.(bpe.BPE)
		if !ok {
			return m, errors.New("sugarme BPE trainer returned an unexpected model type")
		}
		return b, nil
	}()
	os.Stdout = saved
	if devnull != nil {
		devnull.Close()
	}
	stdoutMu.Unlock()
	if merr != nil {
		return nil, merr
	}
	merges, err := sugarmeMerges(model)
	if err != nil {
		return nil, err
	}
	return fromMerges(merges)
}

// sugarmeMerges reads the merges of a trained sugarme BPE in rank order as
// string pairs, resolving ids through the merges themselves (its reverse
// vocabulary loses ids whose token string was produced twice).
func sugarmeMerges(m bpe.BPE) ([][2]string, error) {
	if m.Merges == nil || m.Vocab == nil {
		return nil, errors.New("sugarme BPE has no vocabulary or merges")
	}
	str := map[int]string{}
	for s, id := range *m.Vocab {
		if len([]rune(s)) == 1 {
			str[id] = s
		}
	}
	type rm struct {
		p bpe.Pair
		v bpe.PairVal
	}
	list := make([]rm, 0, len(*m.Merges))
	for p, v := range *m.Merges {
		list = append(list, rm{p, v})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].v.Rank < list[j].v.Rank })
	out := make([][2]string, 0, len(list))
	for _, x := range list {
		a, ok1 := str[x.p.C1]
		b, ok2 := str[x.p.C2]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("sugarme merge rank %d refers to unknown token ids %d,%d", x.v.Rank, x.p.C1, x.p.C2)
		}
		str[x.v.NewId] = a + b
		out = append(out, [2]string{a, b})
	}
	return out, nil
}
