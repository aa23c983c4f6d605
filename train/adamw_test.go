package train

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"smtrain/model"
)

// TestAdamWMatchesTorch checks three steps against torch.optim.AdamW
// (PyTorch 1.13, float64; w decayed with weight_decay 0.1, b not), values
// printed by torch and pasted here:
//
//	opt = torch.optim.AdamW([{'params':[w],'weight_decay':0.1},
//	    {'params':[b],'weight_decay':0.0}], lr=0.1, betas=(0.9,0.95), eps=1e-8)
func TestAdamWMatchesTorch(t *testing.T) {
	cfg := AdamWConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	a, err := NewAdamW[float64](cfg, []string{"w", "b"}, []int{4, 2}, DecayMask([][]int{{2, 2}, {2}}))
	if err != nil {
		t.Fatal(err)
	}
	w := []float64{1.0, -2.0, 0.5, 3.0}
	b := []float64{0.25, -0.75}
	grads := [][2][]float64{
		{{0.5, -0.1, 2.0, 0.0}, {1.0, -3.0}},
		{{-0.25, 0.3, 1.0, 1e-3}, {0.0, 2.0}},
		{{4.0, -4.0, 0.1, -0.2}, {-1.0, 0.5}},
	}
	want := [][2][]float64{
		{{0.890000002, -1.880000009999999, 0.3950000005, 2.9699999999999998}, {0.150000001, -0.6500000003333333}},
		{{0.8542630578558273, -1.9101295844886241, 0.29712069426434345, 2.866805026071095}, {0.08213522729122116, -0.6354775506602504}},
		{{0.7811660146066912, -1.8318253313970816, 0.2177682439906382, 2.9001780925021303}, {0.09072011855155968, -0.6331553647040422}},
	}
	for s := range grads {
		if err := a.Update([][]float64{w, b}, [][]float64{grads[s][0], grads[s][1]}); err != nil {
			t.Fatal(err)
		}
		for k, got := range [][]float64{w, b} {
			for i := range got {
				if d := math.Abs(got[i] - want[s][k][i]); d > 1e-14 {
					t.Errorf("step %d param %d[%d] = %.17g, torch %.17g (diff %.3g)", s+1, k, i, got[i], want[s][k][i], d)
				}
			}
		}
	}
	if a.Step != 3 {
		t.Errorf("Step = %d", a.Step)
	}
	// The same in float32 agrees to float32 precision.
	a32, _ := NewAdamW[float32](cfg, []string{"w", "b"}, []int{4, 2}, []bool{true, false})
	w32 := []float32{1.0, -2.0, 0.5, 3.0}
	b32 := []float32{0.25, -0.75}
	for s := range grads {
		g := [][]float32{f32(grads[s][0]), f32(grads[s][1])}
		if err := a32.Update([][]float32{w32, b32}, g); err != nil {
			t.Fatal(err)
		}
	}
	for i := range w32 {
		if d := math.Abs(float64(w32[i]) - want[2][0][i]); d > 1e-6 {
			t.Errorf("float32 w[%d] = %g, torch %g", i, w32[i], want[2][0][i])
		}
	}
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// TestAdamWFirstStepByHand: on step 1 the bias-corrected update is
// lr·g/(|g| + eps) after the decay p·(1−lr·wd).
func TestAdamWFirstStepByHand(t *testing.T) {
	cfg := AdamWConfig{LR: 0.01, Beta1: 0.8, Beta2: 0.99, Eps: 1e-3, WeightDecay: 0.5}
	a, _ := NewAdamW[float64](cfg, []string{"p"}, []int{3}, []bool{true})
	p := []float64{2, -1, 0}
	g := []float64{0.004, -3, 0}
	if err := a.Update([][]float64{p}, [][]float64{g}); err != nil {
		t.Fatal(err)
	}
	// m̂ = g, v̂ = g², update = lr·g/(|g| + eps) after p·(1 − 0.005).
	want := []float64{2*0.995 - 0.01*0.004/(0.004+1e-3), -1*0.995 + 0.01*3/(3+1e-3), 0}
	for i := range p {
		if math.Abs(p[i]-want[i]) > 1e-15 {
			t.Errorf("p[%d] = %.17g, want %.17g", i, p[i], want[i])
		}
	}
	if math.Abs(a.M[0][1]-(-0.6)) > 1e-15 || math.Abs(a.V[0][1]-0.09) > 1e-15 {
		t.Errorf("moments m=%v v=%v", a.M[0], a.V[0])
	}
}

func TestClipGradNorm(t *testing.T) {
	g := [][]float64{{3}, {0, 4}}
	n := ClipGradNorm(g, 1)
	if n != 5 {
		t.Errorf("norm %g, want 5", n)
	}
	c := 1 / (5 + 1e-6)
	if math.Abs(g[0][0]-3*c) > 1e-15 || math.Abs(g[1][1]-4*c) > 1e-15 {
		t.Errorf("clipped %v", g)
	}
	if n := GradNorm(g); math.Abs(n-1) > 1e-6 {
		t.Errorf("norm after clip %g", n)
	}
	// Below the threshold nothing changes.
	h := [][]float32{{0.3, -0.4}}
	if n := ClipGradNorm(h, 1); math.Abs(n-0.5) > 1e-7 || h[0][0] != 0.3 || h[0][1] != -0.4 {
		t.Errorf("unclipped: norm %g grads %v", n, h)
	}
	// float64 accumulation: the norm of 1e6 equal float32 values is
	// within 1e-9 (a float32 running sum would be off by percent).
	big := make([]float32, 1_000_000)
	for i := range big {
		big[i] = 1e-4
	}
	if n, want := GradNorm([][]float32{big}), 1000*float64(float32(1e-4)); math.Abs(n-want) > 1e-9*want {
		t.Errorf("norm of 1e6 × 1e-4 = %.15g, want %.15g", n, want)
	}
	// Non-finite norms are reported and leave the gradients alone.
	bad := [][]float64{{math.Inf(1), 1}}
	if n := ClipGradNorm(bad, 1); !math.IsInf(n, 1) || bad[0][1] != 1 {
		t.Errorf("inf: norm %g grads %v", n, bad)
	}
	// maxNorm <= 0 disables clipping.
	d := [][]float64{{30, 40}}
	if n := ClipGradNorm(d, 0); n != 50 || d[0][0] != 30 {
		t.Errorf("disabled: %g %v", n, d)
	}
}

// TestAdamWStateRoundTrip: saving after 3 steps and restoring into a fresh
// optimizer continues bit-identically.
func TestAdamWStateRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{5, 70000, 3}
	names := []string{"a", "b", "c"}
	mk := func() [][]float32 {
		out := make([][]float32, len(sizes))
		for i, n := range sizes {
			out[i] = make([]float32, n)
		}
		return out
	}
	p1, grads := mk(), make([][][]float32, 6)
	for i := range p1 {
		for j := range p1[i] {
			p1[i][j] = float32(rng.NormFloat64())
		}
	}
	for s := range grads {
		grads[s] = mk()
		for i := range grads[s] {
			for j := range grads[s][i] {
				grads[s][i][j] = float32(rng.NormFloat64())
			}
		}
	}
	a, _ := NewAdamW[float32](DefaultAdamW, names, sizes, []bool{true, true, false})
	for s := 0; s < 3; s++ {
		a.Update(p1, grads[s])
	}
	blob, err := a.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	p2 := mk()
	for i := range p1 {
		copy(p2[i], p1[i])
	}
	b, _ := NewAdamW[float32](DefaultAdamW, names, sizes, []bool{true, true, false})
	st, err := model.ParseSafetensors(blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.LoadState(st); err != nil {
		t.Fatal(err)
	}
	if b.Step != 3 {
		t.Fatalf("restored step %d", b.Step)
	}
	for s := 3; s < 6; s++ {
		a.Update(p1, grads[s])
		b.Update(p2, grads[s])
	}
	for i := range p1 {
		for j := range p1[i] {
			if p1[i][j] != p2[i][j] {
				t.Fatalf("param %d[%d]: %g vs %g after resume", i, j, p1[i][j], p2[i][j])
			}
		}
	}
	// Mismatched state is an error.
	c, _ := NewAdamW[float32](DefaultAdamW, []string{"a", "b", "x"}, sizes, []bool{true, true, false})
	if err := c.LoadState(st); err == nil || !strings.Contains(err.Error(), "missing tensor m.x") {
		t.Errorf("wrong names: %v", err)
	}
	d, _ := NewAdamW[float32](DefaultAdamW, names, []int{5, 70000, 4}, []bool{true, true, false})
	if err := d.LoadState(st); err == nil || !strings.Contains(err.Error(), "m.c") {
		t.Errorf("wrong size: %v", err)
	}
}

func TestAdamWErrors(t *testing.T) {
	if _, err := NewAdamW[float32](AdamWConfig{LR: 1e-3, Beta1: 1, Beta2: 0.9, Eps: 1e-8}, nil, nil, nil); err == nil {
		t.Error("beta1 = 1 accepted")
	}
	if _, err := NewAdamW[float32](DefaultAdamW, []string{"a", "a"}, []int{1, 1}, []bool{false, false}); err == nil {
		t.Error("duplicate names accepted")
	}
	a, _ := NewAdamW[float32](DefaultAdamW, []string{"a"}, []int{2}, []bool{false})
	if err := a.Update([][]float32{{1, 2}}, [][]float32{{1}}); err == nil {
		t.Error("short gradient accepted")
	}
	if a.Step != 0 {
		t.Error("failed update counted as a step")
	}
}
