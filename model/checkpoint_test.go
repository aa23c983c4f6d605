package model

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var ckptCfg = Config{NLayer: 2, NHead: 2, NEmbd: 8, NPositions: 16, VocabSize: 20, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}

func randParams(t *testing.T, dt DType, seed uint64) *Params {
	t.Helper()
	p, err := NewParams(ckptCfg, dt, rand.New(rand.NewPCG(seed, 7)))
	if err != nil {
		t.Fatal(err)
	}
	// Non-trivial LN and bias values so a mix-up would show.
	for _, q := range p.List {
		for i := 0; i < q.Size(); i++ {
			v := float64(i%7)*0.01 - 0.03 + float64(len(q.Name))*1e-3
			if q.F32 != nil {
				q.F32[i] += float32(v)
			} else {
				q.F64[i] += v
			}
		}
	}
	return p
}

func equalParams(t *testing.T, a, b *Params, tol float64) {
	t.Helper()
	if a.Cfg != b.Cfg {
		t.Fatalf("config %+v vs %+v", a.Cfg, b.Cfg)
	}
	for i, q := range a.List {
		r := b.List[i]
		if q.Name != r.Name || !sameShape(q.Shape, r.Shape) {
			t.Fatalf("param %d: %s %v vs %s %v", i, q.Name, q.Shape, r.Name, r.Shape)
		}
		for j := 0; j < q.Size(); j++ {
			x, y := pval(q, j), pval(r, j)
			if math.Abs(x-y) > tol {
				t.Fatalf("%s[%d]: %g vs %g", q.Name, j, x, y)
			}
		}
	}
}

func pval(q *Param, j int) float64 {
	if q.F32 != nil {
		return float64(q.F32[j])
	}
	return q.F64[j]
}

func TestCheckpointRoundTrip(t *testing.T) {
	for _, dt := range []DType{F32, F64} {
		dir := filepath.Join(t.TempDir(), "ckpt")
		p := randParams(t, dt, 1)
		tok := []byte(`{"model":{}}`)
		if err := Save(dir, p, map[string][]byte{"tokenizer.json": tok}); err != nil {
			t.Fatal(err)
		}
		for _, want := range []DType{F32, F64} {
			q, err := Load(dir, want)
			if err != nil {
				t.Fatal(err)
			}
			if q.DType != want {
				t.Fatalf("loaded dtype %v", q.DType)
			}
			tol := 0.0
			if dt == F64 && want == F32 {
				tol = 1e-7
			}
			equalParams(t, p, q, tol)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "tokenizer.json")); string(b) != string(tok) {
			t.Errorf("tokenizer.json = %q", b)
		}
		st, err := ReadSafetensors(filepath.Join(dir, ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		if st.Metadata["format"] != "pt" || st.Tensors[0].DType != dt.String() || st.Tensors[0].Name != "wte.weight" {
			t.Errorf("model.safetensors: metadata %v, first tensor %s %s", st.Metadata, st.Tensors[0].Name, st.Tensors[0].DType)
		}
		cfgb, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
		for _, key := range []string{`"model_type": "gpt2"`, `"GPT2LMHeadModel"`, `"activation_function": "gelu_new"`, `"n_embd": 8`, `"bkspc_token_id": 2`, `"eos_token_id": 1`, `"layer_norm_epsilon": 0.00001`} {
			if !strings.Contains(string(cfgb), key) {
				t.Errorf("config.json lacks %s:\n%s", key, cfgb)
			}
		}
	}
}

func TestCheckpointReplaceAndRefuse(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ckpt")
	p1 := randParams(t, F32, 1)
	p2 := randParams(t, F32, 2)
	if err := Save(dir, p1, map[string][]byte{"old.txt": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, p2, nil); err != nil {
		t.Fatal(err)
	}
	q, err := Load(dir, F32)
	if err != nil {
		t.Fatal(err)
	}
	equalParams(t, p2, q, 0)
	if _, err := os.Stat(filepath.Join(dir, "old.txt")); err == nil {
		t.Error("old checkpoint's file survived the replacement")
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 {
		t.Errorf("leftovers beside the checkpoint: %v", ents)
	}
	// The fallback without an atomic exchange replaces as well.
	saved := exchangeDirs
	exchangeDirs = func(a, b string) error { return os.ErrInvalid }
	err = Save(dir, p1, nil)
	exchangeDirs = saved
	if err != nil {
		t.Fatal(err)
	}
	if q, err = Load(dir, F32); err != nil {
		t.Fatal(err)
	}
	equalParams(t, p1, q, 0)
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Errorf("leftovers after the fallback replacement: %v", ents)
	}
	// A folder that is not a checkpoint is not replaced.
	other := filepath.Join(root, "home")
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "thesis.tex"), []byte("precious"), 0o644)
	if err := Save(other, p1, nil); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("replacing a non-checkpoint folder: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(other, "thesis.tex")); string(b) != "precious" {
		t.Error("non-checkpoint folder was touched")
	}
	// A file in the way, and bad extra names.
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	if err := Save(filepath.Join(root, "file"), p1, nil); err == nil {
		t.Error("saving over a file: no error")
	}
	for _, bad := range []string{"../x", "a/b", "", ModelFile, ".."} {
		if err := Save(filepath.Join(root, "c2"), p1, map[string][]byte{bad: nil}); err == nil {
			t.Errorf("extra file %q accepted", bad)
		}
	}
}

