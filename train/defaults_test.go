package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestDefaultsAreSweepBest: fit's χ²mix defaults (λ, c, warm start, noise
// kind) are those of the best configuration of the committed validation
// sweep (results/arith/sweep, selection score = mean of greedy and T=1
// validation accuracy with <bkspc>), not the objective package's λ 0.5,
// which the sweep found far worse.
func TestDefaultsAreSweepBest(t *testing.T) {
	files, err := filepath.Glob("../results/arith/sweep/chi2mix*.json")
	if err != nil || len(files) == 0 {
		t.Skip("no sweep results")
	}
	type cfgKeys struct {
		Lambda    float64 `json:"lambda"`
		C         float64 `json:"c"`
		WarmStart int     `json:"warm_start"`
		NoiseKind string  `json:"noise_kind"`
	}
	best, bestScore, bestFile := cfgKeys{}, -1.0, ""
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Base cfgKeys `json:"base_config"`
			Rows []struct {
				Metrics map[string]float64 `json:"metrics"`
			} `json:"rows"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(r.Rows) == 0 {
			t.Fatalf("%s: no rows", f)
		}
		m := r.Rows[0].Metrics
		if s := (m["val_acc_greedy_bk"] + m["val_acc_sample_bk"]) / 2; s > bestScore {
			best, bestScore, bestFile = r.Base, s, f
		}
	}
	d := DefaultConfig()
	got := cfgKeys{d.Lambda, d.C, d.WarmStart, d.NoiseKind}
	if got != best {
		t.Fatalf("fit defaults %+v, but the sweep's best (%s, score %.3f) is %+v", got, filepath.Base(bestFile), bestScore, best)
	}
}
