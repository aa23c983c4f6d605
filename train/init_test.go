package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smtrain/data"
	"smtrain/model"
)

// gpt2Bytes is GPT-2's bytes_to_unicode order: the byte of each of the
// first 256 ids of its vocabulary, and the rune standing for it.
func gpt2Bytes() (order []int, runes [256]rune) {
	in := [256]bool{}
	add := func(lo, hi rune) {
		for b := lo; b <= hi; b++ {
			order = append(order, int(b))
			in[b] = true
			runes[b] = b
		}
	}
	add('!', '~')
	add('¡', '¬')
	add('®', 'ÿ')
	n := 0
	for b := 0; b < 256; b++ {
		if !in[b] {
			order = append(order, b)
			runes[b] = rune(256 + n)
			n++
		}
	}
	return order, runes
}

// writeGPT2StyleTokenizer writes a tokenizer.json laid out like GPT-2's
// (ids 0..255 the byte tokens in bytes_to_unicode order, then merges,
// then <|endoftext|> as the only added token) with vocabSize tokens: the
// merges join pairs of digits, then other pairs of bytes. It has none of
// smtrain's special tokens. It returns the id of <|endoftext|>.
func writeGPT2StyleTokenizer(t *testing.T, path string, vocabSize int) (eot int) {
	t.Helper()
	order, runes := gpt2Bytes()
	vocab := map[string]int{}
	for id, b := range order {
		vocab[string(runes[b])] = id
	}
	var merges []string
	addMerge := func(a, b string) {
		if _, dup := vocab[a+b]; !dup && len(vocab) < vocabSize-1 {
			vocab[a+b] = len(vocab)
			merges = append(merges, a+" "+b)
		}
	}
	for a := '0'; a <= '9'; a++ {
		for b := '0'; b <= '9'; b++ {
			addMerge(string(a), string(b))
		}
	}
	for _, a := range order {
		for _, b := range order {
			addMerge(string(runes[a]), string(runes[b]))
		}
	}
	eot = len(vocab)
	vocab["<|endoftext|>"] = eot
	js := map[string]any{
		"version":       "1.0",
		"added_tokens":  []any{map[string]any{"id": eot, "content": "<|endoftext|>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": true}},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"decoder":       map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "vocab": vocab, "merges": merges},
	}
	b, err := json.MarshalIndent(js, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return eot
}

// writeHFGPT2 writes an HF GPT2LMHeadModel folder: config.json with HF's
// keys (no bkspc_token_id), model.safetensors with HF's names
// ("transformer." prefix, the attention buffers h.N.attn.bias and
// masked_bias, the tied lm_head.weight) and a GPT-2 style tokenizer.json
// without smtrain's special tokens. It returns the original parameters.
func writeHFGPT2(t *testing.T, dir string) *model.Params {
	return writeHFGPT2Shape(t, dir, 2, 2, 16, 64, 357)
}

