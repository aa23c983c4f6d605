package objective

import (
	"math"
	"math/rand/v2"
	"testing"

	"smtrain/data"
)

// lse is an independent logsumexp over a row, skipping index skip (-1: none).
func lse(row []float64, skip int) float64 {
	m := math.Inf(-1)
	for a, x := range row {
		if a != skip {
			m = math.Max(m, x)
		}
	}
	s := 0.0
	for a, x := range row {
		if a != skip {
			s += math.Exp(x - m)
		}
	}
	return m + math.Log(s)
}

// TestGammaZeroLinearEqualsMLE: γ = 0, φ(x) = x, uniform weights and the
// value term on D give exactly the token-mean MLE loss (DESIGN.md 4).
func TestGammaZeroLinearEqualsMLE(t *testing.T) {
	const B, T, V = 4, 24, 9
	cfg := DefaultConfig()
	cfg.Gamma, cfg.Weighting, cfg.ValueOn = 0, WeightUniform, ValueOnData
	lin := cfg
	lin.C = 0 // φ(x) = x − 0·x² = x
	for seed := uint64(1); seed <= 3; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		b := randomBatch(rng, B, T, V)
		// Small logits keep r = L[a] inside tv's domain |x| ≤ ½ − ε.
		L := make([]float64, B*T*V)
		for i := range L {
			L[i] = 0.9 * (rng.Float64() - 0.5)
		}
		want, wantG := evalLoss(t, mustNew(t, "mle", cfg), L, V, b, 0)
		cases := []struct {
			name string
			cfg  Config
		}{{"chi2", lin}, {"chi2mix", lin}, {"tv", cfg}}
		for _, c := range cases {
			got, g := evalLoss(t, mustNew(t, c.name, c.cfg), L, V, b, 1)
			if math.Abs(got.Loss-want.Loss) > 1e-9 {
				t.Errorf("seed %d %s: SM loss %.15g, MLE %.15g", seed, c.name, got.Loss, want.Loss)
			}
			if d, at := maxDiff(g, wantG); d > 1e-9 {
				t.Errorf("seed %d %s: gradient differs from MLE's by %g at %d", seed, c.name, d, at)
			}
			if got.ClampedFrac != 0 {
				t.Errorf("seed %d %s: clamped %v, want 0", seed, c.name, got.ClampedFrac)
			}
			if got.NumG == 0 {
				t.Fatalf("seed %d: batch has no G transitions; the value-on-D case is not exercised", seed)
			}
		}
	}
}

// valueSum returns Σ_i w_i (V(s_i) − γV(s'_i)(1−done_i)) over D from the
// objective's value component (a weighted mean) times Σ_D w_i.
func valueSum(t *testing.T, cfg Config, L []float64, V int, b *data.Batch) float64 {
	t.Helper()
	cfg.ValueOn = ValueOnData
	res, _ := evalLoss(t, mustNew(t, "chi2mix", cfg), L, V, b, 0.5)
	wsum := 0.0
	for _, tr := range b.Trans {
		if tr.Set == data.SetD {
			wsum += math.Pow(cfg.Gamma, float64(tr.T))
		}
	}
	return res.Components["value"] * wsum
}

