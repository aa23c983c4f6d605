package model_test

// Comparison with the independent PyTorch implementation in
// testdata/reftorch.py, llm.c style: the golden file written by
// testdata/gen_reference.py holds a tiny model's parameters, a tree batch
// with backspaces and padding, the logits, the loss, every parameter
// gradient and the losses of 5 AdamW steps; this test recomputes all of it
// with the Go graph and train.AdamW and prints the max differences.
// Regenerate with: /usr/bin/python3 model/testdata/gen_reference.py

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"smtrain/model"
	"smtrain/train"
)

const goldenFile = "testdata/reference_tiny.safetensors"

// golden is the content of the reference file.
type golden struct {
	cfg                               model.Config
	params                            *model.Params // float64
	inputs, positions, parents, tgts  []int32
	B, T                              int
	logits                            []float64
	loss                              float64
	grads                             map[string][]float64
	adamLosses, adamNorms             []float64
	adamLR, adamWD, adamClip, adamEps float64
	adamB1, adamB2                    float64
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	st, err := model.ReadSafetensors(goldenFile)
	if err != nil {
		t.Fatalf("%v (regenerate with /usr/bin/python3 model/testdata/gen_reference.py)", err)
	}
	g := &golden{grads: map[string][]float64{}}
	if g.cfg, err = model.ParseConfig([]byte(st.Metadata["config"])); err != nil {
		t.Fatalf("golden config: %v", err)
	}
	var ad struct {
		LR          float64    `json:"lr"`
		Betas       [2]float64 `json:"betas"`
		Eps         float64    `json:"eps"`
		WeightDecay float64    `json:"weight_decay"`
		Clip        float64    `json:"clip"`
	}
	if err := json.Unmarshal([]byte(st.Metadata["adamw"]), &ad); err != nil {
		t.Fatalf("golden adamw metadata: %v", err)
	}
	g.adamLR, g.adamB1, g.adamB2, g.adamEps, g.adamWD, g.adamClip = ad.LR, ad.Betas[0], ad.Betas[1], ad.Eps, ad.WeightDecay, ad.Clip
	// The parameters are the tensors without the "ref." prefix, under HF
	// names: load them through the checkpoint validator.
	var ps model.Safetensors
	for _, tt := range st.Tensors {
		if !strings.HasPrefix(tt.Name, "ref.") {
			ps.Tensors = append(ps.Tensors, tt)
		}
	}
	if g.params, err = model.ParamsFromSafetensors(&ps, g.cfg, model.F64); err != nil {
		t.Fatalf("golden params: %v", err)
	}
	ints := func(name string) []int32 {
		tt := st.Get(name)
		if tt == nil {
			t.Fatalf("golden: missing %s", name)
		}
		v, err := tt.Int64s()
		if err != nil {
			t.Fatal(err)
		}
		g.B, g.T = tt.Shape[0], tt.Shape[1]
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out
	}
	floats := func(name string) []float64 {
		tt := st.Get(name)
		if tt == nil {
			t.Fatalf("golden: missing %s", name)
		}
		v, err := tt.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	g.inputs, g.positions, g.parents, g.tgts = ints("ref.inputs"), ints("ref.positions"), ints("ref.parents"), ints("ref.targets")
	g.logits = floats("ref.logits")
	g.loss = floats("ref.loss")[0]
	for _, q := range g.params.List {
		g.grads[q.Name] = floats("ref.grad." + q.Name)
	}
	g.adamLosses, g.adamNorms = floats("ref.adamw.losses"), floats("ref.adamw.gradnorms")
	return g
}

type runner struct {
	g    *model.Graph
	m    *model.Machine
	loss *G.Node
}

func newRunner(t *testing.T, p *model.Params, B, T int, inputs, positions, parents, targets []int32) *runner {
	t.Helper()
	g, err := model.NewGraph(p, B, T)
	if err != nil {
		t.Fatal(err)
	}
	var m *model.Machine
	var loss *G.Node
	if targets != nil {
		if loss, err = model.CrossEntropy(g.Logits, targets); err != nil {
			t.Fatal(err)
		}
		m, err = g.Compile(loss)
	} else {
		m, err = g.CompileForward()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := g.SetBatch(inputs, positions, parents); err != nil {
		t.Fatal(err)
	}
	return &runner{g: g, m: m, loss: loss}
}

func (r *runner) step(t *testing.T) {
	t.Helper()
	if err := r.m.Step(); err != nil {
		t.Fatal(err)
	}
}

// maxDiff returns max |a-b| and max |b|.
func maxDiff[A, B float32 | float64](a []A, b []B) (float64, float64) {
	if len(a) != len(b) {
		return math.Inf(1), 0
	}
	var d, m float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d, m
}

// check prints one llm.c-style line and fails above tol.
func check(t *testing.T, what string, diff, scale, tol float64) {
	t.Helper()
	status := "OK "
	if !(diff <= tol) {
		status = "NOT OK"
		t.Errorf("%s: max diff %.3g > %.3g (max |ref| %.3g)", what, diff, tol, scale)
	}
	t.Logf("%-6s %-36s max diff %.3e  (max |ref| %.3e)", status, what, diff, scale)
}

func TestReferenceFloat64(t *testing.T) {
	g := loadGolden(t)
	r := newRunner(t, g.params, g.B, g.T, g.inputs, g.positions, g.parents, g.tgts)
	r.step(t)
	// The loss works in place of the training graph's logits (they hold
	// dLoss/dlogits after the step): the logits come from a forward-only graph.
	f := newRunner(t, g.params, g.B, g.T, g.inputs, g.positions, g.parents, nil)
	f.step(t)
	d, m := maxDiff(f.g.Logits64(), g.logits)
	check(t, "logits", d, m, 1e-9)
	check(t, "loss", math.Abs(r.m.Loss()-g.loss), math.Abs(g.loss), 1e-11)
	grads := r.m.Grads64()
	for i, q := range g.params.List {
		d, m := maxDiff(grads[i], g.grads[q.Name])
		check(t, "grad "+q.Name, d, m, 1e-9)
	}
}

func TestReferenceFloat32(t *testing.T) {
	g := loadGolden(t)
	p32, err := g.params.Convert(model.F32)
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, p32, g.B, g.T, g.inputs, g.positions, g.parents, g.tgts)
	r.step(t)
	f := newRunner(t, p32, g.B, g.T, g.inputs, g.positions, g.parents, nil) // logits: see TestReferenceFloat64
	f.step(t)
	d, m := maxDiff(f.g.Logits32(), g.logits)
	check(t, "logits (float32)", d, m, 1e-4)
	check(t, "loss (float32)", math.Abs(r.m.Loss()-g.loss), math.Abs(g.loss), 1e-5)
	grads := r.m.Grads()
	for i, q := range g.params.List {
		d, m := maxDiff(grads[i], g.grads[q.Name])
		check(t, "grad "+q.Name+" (f32)", d, m, 1e-4*math.Max(m, 1))
	}
}

// TestReferenceAdamW runs the golden's 5 AdamW steps (nanoGPT decay
// grouping, global-norm clipping) and compares losses and gradient norms.
func TestReferenceAdamW(t *testing.T) {
	g := loadGolden(t)
	p := g.params
	r := newRunner(t, p, g.B, g.T, g.inputs, g.positions, g.parents, g.tgts)
	cfg := train.AdamWConfig{LR: g.adamLR, Beta1: g.adamB1, Beta2: g.adamB2, Eps: g.adamEps, WeightDecay: g.adamWD}
	opt, err := train.NewAdamWFor64(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range p.List {
		if want := len(q.Shape) >= 2; opt.Decay[i] != want {
			t.Errorf("%s: decay %v", q.Name, opt.Decay[i])
		}
	}
	if !opt.Decay[0] || !opt.Decay[1] {
		t.Error("wte/wpe must be decayed (nanoGPT)")
	}
	steps := len(g.adamNorms)
	for s := 0; s <= steps; s++ {
		r.step(t)
		check(t, fmt.Sprintf("adamw loss %d", s), math.Abs(r.m.Loss()-g.adamLosses[s]), g.adamLosses[s], 1e-10)
		if s == steps {
			break
		}
		grads := r.m.Grads64()
		norm := train.ClipGradNorm(grads, g.adamClip)
		check(t, fmt.Sprintf("adamw grad norm %d", s), math.Abs(norm-g.adamNorms[s]), g.adamNorms[s], 1e-10)
		if err := opt.Update(train.Params64(p), grads); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoadTorchWrittenCheckpoint: Go loads the HF-style checkpoint folder
// written by gen_reference.py ("transformer." prefix, attention buffers,
// tied lm_head, float32) and reproduces the reference logits.
func TestLoadTorchWrittenCheckpoint(t *testing.T) {
	g := loadGolden(t)
	p, err := model.Load("testdata/hf_tiny", model.F64)
	if err != nil {
		t.Fatal(err)
	}
	want := g.cfg
	want.BkspcTokenID = -1 // the HF config has no bkspc_token_id
	if p.Cfg != want {
		t.Fatalf("config %+v, want %+v", p.Cfg, want)
	}
	for i, q := range p.List {
		ref := g.params.List[i].F64
		for j, v := range q.F64 {
			if v != float64(float32(ref[j])) {
				t.Fatalf("%s[%d] = %g, want float32(%g)", q.Name, j, v, ref[j])
			}
		}
	}
	r := newRunner(t, p, g.B, g.T, g.inputs, g.positions, g.parents, nil)
	r.step(t)
	d, m := maxDiff(r.g.Logits64(), g.logits)
	check(t, "logits from hf_tiny (f32 weights)", d, m, 1e-5)
}

// TestTorchLoadsGoCheckpoint: Go saves a checkpoint, the PyTorch reference
// (testdata/torch_check.py) loads model.safetensors + config.json and
// computes logits, and they match Go's (float64 at 1e-9, float32 at 1e-4).
func TestTorchLoadsGoCheckpoint(t *testing.T) {
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch").CombinedOutput(); err != nil {
		t.Skipf("no PyTorch at %s (apt-get install python3-torch): %v %s", py, err, out)
	}
	cfg := model.Config{NLayer: 2, NHead: 4, NEmbd: 32, NPositions: 24, VocabSize: 40, LayerNormEpsilon: 1e-5, BkspcTokenID: 3, EOSTokenID: 1}
	p, err := model.NewParams(cfg, model.F32, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, q := range p.List { // scale up so the logits are far from zero
		for j := range q.F32 {
			q.F32[j] = q.F32[j]*8 + float32(rng.NormFloat64()*0.05)
		}
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := model.Save(dir, p, nil); err != nil {
		t.Fatal(err)
	}
	// Two rows: a tree with backspaces and a padded chain.
	B, T := 2, 9
	inputs := []int32{5, 6, 7, 8, 9, 10, 11, 12, 13, 20, 21, 22, 23, 0, 0, 0, 0, 0}
	positions := []int32{0, 1, 2, 3, 3, 2, 3, 4, 1, 0, 1, 2, 3, 0, 0, 0, 0, 0}
	parents := []int32{-1, 0, 1, 2, 2, 1, 5, 6, 0, -1, 0, 1, 2, -1, -1, -1, -1, -1}
	var i64 = func(v []int32) []int64 {
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return out
	}
	batch := filepath.Join(t.TempDir(), "batch.safetensors")
	if err := model.WriteSafetensors(batch, []model.Tensor{
		model.I64Tensor("inputs", []int{B, T}, i64(inputs)),
		model.I64Tensor("positions", []int{B, T}, i64(positions)),
		model.I64Tensor("parents", []int{B, T}, i64(parents)),
	}, nil); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(t.TempDir(), "logits.safetensors")
	cmd := exec.Command(py, "testdata/torch_check.py", dir, batch, outFile)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("torch_check.py: %v\n%s", err, out)
	}
	st, err := model.ReadSafetensors(outFile)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := st.Get("logits").Float64s()
	if err != nil {
		t.Fatal(err)
	}
	p64, err := model.Load(dir, model.F64)
	if err != nil {
		t.Fatal(err)
	}
	r64 := newRunner(t, p64, B, T, inputs, positions, parents, nil)
	r64.step(t)
	d, m := maxDiff(r64.g.Logits64(), ref)
	check(t, "torch vs Go logits (f64)", d, m, 1e-9)
	r32 := newRunner(t, p, B, T, inputs, positions, parents, nil)
	r32.step(t)
	d, m = maxDiff(r32.g.Logits32(), ref)
	check(t, "torch vs Go logits (f32)", d, m, 1e-4*math.Max(1, m))
}