// writeHFGPT2Shape is writeHFGPT2 for a given shape (L, H, D, P, V).
func writeHFGPT2Shape(t *testing.T, dir string, L, H, D, P, V int) *model.Params {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	eot := writeGPT2StyleTokenizer(t, filepath.Join(dir, TokenizerFile), V)
	cfg := model.Config{NLayer: L, NHead: H, NEmbd: D, NPositions: P, VocabSize: V, LayerNormEpsilon: 1e-5, BkspcTokenID: -1, EOSTokenID: eot}
	p, err := model.NewParams(cfg, model.F32, rand.New(rand.NewPCG(11, 12)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, q := range p.List { // a "pretrained" look: larger, varied weights
		for j := range q.F32 {
			q.F32[j] = q.F32[j]*6 + float32(rng.NormFloat64()*0.02)
		}
	}
	writeHFModel(t, dir, p)
	return p
}

// writeHFModel writes p as an HF GPT-2 model.safetensors and config.json
// in dir.
func writeHFModel(t *testing.T, dir string, p *model.Params) {
	t.Helper()
	P, D, H, L, V, eot := p.Cfg.NPositions, p.Cfg.NEmbd, p.Cfg.NHead, p.Cfg.NLayer, p.Cfg.VocabSize, p.Cfg.EOSTokenID
	var ts []model.Tensor
	tril := make([]float32, P*P)
	for i := 0; i < P; i++ {
		for j := 0; j <= i; j++ {
			tril[i*P+j] = 1
		}
	}
	for _, q := range p.List {
		ts = append(ts, model.F32Tensor("transformer."+q.Name, q.Shape, q.F32))
		if strings.HasSuffix(q.Name, "attn.c_attn.weight") {
			l := strings.Split(q.Name, ".")[1]
			ts = append(ts, model.F32Tensor("transformer.h."+l+".attn.bias", []int{1, 1, P, P}, tril),
				model.F32Tensor("transformer.h."+l+".attn.masked_bias", []int{}, []float32{-1e4}))
		}
	}
	wte := p.Get("wte.weight")
	ts = append(ts, model.F32Tensor("lm_head.weight", wte.Shape, wte.F32))
	if err := model.WriteSafetensors(filepath.Join(dir, model.ModelFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	hc := fmt.Sprintf(`{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
 "bos_token_id": %d, "embd_pdrop": 0.1, "eos_token_id": %d, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
 "model_type": "gpt2", "n_ctx": %d, "n_embd": %d, "n_head": %d, "n_inner": null, "n_layer": %d, "n_positions": %d,
 "reorder_and_upcast_attn": false, "resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": false, "scale_attn_weights": true,
 "summary_activation": null, "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
 "summary_use_proj": true, "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
 "torch_dtype": "float32", "transformers_version": "4.26.0", "use_cache": true, "vocab_size": %d}`, eot, eot, P, D, H, L, P, V)
	if err := os.WriteFile(filepath.Join(dir, model.ConfigFile), []byte(hc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// chainBatch lays out token rows as plain causal chains padded to T.
func chainBatch(rows [][]int32, T int) (inputs, positions, parents []int32) {
	for _, r := range rows {
		for i := 0; i < T; i++ {
			if i < len(r) {
				inputs = append(inputs, r[i])
				positions = append(positions, int32(i))
				parents = append(parents, int32(i-1))
			} else {
				inputs, positions, parents = append(inputs, 0), append(positions, 0), append(parents, -1)
			}
		}
	}
	return
}

func goLogits64(t *testing.T, p *model.Params, B, T int, in, pos, par []int32) []float64 {
	t.Helper()
	if p.DType == model.F32 {
		var out []float64
		for _, v := range goLogits(t, p, B, T, in, pos, par) {
			out = append(out, float64(v))
		}
		return out
	}
	g, err := model.NewGraph(p, B, T)
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.CompileForward()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := g.SetBatch(in, pos, par); err != nil {
		t.Fatal(err)
	}
	if err := m.Step(); err != nil {
		t.Fatal(err)
	}
	return append([]float64(nil), g.Logits64()...)
}

func goLogits(t *testing.T, p *model.Params, B, T int, in, pos, par []int32) []float32 {
	t.Helper()
	g, err := model.NewGraph(p, B, T)
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.CompileForward()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := g.SetBatch(in, pos, par); err != nil {
		t.Fatal(err)
	}
	if err := m.Step(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), g.Logits32()...)
}

// TestInitFromHFGPT2GrowsVocab: -init from HF GPT-2 weights whose
// tokenizer lacks <bkspc> and the other specials appends the 7 specials,
// grows wte by 7 rows, keeps n_positions, and leaves the logits of every
// old token unchanged: equal to Go's logits of the original weights (bit
// for bit in float64; in float32 up to BLAS summation order), and equal to
// the logits the independent PyTorch implementation
// (model/testdata/reftorch.py) computes from the original folder.
func TestInitFromHFGPT2GrowsVocab(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gpt2-tiny")
	orig := writeHFGPT2(t, dir)
	V := orig.Cfg.VocabSize

	im, err := LoadInit(dir, "", 5)
	if err != nil {
		t.Fatal(err)
	}
	tok, p := im.Tokenizer, im.Params
	if im.OldVocab != V || im.Grown() != data.NumSpecial || p.Cfg.VocabSize != V+data.NumSpecial {
		t.Fatalf("vocabulary %d -> %d (grown %d), want %d -> %d", im.OldVocab, p.Cfg.VocabSize, im.Grown(), V, V+data.NumSpecial)
	}
	if int(tok.BkspcID()) < V || p.Cfg.BkspcTokenID != int(tok.BkspcID()) || p.Cfg.EOSTokenID != int(tok.EOSID()) {
		t.Fatalf("special ids: model bkspc %d eos %d, tokenizer bkspc %d eos %d", p.Cfg.BkspcTokenID, p.Cfg.EOSTokenID, tok.BkspcID(), tok.EOSID())
	}
	if p.Cfg.NPositions != orig.Cfg.NPositions || p.Cfg.NLayer != orig.Cfg.NLayer {
		t.Fatalf("shape changed: %+v", p.Cfg)
	}
	// The new <eos> starts from <|endoftext|>'s row (plus the small noise).
	D := p.Cfg.NEmbd
	w := p.Get("wte.weight").F32
	eot, eos := orig.Cfg.EOSTokenID, int(tok.EOSID())
	for j := 0; j < D; j++ {
		if d := math.Abs(float64(w[eos*D+j] - w[eot*D+j])); d > 0.02 {
			t.Fatalf("<eos> row coordinate %d differs from <|endoftext|> by %g", j, d)
		}
	}

	// Old-token inputs from real text.
	var rows [][]int32
	for _, s := range []string{"12+34=46", "Q: 7-3? A: 4", "hello world 99"} {
		ids, err := tok.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if int(id) >= V {
				t.Fatalf("%q encodes to a new token %d", s, id)
			}
		}
		rows = append(rows, ids)
	}
	B, T := len(rows), 16
	in, pos, par := chainBatch(rows, T)
	nV := p.Cfg.VocabSize
	// float64: exactly equal. float32: equal up to the summation order
	// BLAS picks for a wider LM-head matrix (a few ulps).
	for _, dt := range []model.DType{model.F64, model.F32} {
		po, err := orig.Convert(dt)
		if err != nil {
			t.Fatal(err)
		}
		pg, err := p.Convert(dt)
		if err != nil {
			t.Fatal(err)
		}
		a, b := goLogits64(t, po, B, T, in, pos, par), goLogits64(t, pg, B, T, in, pos, par)
		tol := 0.0
		if dt == model.F32 {
			tol = 1e-6
		}
		worst := 0.0
		for n := 0; n < B*T; n++ {
			for v := 0; v < V; v++ {
				d := math.Abs(a[n*V+v]-b[n*nV+v]) / max(1, math.Abs(a[n*V+v]))
				worst = max(worst, d)
				if d > tol {
					t.Fatalf("%v: input %d token %d: logit %v before growth, %v after", dt, n, v, a[n*V+v], b[n*nV+v])
				}
			}
		}
		t.Logf("%v: old-token logits before vs after growth: max relative difference %.2g", dt, worst)
	}
	b := goLogits(t, p, B, T, in, pos, par)

	// The same against PyTorch on the original folder.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Logf("PyTorch check skipped: no %s", py)
		return
	}
	tmp := t.TempDir()
	i64 := func(v []int32) []int64 {
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return out
	}
	batch := filepath.Join(tmp, "batch.safetensors")
	if err := model.WriteSafetensors(batch, []model.Tensor{
		model.I64Tensor("inputs", []int{B, T}, i64(in)),
		model.I64Tensor("positions", []int{B, T}, i64(pos)),
		model.I64Tensor("parents", []int{B, T}, i64(par)),
	}, nil); err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(tmp, "logits.safetensors")
	cmd := exec.Command(py, "../model/testdata/torch_check.py", dir, batch, outPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "No module named 'torch'") {
			t.Logf("PyTorch check skipped: no torch for %s", py)
			return
		}
		t.Fatalf("torch_check.py: %v\n%s", err, out)
	}
	st, err := model.ReadSafetensors(outPath)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := st.Get("logits").Float64s()
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for n := 0; n < B*T; n++ {
		if par[n] == -1 && pos[n] == 0 && in[n] == 0 && n%T != 0 {
			continue // padding
		}
		for v := 0; v < V; v++ {
			d := math.Abs(float64(b[n*nV+v])-ref[n*V+v]) / max(1, math.Abs(ref[n*V+v]))
			worst = max(worst, d)
		}
	}
	t.Logf("grown model (Go, float32) vs PyTorch on the original weights (float64): max relative logit difference %.2g", worst)
	if worst > 1e-4 {
		t.Fatalf("old-token logits differ from PyTorch's by %g", worst)
	}
}

// TestFitFromHFGPT2 trains from the grown HF weights: the tokenizer and
// shape come from the checkpoint, the replay buffer samples with the new
// <bkspc>, the loss goes down, and the checkpoints hold the grown model.
func TestFitFromHFGPT2(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gpt2-tiny")
	writeHFGPT2(t, dir)
	out := filepath.Join(t.TempDir(), "run")
	cfg := smallConfig(out, 10)
	cfg.Init = dir
	cfg.LR, cfg.MinLR, cfg.WarmupSteps = 3e-3, 3e-3, 0
	cfg.GradAccum = 1
	tr, err := New(cfg, arithInputs(cfg), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var bc []float64
	tr.AddHook(hookFunc(func(ctx context.Context, _ *Trainer, s *StepInfo) error {
		if math.IsNaN(s.Loss) || s.Skipped {
			return fmt.Errorf("step %d: loss %v skipped %v", s.Step, s.Loss, s.Skipped)
		}
		bc = append(bc, s.Components["bc"])
		return nil
	}))
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("bc loss per step: %.3f", bc)
	if !(bc[len(bc)-1] < bc[0]) {
		t.Fatalf("bc loss did not go down: %v", bc)
	}
	ck, err := ResolveCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.Load(ck, model.F32)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := data.LoadTokenizer(filepath.Join(ck, TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	if p.Cfg.VocabSize != tok.VocabSize() || p.Cfg.BkspcTokenID != int(tok.BkspcID()) || p.Cfg.NLayer != 2 || p.Cfg.NEmbd != 16 || p.Cfg.NPositions != 64 {
		t.Fatalf("checkpoint config %+v (tokenizer %d tokens, bkspc %d)", p.Cfg, tok.VocabSize(), tok.BkspcID())
	}
	var rc Config
	b, _ := os.ReadFile(filepath.Join(out, ConfigOutFile))
	if err := json.Unmarshal(b, &rc); err != nil || rc.NLayer != 2 || rc.NEmbd != 16 || rc.Init != dir {
		t.Fatalf("OUT/config.json: %v %+v", err, rc)
	}
	replays := 0
	for _, line := range strings.Split(string(mustRead(t, filepath.Join(out, MetricsFile))), "\n") {
		if strings.Contains(line, `"split":"replay"`) {
			replays++
		}
	}
	if replays == 0 {
		t.Fatal("no replay refresh ran")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadInitErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gpt2-tiny")
	writeHFGPT2(t, dir)
	tokPath := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.Rename(filepath.Join(dir, TokenizerFile), tokPath); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInit(dir, "", 1); err == nil || !strings.Contains(err.Error(), "-tokenizer") {
		t.Fatalf("no tokenizer: %v", err)
	}
	if im, err := LoadInit(dir, tokPath, 1); err != nil || im.Grown() != data.NumSpecial {
		t.Fatalf("tokenizer given separately: %v", err)
	}
	// A tokenizer smaller than the model is not the model's.
	small := filepath.Join(t.TempDir(), "bytes.json")
	if err := data.ByteTokenizer().Save(small); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInit(dir, small, 1); err == nil || !strings.Contains(err.Error(), "vocab_size") {
		t.Fatalf("smaller tokenizer: %v", err)
	}
	if _, err := LoadInit(t.TempDir(), "", 1); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Fatalf("empty folder: %v", err)
	}
}

// TestInitGPT2Scale runs -init on a folder with GPT-2 small's shape (L12
// H12 D768 P1024, V 50257 with a synthetic byte-level BPE of 50,000
// merges; random weights): load, vocabulary growth to 50,264, unchanged
// old-token logits, two training steps, the checkpoint. About 2 GB of
// memory and a minute or two; run with SMTRAIN_GPT2_SCALE=1.
func TestInitGPT2Scale(t *testing.T) {
	if os.Getenv("SMTRAIN_GPT2_SCALE") == "" {
		t.Skip("set SMTRAIN_GPT2_SCALE=1 to run (GPT-2 small sized)")
	}
	dir := filepath.Join(t.TempDir(), "gpt2-small-shape")
	t0 := time.Now()
	orig := writeHFGPT2Shape(t, dir, 12, 12, 768, 1024, 50257)
	t.Logf("wrote the HF folder in %.1fs", time.Since(t0).Seconds())
	t0 = time.Now()
	im, err := LoadInit(dir, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LoadInit (tokenizer, weights, growth %d -> %d) in %.1fs", im.OldVocab, im.Params.Cfg.VocabSize, time.Since(t0).Seconds())
	if im.Grown() != data.NumSpecial || im.Params.Cfg.VocabSize != 50257+data.NumSpecial || im.Params.Cfg.NPositions != 1024 {
		t.Fatalf("grown config %+v", im.Params.Cfg)
	}
	ids, err := im.Tokenizer.Encode("Hello GPT-2, 12+34=46.")
	if err != nil {
		t.Fatal(err)
	}
	in, pos, par := chainBatch([][]int32{ids}, len(ids))
	a := goLogits(t, orig, 1, len(ids), in, pos, par)
	b := goLogits(t, im.Params, 1, len(ids), in, pos, par)
	V, nV := orig.Cfg.VocabSize, im.Params.Cfg.VocabSize
	worst := 0.0
	for n := range ids {
		for v := 0; v < V; v++ {
			worst = max(worst, math.Abs(float64(a[n*V+v]-b[n*nV+v]))/max(1, math.Abs(float64(a[n*V+v]))))
		}
	}
	t.Logf("old-token logits before vs after growth: max relative difference %.2g", worst)
	if worst > 1e-4 { // float32, BLAS summation order over D = 768 (the exact check is in float64 above)
		t.Fatalf("old-token logits changed by %g", worst)
	}
	orig = nil

	out := filepath.Join(t.TempDir(), "run")
	cfg := smallConfig(out, 2)
	cfg.Init = dir
	cfg.NPositions, cfg.BatchSize, cfg.GradAccum = 64, 2, 1
	cfg.ReplayEvery, cfg.EvalEvery, cfg.EvalBatches, cfg.EvalSamples, cfg.CkptEvery = 0, 0, 1, 0, 0
	cfg.ArithTrain, cfg.ArithTest = 16, 2
	t0 = time.Now()
	tr, err := New(cfg, arithInputs(cfg), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var losses []float64
	tr.AddHook(hookFunc(func(ctx context.Context, _ *Trainer, s *StepInfo) error {
		losses = append(losses, s.Loss)
		return nil
	}))
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("New + 2 steps + eval + checkpoint in %.1fs, losses %.3f", time.Since(t0).Seconds(), losses)
	p, err := model.Load(filepath.Join(out, fmt.Sprintf(ckptNameTemplate, 2)), model.F32)
	if err != nil || p.Cfg.VocabSize != nV {
		t.Fatalf("checkpoint: %v %+v", err, p.Cfg)
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM") {
				t.Log("peak " + strings.Join(strings.Fields(l), " "))
			}
		}
	}
}

// TestInitFromHFGPT2VocabMerges: an HF GPT-2 folder with the original
// vocab.json + merges.txt instead of tokenizer.json loads with the same
// tokenizer (ids for text and specials) and the same grown weights.
func TestInitFromHFGPT2VocabMerges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gpt2-tiny")
	writeHFGPT2(t, dir)
	want, err := LoadInit(dir, "", 5)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	var tj struct {
		Model struct {
			Vocab  map[string]int `json:"vocab"`
			Merges []string       `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	vj, err := json.Marshal(tj.Model.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, data.GPT2VocabFile), vj, 0o644); err != nil {
		t.Fatal(err)
	}
	merges := "#version: 0.2\n" + strings.Join(tj.Model.Merges, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, data.GPT2MergesFile), []byte(merges), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, TokenizerFile)); err != nil {
		t.Fatal(err)
	}
	got, err := LoadInit(dir, "", 5)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tokenizer.VocabSize() != want.Tokenizer.VocabSize() || got.Tokenizer.EOSID() != want.Tokenizer.EOSID() ||
		got.Tokenizer.BkspcID() != want.Tokenizer.BkspcID() || got.Params.Cfg != want.Params.Cfg {
		t.Fatalf("vocab.json+merges.txt: %d tokens, cfg %+v; tokenizer.json: %d, %+v",
			got.Tokenizer.VocabSize(), got.Params.Cfg, want.Tokenizer.VocabSize(), want.Params.Cfg)
	}
	for _, s := range []string{"12+34=46<|endoftext|>", "Q: 7-3? A: 4 hello"} {
		a, err1 := got.Tokenizer.Encode(s)
		b, err2 := want.Tokenizer.Encode(s)
		if err1 != nil || err2 != nil || !slices.Equal(a, b) {
			t.Fatalf("%q: %v, tokenizer.json %v", s, a, b)
		}
	}
	if !slices.Equal(got.Params.Get("wte.weight").F32, want.Params.Get("wte.weight").F32) {
		t.Fatal("grown wte differs")
	}
	os.Remove(filepath.Join(dir, data.GPT2MergesFile))
	if _, err := LoadInit(dir, "", 5); err == nil || !strings.Contains(err.Error(), "merges.txt") {
		t.Fatalf("without merges.txt: %v", err)
	}
}

// TestInitPaddedVocab: a checkpoint whose vocab_size was rounded up to a
// multiple of 64 (here 300 tokens in 320 rows, as nanoGPT stores GPT-2's
// 50,257 in 50,304) loads: the 20 padding rows are dropped, smtrain's
// specials get new rows (<eos> from <|endoftext|>), and the old tokens'
// logits are unchanged; with padding of 128 rows or more, or a size that is
// not a multiple of 64, the tokenizer is refused as before.
func TestInitPaddedVocab(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gpt2-padded")
	orig := writeHFGPT2Shape(t, dir, 2, 2, 16, 64, 300)
	padded, err := model.GrowVocab(orig, 320, rand.New(rand.NewPCG(1, 1)), model.GrowOptions{NoiseScale: 3})
	if err != nil {
		t.Fatal(err)
	}
	writeHFModel(t, dir, padded)
	im, err := LoadInit(dir, "", 5)
	if err != nil {
		t.Fatal(err)
	}
	p, tok := im.Params, im.Tokenizer
	if im.Padding != 20 || im.OldVocab != 300 || p.Cfg.VocabSize != 300+data.NumSpecial || im.Grown() != data.NumSpecial {
		t.Fatalf("padding %d, kept %d, vocabulary %d, grown %d", im.Padding, im.OldVocab, p.Cfg.VocabSize, im.Grown())
	}
	D := p.Cfg.NEmbd
	w, w0 := p.Get("wte.weight").F32, orig.Get("wte.weight").F32
	for i := 0; i < 300*D; i++ {
		if w[i] != w0[i] {
			t.Fatalf("old row %d changed", i/D)
		}
	}
	eot, eos := orig.Cfg.EOSTokenID, int(tok.EOSID())
	for j := 0; j < D; j++ {
		if d := math.Abs(float64(w[eos*D+j] - w[eot*D+j])); d > 0.05 {
			t.Fatalf("<eos> row coordinate %d differs from <|endoftext|> by %g", j, d)
		}
	}
	ids, err := tok.Encode("12+34=46 hello")
	if err != nil {
		t.Fatal(err)
	}
	in, pos, par := chainBatch([][]int32{ids}, 16)
	a, b := goLogits64(t, orig, 1, 16, in, pos, par), goLogits64(t, p, 1, 16, in, pos, par)
	for n := 0; n < 16; n++ {
		for v := 0; v < 300; v++ {
			if d := math.Abs(a[n*300+v] - b[n*p.Cfg.VocabSize+v]); d > 1e-5*max(1, math.Abs(a[n*300+v])) {
				t.Fatalf("input %d token %d: logit %v before, %v after", n, v, a[n*300+v], b[n*p.Cfg.VocabSize+v])
			}
		}
	}
	// not padding: 128 extra rows, or a size that is no multiple of 64
	for _, rows := range []int{448, 310} {
		big, err := model.GrowVocab(orig, rows, rand.New(rand.NewPCG(1, 1)), model.GrowOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeHFModel(t, dir, big)
		if _, err := LoadInit(dir, "", 5); err == nil || !strings.Contains(err.Error(), "not the tokenizer of these weights") {
			t.Fatalf("%d rows for 300 tokens: %v", rows, err)
		}
	}
}