// TestTelescoping: on complete episodes (ending in eos, with backspaces),
// Σ_i γ^{t_i}(V(s_i) − γV(s'_i)(1−done_i)) = V(s_0), summed over episodes.
func TestTelescoping(t *testing.T) {
	const B, T, V = 3, 16, 12
	rng := rand.New(rand.NewPCG(5, 5))
	bl := newBuilder(B, T)
	var starts []int32
	for s := 0; s < B; s++ {
		bl.start(data.SetD, tUser, tAsst)
		starts = append(starts, bl.row(bl.top()))
		for _, a := range []int32{7, 8, tBk, 9, 10, tBk, tBk, 11, 7} {
			if a != tBk && rng.IntN(3) == 0 {
				a = int32(tFirst + rng.IntN(V-tFirst))
			}
			bl.act(a)
		}
		bl.finish(tEOS)
	}
	b := bl.batch()
	if b.Trans[len(b.Trans)-1].Done != true || len(b.Trans) != 3*10 {
		t.Fatalf("episode construction: %d transitions", len(b.Trans))
	}
	for _, gamma := range []float64{0.998, 0.9, 0.5} {
		cfg := DefaultConfig()
		cfg.Gamma = gamma
		L := randomLogits(rng, B*T*V, 2)
		want := 0.0
		for _, r := range starts {
			want += lse(L[int(r)*V:int(r+1)*V], tBk) // <bkspc> is masked at s_0
		}
		got := valueSum(t, cfg, L, V, b)
		if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("γ=%v: Σ γ^t (V(s) − γV(s')) = %.15g, Σ V(s_0) = %.15g", gamma, got, want)
		}
	}
}

// TestMultiTurnTelescoping: the end-of-turn transition links to the state
// after the environment's observation, t counts agent actions only, and the
// value term telescopes across turns to V(s_0).
func TestMultiTurnTelescoping(t *testing.T) {
	const B, T, V = 1, 24, 14
	bl := newBuilder(B, T)
	bl.start(data.SetD, tUser, 7, tAsst) // rows 0..2, s_0 = row 2
	bl.act(8)                            // row 3
	bl.act(tBk)                          // back to row 2
	bl.act(9)                            // row 4
	bl.endTurn(tObs, 10, 11, tAsst)      // obs rows 5..8; next state row 8
	bl.act(12)                           // row 9
	bl.act(tBk)                          // back to row 8 (floor)
	bl.act(13)                           // row 10
	bl.endTurn(tObs, 7, tAsst)           // rows 11..13
	bl.act(8)                            // row 14
	bl.finish(tEnd)                      // final end-of-turn: terminal
	b := bl.batch()
	type link struct {
		state, action, next int32
		t                   int32
		done                bool
	}
	want := []link{
		{2, 8, 3, 0, false}, {3, tBk, 2, 1, false}, {2, 9, 4, 2, false},
		{4, tEnd, 8, 3, false}, // end of turn 1 -> after the observation
		{8, 12, 9, 4, false}, {9, tBk, 8, 5, false}, {8, 13, 10, 6, false},
		{10, tEnd, 13, 7, false}, // end of turn 2
		{13, 8, 14, 8, false}, {14, tEnd, -1, 9, true},
	}
	if len(b.Trans) != len(want) {
		t.Fatalf("%d transitions, want %d", len(b.Trans), len(want))
	}
	for i, w := range want {
		tr := b.Trans[i]
		if (link{tr.State, tr.Action, tr.Next, tr.T, tr.Done}) != w {
			t.Fatalf("transition %d = %+v, want %+v", i, tr, w)
		}
		if i > 0 && b.Trans[i-1].Next != tr.State {
			t.Fatalf("transition %d: state %d is not the previous next state %d", i, tr.State, b.Trans[i-1].Next)
		}
	}
	for _, r := range []int{0, 1, 2, 5, 6, 7, 8, 11, 12, 13} {
		if b.BkspcAllowed[r] {
			t.Errorf("row %d (prompt/observation floor): <bkspc> allowed", r)
		}
	}
	rng := rand.New(rand.NewPCG(11, 3))
	cfg := DefaultConfig()
	cfg.Gamma = 0.9
	L := randomLogits(rng, B*T*V, 2)
	v0 := lse(L[2*V:3*V], tBk)
	if got := valueSum(t, cfg, L, V, b); math.Abs(got-v0) > 1e-12*math.Max(1, math.Abs(v0)) {
		t.Errorf("multi-turn value sum %.15g, V(s_0) = %.15g", got, v0)
	}
	// Control: a broken turn link (the end-of-turn pointing at its own
	// state) must break the identity, so the check above is meaningful.
	broken := *b
	broken.Trans = append([]data.Transition(nil), b.Trans...)
	broken.Trans[3].Next = broken.Trans[3].State
	if got := valueSum(t, cfg, L, V, &broken); math.Abs(got-v0) < 1e-6 {
		t.Errorf("broken link still telescopes (%v vs %v): the identity test is vacuous", got, v0)
	}
}

