package tasks

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"

	"smtrain/envbridge/metrics"
)

func TestGenerateDeterministic(t *testing.T) {
	for _, name := range Names() {
		a, err := Generate(name, 7)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Generate(name, 7)
		c, _ := Generate(name, 8)
		if a.Train[5][1] != b.Train[5][1] || a.Public[3] != b.Public[3] {
			t.Errorf("%s: not deterministic", name)
		}
		if a.Train[5][1] == c.Train[5][1] && a.Train[6][2] == c.Train[6][2] {
			t.Errorf("%s: seed has no effect", name)
		}
		// The oracle beats the baseline, and the boards are sorted best first.
		better := a.Oracle > a.Baseline
		if !a.HigherIsBetter {
			better = a.Oracle < a.Baseline
		}
		if !better {
			t.Errorf("%s: oracle %v not better than baseline %v", name, a.Oracle, a.Baseline)
		}
		for i := 1; i < len(a.Public); i++ {
			if (a.HigherIsBetter && a.Public[i] > a.Public[i-1]) || (!a.HigherIsBetter && a.Public[i] < a.Public[i-1]) {
				t.Fatalf("%s: public board not sorted at %d", name, i)
			}
		}
		// The oracle places well, the baseline poorly but not last.
		po, _ := metrics.Score(a.Oracle, a.Private, a.Public, a.HigherIsBetter)
		pb, _ := metrics.Score(a.Baseline, a.Private, a.Public, a.HigherIsBetter)
		t.Logf("%s: oracle %.4f (position score %.3f), baseline %.4f (%.3f), board %d", name, a.Oracle, po.AvgScore, a.Baseline, pb.AvgScore, len(a.Public))
		if po.AvgScore < 0.7 || pb.AvgScore <= 0 || pb.AvgScore > 0.3 {
			t.Errorf("%s: implausible boards: oracle %.3f baseline %.3f", name, po.AvgScore, pb.AvgScore)
		}
	}
	if _, err := Generate("nope", 1); err == nil {
		t.Error("unknown task accepted")
	}
}

func TestMaterialize(t *testing.T) {
	root := t.TempDir()
	dir, err := Materialize(root, "loan-default", 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"data/public/description.txt", "data/public/train.csv", "data/public/test.csv", "data/public/sample_submission.csv",
		"data/private/test_answer.csv", "data/private/public_leaderboard.csv", "data/private/private_leaderboard.csv", "data/task.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Error(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "data/private/test_answer.csv"))
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) != nTest+1 || rows[0][0] != "id" || rows[0][1] != "default" {
		t.Fatalf("test_answer.csv: %v rows, %v", len(rows), err)
	}
	// Reused when the stamp matches; regenerated for another seed.
	fi1, _ := os.Stat(filepath.Join(dir, "data/public/train.csv"))
	if d2, err := Materialize(root, "loan-default", 3); err != nil || d2 != dir {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(filepath.Join(dir, "data/public/train.csv"))
	if !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Error("cached task was rewritten")
	}
	if _, err := Materialize(root, "loan-default", 4); err != nil {
		t.Fatal(err)
	}
	if ok, _ := stampMatches(dir, stamp{"loan-default", 4, Version}); !ok {
		t.Error("stamp not updated for the new seed")
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 {
		t.Errorf("leftover temp folders: %v", ents)
	}
}
