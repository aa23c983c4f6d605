package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smtrain/data"
)

// mledojoSample is the real MLE-Dojo run kept outside the project (see
// ../shared/mledojo/README.md).
const mledojoSample = "../../shared/mledojo/trajectories"

func loadMLEDojoSample(t *testing.T) []data.Episode {
	t.Helper()
	if _, err := os.Stat(filepath.Join(mledojoSample, "agent_trajectory.json")); err != nil {
		t.Skipf("MLE-Dojo sample not available: %v", err)
	}
	res, err := data.Load([]string{mledojoSample}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Episodes) != 1 {
		t.Fatalf("%d episodes in the sample", len(res.Episodes))
	}
	return res.Episodes
}

// TestSeqModeKeepsMoreActions measures, on the real MLE-Dojo run, how many
// of its assistant actions (tokens of the assistant turns, end-of-turn
// included) survive truncation to n_positions with seq_mode episode and
// turn, and what it costs in input tokens. SMTRAIN_SEQMODE_DATA=PATH
// measures other trajectories too (e.g. the output of smtrain collect).
func TestSeqModeKeepsMoreActions(t *testing.T) {
	measureSeqModes(t, "MLE-Dojo sample", loadMLEDojoSample(t))
	if p := os.Getenv("SMTRAIN_SEQMODE_DATA"); p != "" {
		res, err := data.Load([]string{p}, false)
		if err != nil {
			t.Fatal(err)
		}
		measureSeqModes(t, p, res.Episodes)
	}
}

func measureSeqModes(t *testing.T, name string, eps []data.Episode) {
	tok, err := data.BuildTokenizer(data.EpisodeTexts(eps), 512)
	if err != nil {
		t.Fatal(err)
	}
	full, _, err := data.BuildSeqs(tok, eps, 0, data.SeqEpisode)
	if err != nil {
		t.Fatal(err)
	}
	total, inputs, longest, turns := 0, 0, 0, 0
	for i, s := range full {
		total += s.NumActions()
		inputs += s.NumInputs()
		longest = max(longest, s.NumInputs())
		turns += eps[i].NumAssistant()
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %d episodes, %d assistant turns, %d actions, %d inputs untruncated (longest %d; BPE vocab 512)\n", name, len(eps), turns, total, inputs, longest)
	fmt.Fprintf(&sb, "%6s | %-30s | %-34s\n", "T", "episode: actions kept (inputs)", "turn: actions kept (seqs, inputs)")
	for _, T := range []int{256, 512, 1024, 2048, 4096} {
		cfg := DefaultConfig()
		cfg.NPositions = T
		cfg.SeqMode = SeqEpisode
		_, se, err := data.BuildSeqs(tok, eps, cfg.NPositions, data.SeqMode(cfg.SeqMode))
		if err != nil {
			t.Fatal(err)
		}
		cfg.SeqMode = SeqTurn
		_, st, err := data.BuildSeqs(tok, eps, cfg.NPositions, data.SeqMode(cfg.SeqMode))
		if err != nil {
			t.Fatal(err)
		}
		cfg.SeqMode = SeqAuto
		_, sa, err := data.BuildSeqs(tok, eps, cfg.NPositions, data.SeqMode(cfg.SeqMode))
		if err != nil {
			t.Fatal(err)
		}
		// auto splits exactly the episodes that do not fit: it keeps turn
		// mode's actions with at most as many sequences.
		if sa.Actions != st.Actions || sa.Seqs > st.Seqs || (T >= longest && sa.Seqs != se.Seqs) {
			t.Fatalf("T=%d: auto keeps %d actions in %d seqs; turn %d in %d; episode %d seqs", T, sa.Actions, sa.Seqs, st.Actions, st.Seqs, se.Seqs)
		}
		fmt.Fprintf(&sb, "%6d | %7d = %5.1f%% (%8d) | %7d = %5.1f%% (%4d, %8d)\n", T,
			se.Actions, 100*float64(se.Actions)/float64(total), se.Inputs,
			st.Actions, 100*float64(st.Actions)/float64(total), st.Seqs, st.Inputs)
		if st.Actions < se.Actions || st.Actions > total || se.Actions > total {
			t.Fatalf("T=%d: turn mode keeps %d actions, episode mode %d, of %d", T, st.Actions, se.Actions, total)
		}
		if T >= longest && (se.Actions != total || st.Actions != total) {
			t.Fatalf("T=%d fits every episode but actions were lost (%d, %d of %d)", T, se.Actions, st.Actions, total)
		}
	}
	t.Log("\n" + sb.String())
}

// TestFitSeqModeTurn trains on the MLE-Dojo run with one sequence per
// assistant turn (the one episode makes a single sequence, fewer than a
// batch, in episode mode), and evaluates it the same way.
func TestFitSeqModeTurn(t *testing.T) {
	eps := loadMLEDojoSample(t)
	cfg := smallConfig(t.TempDir(), 3)
	cfg.SeqMode = SeqTurn
	cfg.NPositions = 128
	cfg.BatchSize, cfg.GradAccum = 4, 1
	cfg.ValFraction = 0
	cfg.ReplayEvery, cfg.EvalSamples = 0, 0
	in := Inputs{Train: eps}
	tr, err := New(cfg, in, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tr.trainSq); n != eps[0].NumAssistant() {
		t.Fatalf("%d training sequences, want one per assistant turn (%d)", n, eps[0].NumAssistant())
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(tr, tr.trainSq, 0, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(r.NLL) || r.NLLTokens == 0 {
		t.Fatalf("eval %+v", r)
	}
	cfg.SeqMode = SeqEpisode
	cfg.Out = t.TempDir()
	if _, err := New(cfg, in, false, nil); err == nil || !strings.Contains(err.Error(), "fewer than batch_size") {
		t.Fatalf("episode mode with one episode: %v", err)
	}
	cfg.SeqMode = "sentence"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "seq_mode") {
		t.Fatalf("bad seq_mode: %v", err)
	}
}