// tinyBatch is one sequence of len(bkspc) rows with the given transitions.
func tinyBatch(allowed []bool, trans ...data.Transition) *data.Batch {
	n := len(allowed)
	return &data.Batch{
		B: 1, T: n, Inputs: make([]int32, n), Positions: make([]int32, n),
		Parents: make([]int32, n), Lengths: []int{n}, BkspcAllowed: allowed, Trans: trans,
	}
}

func checkNum(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.17g, want %.17g", what, got, want)
	}
}

// TestClosedForm checks tiny categoricals against numbers worked out by hand.
func TestClosedForm(t *testing.T) {
	ln2, ln3 := math.Ln2, math.Log(3)
	t.Run("mle", func(t *testing.T) {
		// π = softmax(0, ln 3) = (1/4, 3/4); action 0: loss ln 4; grad π − e_0.
		b := tinyBatch([]bool{true}, data.Transition{State: 0, Action: 0, Next: -1, Done: true})
		res, g := evalLossBk(t, mustNew(t, "mle", DefaultConfig()), []float64{0, ln3}, 2, b, 0.5, -1)
		checkNum(t, "loss", res.Loss, 1.3862943611198906)
		checkNum(t, "dL0", g[0], -0.75)
		checkNum(t, "dL1", g[1], 0.75)
	})
	t.Run("bkspc-masked", func(t *testing.T) {
		// V = 3 with <bkspc> = 2 masked: π over {0,1} = (1/2, 1/2) whatever L[2].
		b := tinyBatch([]bool{false}, data.Transition{State: 0, Action: 1, Next: -1, Done: true})
		// (L[2] = 800 would overflow exp if it were not excluded.)
		res, g := evalLoss(t, mustNew(t, "bc", DefaultConfig()), []float64{0, 0, 800}, 3, b, 0.5)
		checkNum(t, "loss", res.Loss, 0.6931471805599453)
		checkNum(t, "dL0", g[0], 0.5)
		checkNum(t, "dL1", g[1], -0.5)
		checkNum(t, "dL2", g[2], 0)
		// Allowed: loss ln(2 + e^5).
		b.BkspcAllowed[0] = true
		res, _ = evalLoss(t, mustNew(t, "bc", DefaultConfig()), []float64{0, 0, 5}, 3, b, 0.5)
		checkNum(t, "loss (allowed)", res.Loss, 5.013385901721449)
	})
	t.Run("chi2mix", func(t *testing.T) {
		// rows: L0 = (0, 0), L1 = (0, ln 3); γ = ½, c = ¼, uniform, λ = 1.
		// t0: s=0 a=0 s'=1: r0 = 0 − ½·ln 4 = −ln 2.  t1: s=1 a=1 done: r1 = ln 3.
		// linear = −(r0+r1)/2 = (ln2 − ln3)/2
		// square = ¼·(ln²2 + ln²3)/2
		// value  = ((ln2 − ½ln4) + ln4)/2 = ln 2
		// nll    = (ln 2 + ln 4/3)/2
		cfg := DefaultConfig()
		cfg.Gamma, cfg.C, cfg.Weighting = 0.5, 0.25, WeightUniform
		b := tinyBatch([]bool{true, true},
			data.Transition{State: 0, Action: 0, Next: 1, T: 0},
			data.Transition{State: 1, Action: 1, Next: -1, Done: true, T: 1})
		res, g := evalLossBk(t, mustNew(t, "chi2mix", cfg), []float64{0, 0, 0, ln3}, 2, b, 1, -1)
		checkNum(t, "linear", res.Components["linear"], -0.20273255405408225)
		checkNum(t, "linear formula", res.Components["linear"], (ln2-ln3)/2)
		checkNum(t, "square", res.Components["square"], 0.21092524684134795)
		checkNum(t, "value", res.Components["value"], 0.6931471805599453)
		checkNum(t, "nll", res.Components["nll"], 0.4904146265058631)
		checkNum(t, "loss", res.Loss, 0.7013398733472109)
		// dL0[0] = −½ + c·r0 + ½π0[0]; dL0[1] = ½π0[1]
		// cv1 = −(−½ + c·r0)·γ + (−½γ + ½) ; dL1 = cv1·π1 + (−½ + c·r1)·e_1
		checkNum(t, "dL0[0]", g[0], -0.42328679513998635)
		checkNum(t, "dL0[1]", g[1], 0.25)
		checkNum(t, "dL1[0]", g[2], 0.1466608493924983)
		checkNum(t, "dL1[1]", g[3], 0.21463562034452233)
		// λ = 0: pure BC.
		res0, _ := evalLossBk(t, mustNew(t, "chi2mix", cfg), []float64{0, 0, 0, ln3}, 2, b, 0, -1)
		checkNum(t, "loss λ=0", res0.Loss, 0.4904146265058631)
	})
	t.Run("f-divergences", func(t *testing.T) {
		// One terminal transition, L = (x, 0), action 0: r = x, value = ln(1 + e^x).
		cfg := DefaultConfig()
		cases := []struct {
			name       string
			x          float64
			loss, frac float64
			g0, g1     float64
		}{
			// φ(1) = ½, φ' = ¼: loss = −½ + ln(1+e), dL0 = −¼ + e/(1+e).
			{"hellinger", 1, 0.8132616875182228, 0, 0.4810585786300049, 0.2689414213699951},
			// r = −3 clamped to −1 + 0.001: φ = −999, no gradient through φ.
			{"hellinger", -3, 999.0485873515737, 1, 0.04742587317756679, 0.9525741268224334},
			// φ(1) = ln(2 − e^−1) = 0.48988012564475
			{"js", 1, -0.48988012564475 + 1.3132616875182228, 0, math.NaN(), math.NaN()},
			// φ(1) = −e^−2
			{"kl", 1, 0.1353352832366127 + 1.3132616875182228, 0, math.NaN(), math.NaN()},
			// tv: φ(¼) = ¼; value = ln(1 + e^¼) = 0.82597...
			{"tv", 0.25, -0.25 + math.Log(1+math.Exp(0.25)), 0, math.NaN(), math.NaN()},
			// tv: r = 2 clamped to ½ − 0.001
			{"tv", 2, -0.499 + math.Log(1+math.Exp(2)), 1, math.NaN(), math.NaN()},
		}
		for _, c := range cases {
			b := tinyBatch([]bool{true}, data.Transition{State: 0, Action: 0, Next: -1, Done: true})
			res, g := evalLossBk(t, mustNew(t, c.name, cfg), []float64{c.x, 0}, 2, b, 1, -1)
			checkNum(t, c.name+" loss", res.Loss, c.loss)
			checkNum(t, c.name+" clamped", res.ClampedFrac, c.frac)
			if !math.IsNaN(c.g0) {
				checkNum(t, c.name+" dL0", g[0], c.g0)
				checkNum(t, c.name+" dL1", g[1], c.g1)
			}
		}
	})
}