// writeST writes tensors (and a config) into a fresh checkpoint folder.
func writeCkpt(t *testing.T, cfg Config, ts []Tensor) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteSafetensors(filepath.Join(dir, ModelFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	b, err := MarshalConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644)
	return dir
}

func TestLoadValidation(t *testing.T) {
	p := randParams(t, F32, 3)
	good := ParamsTensors(p)
	replace := func(name string, nt Tensor) []Tensor {
		out := append([]Tensor(nil), good...)
		for i := range out {
			if out[i].Name == name {
				out[i] = nt
			}
		}
		return out
	}
	without := func(name string) []Tensor {
		var out []Tensor
		for _, t := range good {
			if t.Name != name {
				out = append(out, t)
			}
		}
		return out
	}
	wte := p.Get("wte.weight")
	nan := append([]float32(nil), p.Get("ln_f.bias").F32...)
	nan[3] = float32(math.NaN())
	cases := []struct {
		name string
		ts   []Tensor
		want string
	}{
		{"wrong shape", replace("h.0.attn.c_attn.weight", F32Tensor("h.0.attn.c_attn.weight", []int{8, 16}, make([]float32, 128))),
			"model.safetensors: tensor h.0.attn.c_attn.weight: shape [8 16], want [8 24]"},
		{"missing", without("h.1.mlp.c_fc.bias"), "missing tensor h.1.mlp.c_fc.bias"},
		{"int dtype", replace("ln_f.weight", I64Tensor("ln_f.weight", []int{8}, make([]int64, 8))), "dtype I64, want a float type"},
		{"unexpected", append(append([]Tensor(nil), good...), F32Tensor("h.2.attn.c_proj.bias", []int{8}, make([]float32, 8))), "unexpected tensor h.2.attn.c_proj.bias"},
		{"buffer of a missing layer", append(append([]Tensor(nil), good...), F32Tensor("h.5.attn.bias", []int{1}, []float32{1})), "unexpected tensor h.5.attn.bias"},
		{"untied head", append(append([]Tensor(nil), good...), F32Tensor("lm_head.weight", wte.Shape, make([]float32, wte.Size()))), "untied"},
		{"nan", replace("ln_f.bias", F32Tensor("ln_f.bias", []int{8}, nan)), "tensor ln_f.bias: 1 non-finite values"},
		{"prefix duplicate", append(append([]Tensor(nil), good...), F32Tensor("transformer.ln_f.bias", []int{8}, make([]float32, 8))), "given twice"},
	}
	for _, c := range cases {
		dir := writeCkpt(t, ckptCfg, c.ts)
		_, err := Load(dir, F32)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), ModelFile) {
			t.Errorf("%s: error %q, want it to contain %q and the file name", c.name, err, c.want)
		}
	}

	// HF layout: "transformer." prefix, attention buffers, tied lm_head in
	// F64 and F16 (wte exactly representable) all load.
	var hf []Tensor
	for _, tt := range good {
		tt.Name = "transformer." + tt.Name
		hf = append(hf, tt)
	}
	hf = append(hf,
		F32Tensor("transformer.h.0.attn.bias", []int{1, 1, 16, 16}, make([]float32, 256)),
		F32Tensor("transformer.h.1.attn.masked_bias", []int{}, []float32{-1e4}),
		F32Tensor("lm_head.weight", wte.Shape, wte.F32))
	q, err := Load(writeCkpt(t, ckptCfg, hf), F64)
	if err != nil {
		t.Fatal(err)
	}
	equalParams(t, p, q, 0)
}

func TestLoadCorruptFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := Save(dir, randParams(t, F32, 4), nil); err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(dir, ModelFile)
	orig, _ := os.ReadFile(mf)
	for _, n := range []int{0, 5, 8, 40, len(orig) / 2, len(orig) - 1} {
		os.WriteFile(mf, orig[:n], 0o644)
		if _, err := Load(dir, F32); err == nil || !strings.Contains(err.Error(), ModelFile) {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
	// Flipped bytes in the header: an error or (if it still parses) a
	// validation error, never a panic.
	for i := 8; i < 200 && i < len(orig); i++ {
		b := append([]byte(nil), orig...)
		b[i] ^= 0x5a
		os.WriteFile(mf, b, 0o644)
		Load(dir, F32)
	}
	os.WriteFile(mf, orig, 0o644)
	if _, err := Load(dir, F32); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, ConfigFile))
	if _, err := Load(dir, F32); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("missing config: %v", err)
	}
}

func TestParseConfig(t *testing.T) {
	// HF GPT-2's own config.json (gpt2, abridged): extra keys are ignored,
	// bkspc_token_id defaults to -1.
	hf := `{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
	  "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
	  "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
	  "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
	  "resid_pdrop": 0.1, "task_specific_params": {"text-generation": {"do_sample": true}},
	  "vocab_size": 50257}`
	cfg, err := ParseConfig([]byte(hf))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{NLayer: 12, NHead: 12, NEmbd: 768, NPositions: 1024, VocabSize: 50257, LayerNormEpsilon: 1e-5, BkspcTokenID: -1, EOSTokenID: 50256}
	if cfg != want {
		t.Errorf("got %+v", cfg)
	}
	// Our own output parses back to the same config.
	b, _ := MarshalConfig(Small)
	if c2, err := ParseConfig(b); err != nil || c2 != Small {
		t.Errorf("round trip: %+v %v", c2, err)
	}
	base := `"n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 4, "vocab_size": 10, "eos_token_id": 1`
	bad := map[string]string{
		`{` + base + `, "activation_function": "relu"}`:                                     "activation_function",
		`{` + base + `, "model_type": "llama"}`:                                             "model_type",
		`{` + base + `, "n_inner": 16}`:                                                     "n_inner",
		`{` + base + `, "tie_word_embeddings": false}`:                                      "tie_word_embeddings",
		`{"n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 4, "eos_token_id": 1}`:     "missing key vocab_size",
		`{` + base + `, "n_head": 3}`:                                                       "n_head",
		`{` + base + `, "bkspc_token_id": 10}`:                                              "bkspc_token_id",
		`{` + base + `, "n_embd": "8"}`:                                                     "invalid JSON",
		`{` + base + `} {}`:                                                                 "trailing",
		`{` + strings.Replace(base, `"eos_token_id": 1`, `"eos_token_id": [1, 2]`, 1) + `}`: "eos_token_id",
	}
	for in, want := range bad {
		if _, err := ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to mention %q", in, err, want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	b, _ := MarshalConfig(Small)
	f.Add(b)
	f.Add([]byte(`{"n_embd": 8, "n_layer": 1, "n_head": 2, "n_ctx": 4, "vocab_size": 10, "eos_token_id": 1, "n_inner": null}`))
	f.Add([]byte(`{"n_embd": 8, "eos_token_id": [1]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err != nil {
			return
		}
		// Anything accepted is a valid config that round-trips.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		out, err := MarshalConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if c2, err := ParseConfig(out); err != nil || c2 != cfg {
			t.Fatalf("round trip: %+v vs %+v (%v)", c2, cfg, err)
		}
	})
}

// TestSaveWithStreams: streamed extra files land beside the model, a name
// given twice is refused, and the aliasing tensor views encode the same
// bytes as copies.
func TestSaveWithStreams(t *testing.T) {
	p := randParams(t, F32, 5)
	dir := filepath.Join(t.TempDir(), "c")
	write := func(w io.Writer) error { _, err := io.WriteString(w, "streamed"); return err }
	if err := SaveWith(dir, p, map[string][]byte{"a.txt": []byte("a")}, map[string]func(io.Writer) error{"s.bin": write}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "s.bin")); err != nil || string(b) != "streamed" {
		t.Fatalf("streamed file: %q %v", b, err)
	}
	if err := SaveWith(filepath.Join(t.TempDir(), "d"), p, map[string][]byte{"x": nil}, map[string]func(io.Writer) error{"x": write}); err == nil {
		t.Fatal("a name given as bytes and as a stream was accepted")
	}
	q := p.List[2]
	if v, c := F32TensorView(q.Name, q.Shape, q.F32), F32Tensor(q.Name, q.Shape, q.F32); !bytes.Equal(v.Data, c.Data) {
		t.Fatal("F32TensorView encodes other bytes than F32Tensor")
	}
	f := []float64{1.5, -2, math.Pi}
	if !bytes.Equal(F64TensorView("f", []int{3}, f).Data, F64Tensor("f", []int{3}, f).Data) {
		t.Fatal("F64TensorView encodes other bytes than F64Tensor")
	}
}
