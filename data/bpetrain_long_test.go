package data

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestTrainerBoundsLongWords: the native BPE trainer sees no word longer
// than maxTrainWord symbols and at most maxTrainWords distinct words, so
// one huge text (a 50 MB single-line JSONL took 98 s and 5.3 GB in data
// stats) trains in time and memory proportional to its size; a 1 MB word
// with no separator trains quickly and still round-trips.
func TestTrainerBoundsLongWords(t *testing.T) {
	long := strings.Repeat("xy", 1<<19) // one 1 MB "word"
	wc := wordCounts([]string{long, "short words here"})
	for w := range wc {
		if n := utf8.RuneCountInString(w); n > maxTrainWord {
			t.Fatalf("the trainer sees a word of %d symbols (max %d)", n, maxTrainWord)
		}
	}
	many := map[string]int{}
	for i := range 3 * maxTrainWords / 2 {
		many[strings.Repeat("a", i%7+1)+string(rune('b'+i%20))+strings.Repeat("c", i/140)] = 1 + i%3
	}
	kept := mostFrequent(many, maxTrainWords)
	if len(kept) != min(len(many), maxTrainWords) {
		t.Fatalf("kept %d of %d words", len(kept), len(many))
	}
	minKept, maxDropped := 1<<30, 0
	for w, n := range many {
		if _, ok := kept[w]; ok {
			minKept = min(minKept, n)
		} else {
			maxDropped = max(maxDropped, n)
		}
	}
	if minKept < maxDropped {
		t.Fatalf("kept a word of count %d but dropped one of count %d", minKept, maxDropped)
	}
	tok, err := BuildTokenizer([]string{long}, 400)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode(long[:4096])
	if err != nil || tok.Decode(ids) != long[:4096] || len(ids) > 4096/2 {
		t.Fatalf("encode: %v, %d ids", err, len(ids))
	}
}