// TestClampedZeroGradient: for clamped transitions φ contributes no
// gradient: the linear component is locally constant in every logit.
func TestClampedZeroGradient(t *testing.T) {
	const B, T, V = 3, 16, 8
	rng := rand.New(rand.NewPCG(3, 1))
	b := randomBatch(rng, B, T, V)
	L := randomLogits(rng, B*T*V, 1)
	for i := range L {
		L[i] -= 4 // V(s') large relative to Q: every r is far below −1
	}
	for _, name := range []string{"js", "hellinger", "tv"} {
		o := mustNew(t, name, DefaultConfig())
		res, _ := evalLoss(t, o, L, V, b, 1)
		if res.ClampedFrac != 1 {
			t.Fatalf("%s: clamped fraction %v, want 1", name, res.ClampedFrac)
		}
		x := append([]float64(nil), L...)
		for i := range x {
			for _, h := range []float64{-1e-3, 1e-3} {
				x[i] = L[i] + h
				r, _ := evalLoss(t, o, x, V, b, 1)
				if r.Components["linear"] != res.Components["linear"] {
					t.Fatalf("%s: linear component moved with logit %d", name, i)
				}
			}
			x[i] = L[i]
		}
	}
}

// TestEmptyAndMasked: no transitions gives loss 0 and a zero gradient; NaN
// logits at rows no transition uses (padding) never leak into the loss.
func TestEmptyAndMasked(t *testing.T) {
	const B, T, V = 2, 8, 10
	for _, name := range Names {
		o := mustNew(t, name, DefaultConfig())
		b := newBuilder(B, T).batch()
		b.Lengths = []int{0, 0}
		L := randomLogits(rand.New(rand.NewPCG(1, 1)), B*T*V, 1)
		g := make([]float64, len(L))
		for i := range g {
			g[i] = math.NaN()
		}
		res, err := o.Loss(L, V, b, Params{BkspcID: tBk, Lambda: 0.5}, g)
		if err != nil || res.Loss != 0 {
			t.Errorf("%s: empty batch: loss %v err %v", name, res.Loss, err)
		}
		for k, v := range res.Components {
			if v != 0 {
				t.Errorf("%s: empty batch component %s = %v", name, k, v)
			}
		}
		for i, x := range g {
			if x != 0 {
				t.Fatalf("%s: empty batch grad[%d] = %v", name, i, x)
			}
		}
		// NaN in padding rows.
		bl := newBuilder(B, T)
		bl.start(data.SetD, tUser, tAsst)
		bl.act(7)
		bl.finish(tEOS)
		bl.start(data.SetG, tUser, tAsst)
		bl.act(8)
		bl.act(tBk)
		bl.finish(tEOS)
		b = bl.batch()
		for bi := 0; bi < B; bi++ {
			for j := b.Lengths[bi]; j < T; j++ {
				for a := 0; a < V; a++ {
					L[(bi*T+j)*V+a] = math.NaN()
				}
			}
		}
		res, err = o.Loss(L, V, b, Params{BkspcID: tBk, Lambda: 0.5}, g)
		if err != nil || math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
			t.Errorf("%s: NaN padding: loss %v err %v", name, res.Loss, err)
		}
		for i, x := range g {
			if math.IsNaN(x) {
				t.Fatalf("%s: NaN padding leaked into grad[%d]", name, i)
			}
		}
	}
}

