package objective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/diff/fd"

	"smtrain/data"
)

func mustNew(t *testing.T, name string, cfg Config) Objective {
	t.Helper()
	o, err := New(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func evalLoss(t *testing.T, o Objective, L []float64, V int, b *data.Batch, lambda float64) (Result, []float64) {
	t.Helper()
	return evalLossBk(t, o, L, V, b, lambda, tBk)
}

func evalLossBk(t *testing.T, o Objective, L []float64, V int, b *data.Batch, lambda float64, bkspc int) (Result, []float64) {
	t.Helper()
	g := make([]float64, len(L))
	res, err := o.Loss(L, V, b, Params{BkspcID: bkspc, Lambda: lambda}, g)
	if err != nil {
		t.Fatal(err)
	}
	return res, g
}

func close(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func maxDiff(a, b []float64) (float64, int) {
	m, at := 0.0, -1
	for i := range a {
		if d := math.Abs(a[i] - b[i]); d > m || math.IsNaN(d) {
			m, at = d, i
		}
	}
	return m, at
}

func TestNewNames(t *testing.T) {
	for _, n := range Names {
		o := mustNew(t, n, DefaultConfig())
		if o.Name() != n {
			t.Errorf("New(%q).Name() = %q", n, o.Name())
		}
		if o.Augmented() != (n != "mle") {
			t.Errorf("%s: Augmented = %v", n, o.Augmented())
		}
		if o.UsesReplay() != (n != "mle" && n != "bc") {
			t.Errorf("%s: UsesReplay = %v", n, o.UsesReplay())
		}
	}
	_, err := New("chi3", DefaultConfig())
	if err == nil || !strings.Contains(err.Error(), "chi2mix") || !strings.Contains(err.Error(), "hellinger") {
		t.Errorf("unknown name: err = %v, want a list of valid names", err)
	}
	if DefaultName != "chi2mix" {
		t.Errorf("DefaultName = %q", DefaultName)
	}
}

func TestConfigValidate(t *testing.T) {
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Gamma != 0.998 || d.C != 0.25 || d.Lambda != 0.5 || d.WarmStart != 200 ||
		d.Weighting != "discounted" || d.ValueOn != "mix" || d.ClampEps != 1e-3 {
		t.Errorf("defaults differ from DESIGN.md 4: %+v", d)
	}
	bad := []func(*Config){
		func(c *Config) { c.Gamma = 1.5 },
		func(c *Config) { c.Gamma = math.NaN() },
		func(c *Config) { c.C = -1 },
		func(c *Config) { c.Lambda = 2 },
		func(c *Config) { c.WarmStart = -1 },
		func(c *Config) { c.Weighting = "geometric" },
		func(c *Config) { c.ValueOn = "both" },
		func(c *Config) { c.ClampEps = 0 },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: %+v accepted", i, c)
		}
		if _, err := New("chi2mix", c); err == nil {
			t.Errorf("case %d: New accepted %+v", i, c)
		}
	}
	if d.LambdaAt(199) != 0 || d.LambdaAt(200) != 0.5 {
		t.Errorf("LambdaAt: %v %v", d.LambdaAt(199), d.LambdaAt(200))
	}
}

// configs returns configurations that exercise every option.
func configs() []Config {
	a := DefaultConfig()
	b := DefaultConfig()
	b.Weighting, b.ValueOn, b.Gamma, b.C = WeightUniform, ValueOnData, 0.9, 0.7
	c := DefaultConfig()
	c.Gamma = 0.5
	d := DefaultConfig() // small γ: r lands inside the bounded φ domains
	d.Gamma, d.ClampEps = 0.1, 0.01
	return []Config{a, b, c, d}
}

// TestAgreesWithReference compares loss, components and gradient with the
// slow forward-mode reference on random batches, for every objective.
func TestAgreesWithReference(t *testing.T) {
	const B, T, V = 4, 20, 9
	for _, name := range Names {
		for ci, cfg := range configs() {
			for seed := uint64(1); seed <= 3; seed++ {
				rng := rand.New(rand.NewPCG(seed, uint64(ci)))
				b := randomBatch(rng, B, T, V)
				scale := []float64{0.3, 1, 3}[seed-1]
				L := randomLogits(rng, B*T*V, scale)
				for _, lam := range []float64{0.5, 0, 1} {
					o := mustNew(t, name, cfg)
					res, g := evalLoss(t, o, L, V, b, lam)
					want, comps, wantG := refLoss(name, cfg, L, V, b, tBk, lam)
					tag := fmt.Sprintf("%s cfg%d seed%d λ=%v", name, ci, seed, lam)
					if !close(res.Loss, want, 1e-12) {
						t.Errorf("%s: loss %.15g, reference %.15g", tag, res.Loss, want)
					}
					for k, v := range comps {
						if got, ok := res.Components[k]; !ok || !close(got, v, 1e-12) {
							t.Errorf("%s: component %s = %v (present %v), reference %v", tag, k, got, ok, v)
						}
					}
					if len(res.Components) != len(comps) {
						t.Errorf("%s: components %v, reference %v", tag, res.Components, comps)
					}
					if d, at := maxDiff(g, wantG); d > 1e-12*math.Max(1, math.Abs(wantG[max(at, 0)])) {
						t.Errorf("%s: grad differs by %g at %d (%v vs %v)", tag, d, at, g[at], wantG[at])
					}
				}
			}
		}
	}
}

// TestGradientFiniteDifference checks the analytic gradient of every
// objective against central finite differences (float64) on a batch with
// masked <bkspc>, D and G sets, done and cut-off transitions, multi-turn
// links and (for bounded φ) clamped transitions.
func TestGradientFiniteDifference(t *testing.T) {
	const B, T, V = 3, 16, 8
	for _, name := range Names {
		someClamped, someFree := false, false
		for ci, cfg := range configs() {
			rng := rand.New(rand.NewPCG(7, uint64(ci)))
			b := randomBatch(rng, B, T, V)
			L := randomLogits(rng, B*T*V, 1)
			o := mustNew(t, name, cfg)
			res, g := evalLoss(t, o, L, V, b, 0.6)
			f := func(x []float64) float64 {
				r, err := o.Loss(x, V, b, Params{BkspcID: tBk, Lambda: 0.6}, nil)
				if err != nil {
					t.Fatal(err)
				}
				return r.Loss
			}
			num := fd.Gradient(nil, f, L, &fd.Settings{Formula: fd.Central, Step: 1e-6})
			d, at := maxDiff(g, num)
			if d > 1e-6 {
				t.Errorf("%s cfg%d: analytic vs finite-difference gradient differ by %g at %d (%v vs %v)", name, ci, d, at, g[at], num[at])
			}
			if b.NumTokens() == 0 || res.NumD == 0 || res.NumG == 0 {
				t.Fatalf("test batch lacks D or G transitions: %+v", res)
			}
			t.Logf("%s cfg%d: max |analytic−fd| = %.2g, clamped %.2f, D=%d G=%d", name, ci, d, res.ClampedFrac, res.NumD, res.NumG)
			someClamped = someClamped || res.ClampedFrac > 0
			someFree = someFree || res.ClampedFrac < 1
		}
		switch name {
		case "js", "hellinger", "tv":
			if !someClamped || !someFree {
				t.Errorf("%s: the checks covered clamped=%v unclamped=%v transitions, want both", name, someClamped, someFree)
			}
		}
	}
}

// TestBatchCoverage makes sure the random batches used above contain every
// case the gradient checks are meant to cover.
func TestBatchCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 0))
	b := randomBatch(rng, 3, 16, 8)
	var bk, masked, done, cut, link, sets [2]int
	_ = sets
	for _, tr := range b.Trans {
		if tr.Action == tBk {
			bk[0]++
		}
		if tr.Action == tEnd && !tr.Done {
			link[0]++
		}
		if tr.Done {
			done[0]++
		} else {
			cut[0]++
		}
		sets[tr.Set]++
	}
	for r, ok := range b.BkspcAllowed {
		if !ok && r%b.T < b.Lengths[r/b.T] {
			masked[0]++
		}
	}
	if bk[0] == 0 || masked[0] == 0 || done[0] == 0 || cut[0] == 0 || link[0] == 0 || sets[0] == 0 || sets[1] == 0 {
		t.Errorf("coverage: bkspc %d masked %d done %d notdone %d turn-links %d D %d G %d", bk[0], masked[0], done[0], cut[0], link[0], sets[0], sets[1])
	}
}
