package data

import (
	"fmt"
	"slices"
	"testing"
)

func prepareEpisodes(n int) []Episode {
	var eps []Episode
	for i := range n {
		eps = append(eps, Episode{Source: fmt.Sprint("ep", i), Messages: []Message{{RoleUser, fmt.Sprint("question ", i)}, {RoleAssistant, fmt.Sprint("answer ", i*7)}}})
	}
	return eps
}

// TestSplitEpisodes: given validation episodes are kept; otherwise the
// split is Split's (same seed, same episodes) and nothing is split off
// with fewer than two episodes or a fraction of 0.
func TestSplitEpisodes(t *testing.T) {
	eps := prepareEpisodes(10)
	tr, va, err := SplitEpisodes(eps, eps[:1], 0.5, 1)
	if err != nil || len(tr) != 10 || len(va) != 1 {
		t.Fatalf("given val: %d/%d %v", len(tr), len(va), err)
	}
	tr, va, err = SplitEpisodes(eps, nil, 0.3, 7)
	if err != nil {
		t.Fatal(err)
	}
	wantTr, wantVa, _ := Split(10, 0.3, 7)
	src := func(es []Episode) (out []int) {
		for _, e := range es {
			var k int
			fmt.Sscanf(e.Source, "ep%d", &k)
			out = append(out, k)
		}
		return out
	}
	if !slices.Equal(src(tr), wantTr) || !slices.Equal(src(va), wantVa) {
		t.Fatalf("split %v/%v, want %v/%v", src(tr), src(va), wantTr, wantVa)
	}
	for _, c := range []struct {
		n    int
		frac float64
	}{{1, 0.5}, {10, 0}} {
		tr, va, err := SplitEpisodes(eps[:c.n], nil, c.frac, 1)
		if err != nil || len(tr) != c.n || len(va) != 0 {
			t.Errorf("%d episodes, fraction %g: %d/%d %v", c.n, c.frac, len(tr), len(va), err)
		}
	}
	if _, _, err := SplitEpisodes(eps, nil, 1, 1); err == nil {
		t.Error("fraction 1: no error")
	}
}

// TestPrepare: the sequences are BuildSeqs' of the split episodes, with
// the given tokenizer or a BPE trained on the training split only.
func TestPrepare(t *testing.T) {
	eps := prepareEpisodes(12)
	if _, err := Prepare(nil, nil, PrepareOptions{T: 64, Mode: SeqAuto}); err == nil {
		t.Fatal("no episodes: no error")
	}
	bt := ByteTokenizer()
	p, err := Prepare(eps, nil, PrepareOptions{ValFraction: 0.25, Seed: 3, Tokenizer: bt, T: 64, Mode: SeqEpisode})
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := BuildSeqs(bt, p.TrainEps, 64, SeqEpisode)
	if p.Tokenizer != bt || len(p.TrainEps) != 9 || len(p.ValEps) != 3 || len(p.Train) != len(want) || len(p.Val) != 3 {
		t.Fatalf("prepared %d/%d episodes, %d/%d seqs (want %d train)", len(p.TrainEps), len(p.ValEps), len(p.Train), len(p.Val), len(want))
	}
	p, err = Prepare(eps, nil, PrepareOptions{ValFraction: 0.25, Seed: 3, VocabSize: 300, T: 64, Mode: SeqAuto})
	if err != nil {
		t.Fatal(err)
	}
	bpe, _ := BuildTokenizer(EpisodeTexts(p.TrainEps), 300)
	if p.Tokenizer.VocabSize() != bpe.VocabSize() || p.Tokenizer.NumMerges() != bpe.NumMerges() {
		t.Fatalf("tokenizer: vocab %d merges %d, want the training split's %d, %d", p.Tokenizer.VocabSize(), p.Tokenizer.NumMerges(), bpe.VocabSize(), bpe.NumMerges())
	}
	if _, err := Prepare(eps, nil, PrepareOptions{Tokenizer: bt, T: 64, Mode: "x"}); err == nil {
		t.Fatal("bad mode: no error")
	}
}