// TestOnlyG: a batch of policy generations only (no expert data) has no
// D terms, uses Ê_G for the mix terms, and agrees with the reference.
func TestOnlyG(t *testing.T) {
	const B, T, V = 2, 12, 10
	rng := rand.New(rand.NewPCG(9, 9))
	b := randomBatch(rng, B, T, V)
	for i := range b.Trans {
		b.Trans[i].Set = data.SetG
	}
	L := randomLogits(rng, B*T*V, 1)
	for _, name := range Names {
		res, g := evalLoss(t, mustNew(t, name, DefaultConfig()), L, V, b, 0.5)
		want, _, wantG := refLoss(name, DefaultConfig(), L, V, b, tBk, 0.5)
		if !close(res.Loss, want, 1e-12) || res.NumD != 0 || res.Components["nll"] != 0 {
			t.Errorf("%s: G-only loss %v (ref %v), nll %v", name, res.Loss, want, res.Components["nll"])
		}
		if d, _ := maxDiff(g, wantG); d > 1e-12 {
			t.Errorf("%s: G-only grad differs by %g", name, d)
		}
		if name == "chi2mix" && res.Components["value"] == 0 {
			t.Errorf("chi2mix: G-only value term is 0, want Ê_G")
		}
	}
}

// TestFloat32 checks the float32 path against the float64 one.
func TestFloat32(t *testing.T) {
	const B, T, V = 3, 20, 9
	rng := rand.New(rand.NewPCG(4, 4))
	b := randomBatch(rng, B, T, V)
	L := randomLogits(rng, B*T*V, 2)
	L32 := make([]float32, len(L))
	for i, x := range L {
		L32[i] = float32(x)
		L[i] = float64(L32[i])
	}
	for _, name := range Names {
		o := mustNew(t, name, DefaultConfig())
		res, g := evalLoss(t, o, L, V, b, 0.5)
		g32 := make([]float32, len(L))
		res32, err := o.Loss32(L32, V, b, Params{BkspcID: tBk, Lambda: 0.5}, g32)
		if err != nil {
			t.Fatal(err)
		}
		if !close(res32.Loss, res.Loss, 1e-12) {
			t.Errorf("%s: float32 loss %v, float64 %v", name, res32.Loss, res.Loss)
		}
		for i := range g {
			if math.Abs(float64(g32[i])-g[i]) > 1e-6*math.Max(1, math.Abs(g[i])) {
				t.Fatalf("%s: float32 grad[%d] = %v, float64 %v", name, i, g32[i], g[i])
			}
		}
	}
}

