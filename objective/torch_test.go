package objective

import (
	"encoding/json"
	"os"
	"testing"

	"smtrain/data"
)

// torchGolden is testdata/torch_golden.json, written by torch_ref.py: an
// independent PyTorch autograd implementation of DESIGN.md 4.
type torchGolden struct {
	B, T, V   int
	Bkspc     int       `json:"bkspc"`
	Lengths   []int     `json:"lengths"`
	Allowed   []bool    `json:"allowed"`
	Trans     [][7]any  `json:"trans"`
	Logits    []float64 `json:"logits"`
	Generator string    `json:"generator"`
	Cases     []struct {
		Name   string `json:"name"`
		Config struct {
			Gamma     float64 `json:"gamma"`
			C         float64 `json:"c"`
			Weighting string  `json:"weighting"`
			ValueOn   string  `json:"value_on"`
			ClampEps  float64 `json:"clamp_eps"`
		} `json:"config"`
		Lambda     float64            `json:"lambda"`
		Loss       float64            `json:"loss"`
		Components map[string]float64 `json:"components"`
		Grad       []float64          `json:"grad"`
	} `json:"cases"`
}

// TestTorchReference compares every objective with PyTorch autograd
// (float64) on a random transition table (regenerate the golden file with
// /usr/bin/python3 objective/testdata/torch_ref.py).
func TestTorchReference(t *testing.T) {
	raw, err := os.ReadFile("testdata/torch_golden.json")
	if err != nil {
		t.Fatalf("%v (regenerate with /usr/bin/python3 objective/testdata/torch_ref.py)", err)
	}
	var gold torchGolden
	if err := json.Unmarshal(raw, &gold); err != nil {
		t.Fatalf("testdata/torch_golden.json: %v", err)
	}
	N := gold.B * gold.T
	b := &data.Batch{B: gold.B, T: gold.T, Inputs: make([]int32, N), Positions: make([]int32, N),
		Parents: make([]int32, N), Lengths: gold.Lengths, BkspcAllowed: gold.Allowed}
	num := func(x any) int32 { return int32(x.(float64)) }
	for _, tr := range gold.Trans {
		b.Trans = append(b.Trans, data.Transition{State: num(tr[0]), Action: num(tr[1]), Next: num(tr[2]),
			Done: tr[3].(bool), T: num(tr[4]), Set: data.Set(num(tr[5])), Seq: num(tr[6])})
	}
	if len(gold.Cases) != 2*len(Names) {
		t.Fatalf("golden has %d cases, want %d", len(gold.Cases), 2*len(Names))
	}
	for _, c := range gold.Cases {
		cfg := DefaultConfig()
		cfg.Gamma, cfg.C, cfg.Weighting, cfg.ValueOn, cfg.ClampEps =
			c.Config.Gamma, c.Config.C, c.Config.Weighting, c.Config.ValueOn, c.Config.ClampEps
		o := mustNew(t, c.Name, cfg)
		g := make([]float64, len(gold.Logits))
		res, err := o.Loss(gold.Logits, gold.V, b, Params{BkspcID: gold.Bkspc, Lambda: c.Lambda}, g)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if !close(res.Loss, c.Loss, 1e-12) {
			t.Errorf("%s γ=%v: loss %.15g, torch %.15g", c.Name, cfg.Gamma, res.Loss, c.Loss)
		}
		for k, v := range c.Components {
			if !close(res.Components[k], v, 1e-12) {
				t.Errorf("%s γ=%v: component %s = %.15g, torch %.15g", c.Name, cfg.Gamma, k, res.Components[k], v)
			}
		}
		if d, at := maxDiff(g, c.Grad); d > 1e-12 {
			t.Errorf("%s γ=%v: grad differs from torch autograd by %g at %d", c.Name, cfg.Gamma, d, at)
		}
		t.Logf("%s γ=%v: loss %.6f clamped %.2f D=%d G=%d", c.Name, cfg.Gamma, res.Loss, res.ClampedFrac, res.NumD, res.NumG)
	}
}
