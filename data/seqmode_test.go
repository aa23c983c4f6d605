package data

import (
	"strings"
	"testing"
)

// TestBuildSeqsUnknownMode: a mode other than episode, turn and auto is an
// error naming the mode (the old train-side switch built whole episodes
// for any other value, "" included).
func TestBuildSeqsUnknownMode(t *testing.T) {
	tok := ByteTokenizer()
	eps := []Episode{{Messages: []Message{{RoleUser, "q"}, {RoleAssistant, "a1"}, {RoleUser, "o"}, {RoleAssistant, "a2"}}}}
	for _, m := range []SeqMode{"", "turns", "Auto"} {
		_, _, err := BuildSeqs(tok, eps, 64, m)
		if err == nil || !strings.Contains(err.Error(), `"`+string(m)+`"`) {
			t.Errorf("mode %q: err %v, want an error naming it", m, err)
		}
	}
	for _, m := range []SeqMode{SeqEpisode, SeqTurn, SeqAuto} {
		seqs, st, err := BuildSeqs(tok, eps, 64, m)
		if err != nil || len(seqs) == 0 || st.Seqs != len(seqs) {
			t.Errorf("mode %q: %d seqs, stats %+v, err %v", m, len(seqs), st, err)
		}
	}
}