// TestBadInput: malformed batches give a clear error, never a panic.
func TestBadInput(t *testing.T) {
	const B, T, V = 2, 8, 10
	mk := func() *data.Batch {
		bl := newBuilder(B, T)
		bl.start(data.SetD, tUser, tAsst)
		bl.act(7)
		bl.act(tBk)
		bl.finish(tEOS)
		return bl.batch()
	}
	L := make([]float64, B*T*V)
	o := mustNew(t, "chi2mix", DefaultConfig())
	cases := map[string]func(b *data.Batch) ([]float64, Params){
		"short logits": func(b *data.Batch) ([]float64, Params) { return L[:10], Params{BkspcID: tBk} },
		"state range":  func(b *data.Batch) ([]float64, Params) { b.Trans[0].State = 99; return L, Params{BkspcID: tBk} },
		"padding row":  func(b *data.Batch) ([]float64, Params) { b.Trans[0].Next = 6; return L, Params{BkspcID: tBk} },
		"other seq":    func(b *data.Batch) ([]float64, Params) { b.Trans[0].Seq = 1; return L, Params{BkspcID: tBk} },
		"action":       func(b *data.Batch) ([]float64, Params) { b.Trans[0].Action = V; return L, Params{BkspcID: tBk} },
		"masked bkspc": func(b *data.Batch) ([]float64, Params) { b.Trans[2].Action = tBk; return L, Params{BkspcID: tBk} },
		"bkspc id":     func(b *data.Batch) ([]float64, Params) { return L, Params{BkspcID: V} },
		"lambda":       func(b *data.Batch) ([]float64, Params) { return L, Params{BkspcID: tBk, Lambda: 2} },
		"allowed len":  func(b *data.Batch) ([]float64, Params) { b.BkspcAllowed = nil; return L, Params{BkspcID: tBk} },
		"set":          func(b *data.Batch) ([]float64, Params) { b.Trans[1].Set = 7; return L, Params{BkspcID: tBk} },
	}
	for name, f := range cases {
		b := mk()
		if _, err := o.Loss(L, V, b, Params{BkspcID: tBk}, nil); err != nil {
			t.Fatalf("valid batch rejected: %v", err)
		}
		l, p := f(b)
		if _, err := o.Loss(l, V, b, p, nil); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
