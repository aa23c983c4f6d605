package gguf

import (
	"smtrain/model/internal/vec"

	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"smtrain/data"
	"smtrain/model"
)

// testModel is a random tiny model with a BPE tokenizer trained on a few
// sentences (so it has merges).
func testModel(t *testing.T) (*model.Params, *data.Tokenizer) {
	t.Helper()
	tok, err := data.BuildTokenizer([]string{"the cat sat on the mat", "the dog sat on the log", "a cat and a dog"}, 300)
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Tiny
	cfg.VocabSize = tok.VocabSize() + 5 // padding rows
	cfg.NPositions = 32
	p, err := model.NewParams(cfg, model.F32, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	return p, tok
}

func TestHalfFromFloat32(t *testing.T) {
	// Every finite half converts to float32 and back to itself (the
	// decoder is model.Tensor's F16 reader).
	buf := make([]byte, 2*65536)
	for h := 0; h < 65536; h++ {
		binary.LittleEndian.PutUint16(buf[2*h:], uint16(h))
	}
	tt := model.Tensor{DType: "F16", Shape: []int{65536}, Data: buf}
	f, err := tt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	for h, x := range f {
		if math.IsNaN(float64(x)) {
			continue
		}
		if got := vec.HalfFromFloat32(x); got != uint16(h) {
			t.Fatalf("half %#04x -> %g -> %#04x", h, x, got)
		}
	}
	// Round to nearest even at midpoints, overflow to Inf, underflow to 0.
	for _, c := range []struct {
		x    float32
		want uint16
	}{
		{1 + 1.0/2048, 0x3c00},             // midpoint between 1 and 1+2^-10: even (1)
		{1 + 3.0/2048, 0x3c02},             // midpoint above 1+2^-10: even (1+2^-9)
		{1 + 1.0/2048 + 1.0/65536, 0x3c01}, // just above the midpoint
		{65520, 0x7c00},                    // rounds past 65504
		{-1e6, 0xfc00},
		{float32(math.Ldexp(1, -25)), 0},         // half the smallest subnormal: ties to 0
		{float32(math.Ldexp(1.5, -25)), 0x0001},  // above it: the smallest subnormal
		{float32(math.Ldexp(3, -25)), 0x0002},    // 1.5 ulp: ties to even (2)
		{float32(math.Ldexp(1, -30)), 0},         // far below
		{float32(math.Ldexp(1023, -24)), 0x03ff}, // largest subnormal
	} {
		if got := vec.HalfFromFloat32(c.x); got != c.want {
			t.Errorf("vec.HalfFromFloat32(%g) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
}

// hfValue returns p's value of HF parameter src at HF row i, column j.
func hfValue(p *model.Params, src string, i, j int) float32 {
	q := p.Get(src)
	return q.F32[i*q.Shape[len(q.Shape)-1]+j]
}

func TestWriteReadBack(t *testing.T) {
	p, tok := testModel(t)
	cfg := p.Cfg
	D := cfg.NEmbd
	for _, typ := range []TensorType{F32, F16} {
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := Write(path, p, tok, Options{Type: typ}); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
			t.Fatalf("%v: %d files in the folder, want only the GGUF file", typ, len(ents))
		}
		f, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]any{
			"general.architecture": "gpt2", "gpt2.block_count": uint32(cfg.NLayer), "gpt2.embedding_length": uint32(D),
			"gpt2.feed_forward_length": uint32(4 * D), "gpt2.attention.head_count": uint32(cfg.NHead),
			"gpt2.context_length": uint32(cfg.NPositions), "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
			"tokenizer.ggml.eos_token_id": uint32(tok.EOSID()), "tokenizer.ggml.bos_token_id": uint32(tok.EOSID()),
			"smtrain.bkspc_token_id": uint32(tok.BkspcID()), "general.file_type": map[TensorType]uint32{F32: 0, F16: 1}[typ],
		} {
			if f.KV[k] != want {
				t.Errorf("%v: %s = %v (%T), want %v", typ, k, f.KV[k], f.KV[k], want)
			}
		}
		toks, types := f.KV["tokenizer.ggml.tokens"].([]any), f.KV["tokenizer.ggml.token_type"].([]any)
		if len(toks) != cfg.VocabSize || len(types) != cfg.VocabSize {
			t.Fatalf("%v: %d tokens, %d types, want %d", typ, len(toks), len(types), cfg.VocabSize)
		}
		for id := 0; id < cfg.VocabSize; id++ {
			want := int32(TokenNormal)
			switch {
			case id >= tok.VocabSize():
				want = TokenUnused
			case tok.Specials().IsSpecial(int32(id)):
				want = TokenControl
			}
			if types[id] != want {
				t.Errorf("%v: token %d (%q) type %v, want %d", typ, id, toks[id], types[id], want)
			}
			if s, ok := tok.Token(int32(id)); ok && want == TokenControl && toks[id] != s {
				t.Errorf("token %d text %q, want %q", id, toks[id], s)
			}
		}
		if toks[tok.BkspcID()] != "<bkspc>" || toks[cfg.VocabSize-1] != "[PAD"+strconv.Itoa(cfg.VocabSize-1)+"]" {
			t.Errorf("bkspc %q, last %q", toks[tok.BkspcID()], toks[cfg.VocabSize-1])
		}
		// " cat" is one BPE token, stored in byte-level form.
		if ids := tok.EncodeOrdinary(" cat"); len(ids) != 1 || toks[ids[0]] != "Ġcat" {
			t.Errorf("' cat' -> %v (%q), want one token Ġcat", ids, toks[ids[0]])
		}
		if m := f.KV["tokenizer.ggml.merges"].([]any); len(m) != tok.NumMerges() || len(m) == 0 || !strings.Contains(m[0].(string), " ") {
			t.Errorf("merges: %d (first %v), want %d", len(m), m[0], tok.NumMerges())
		}
		if len(f.Tensors) != 5+12*cfg.NLayer {
			t.Fatalf("%d tensors", len(f.Tensors))
		}
		tol := 0.0
		if typ == F16 {
			tol = 1.0 / 1024 // relative, half's 11-bit significand (plus subnormals)
		}
		check := func(name, src string, outer, inner int, transposed bool) {
			tt, ok := f.Tensor(name)
			if !ok {
				t.Fatalf("tensor %s missing", name)
			}
			if len(tt.Shape) != 2 || tt.Shape[0] != outer || tt.Shape[1] != inner {
				t.Fatalf("%s shape %v, want [%d %d]", name, tt.Shape, outer, inner)
			}
			x, _ := tt.Float32s()
			for o := 0; o < outer; o++ {
				for i := 0; i < inner; i++ {
					var w float32
					if transposed {
						w = hfValue(p, src, i, o)
					} else {
						w = hfValue(p, src, o, i)
					}
					if d := math.Abs(float64(x[o*inner+i] - w)); d > tol*math.Abs(float64(w))+1e-7 {
						t.Fatalf("%v %s[%d,%d] = %g, want %g", typ, name, o, i, x[o*inner+i], w)
					}
				}
			}
		}
		check("token_embd.weight", "wte.weight", cfg.VocabSize, D, false)
		check("output.weight", "wte.weight", cfg.VocabSize, D, false)
		check("position_embd.weight", "wpe.weight", cfg.NPositions, D, false)
		check("blk.1.attn_qkv.weight", "h.1.attn.c_attn.weight", 3*D, D, true)
		check("blk.0.ffn_down.weight", "h.0.mlp.c_proj.weight", D, 4*D, true)
		check("blk.0.ffn_up.weight", "h.0.mlp.c_fc.weight", 4*D, D, true)
		for _, ti := range f.Tensors {
			if ti.Offset%Alignment != 0 {
				t.Errorf("%s at offset %d", ti.Name, ti.Offset)
			}
			if len(ti.Dims) == 1 && ti.Type != F32 {
				t.Errorf("%s (1-D) stored as %v", ti.Name, ti.Type)
			}
			if len(ti.Dims) == 2 && ti.Type != typ {
				t.Errorf("%s stored as %v, want %v", ti.Name, ti.Type, typ)
			}
		}
		b, _ := f.Tensor("blk.1.attn_qkv.bias")
		x, _ := b.Float32s()
		if len(b.Shape) != 1 || b.Shape[0] != 3*D || x[5] != hfValue(p, "h.1.attn.c_attn.bias", 0, 5) {
			t.Errorf("attn_qkv.bias shape %v", b.Shape)
		}
	}
}

func TestRefusals(t *testing.T) {
	p, tok := testModel(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	scfg := p.Cfg
	scfg.VocabSize = tok.VocabSize() - 1
	small, _ := model.NewParams(scfg, model.F32, rand.New(rand.NewPCG(1, 2)))
	eos := *p
	eos.Cfg.EOSTokenID = 3
	bk := *p
	bk.Cfg.BkspcTokenID = 4
	big, _ := model.NewParams(p.Cfg, model.F32, rand.New(rand.NewPCG(1, 2)))
	big.Get("h.0.mlp.c_fc.weight").F32[7] = 7e4
	for _, c := range []struct {
		name string
		p    *model.Params
		tok  *data.Tokenizer
		typ  TensorType
		want string
	}{
		{"vocab", small, tok, F32, "tokenizer has " + strconv.Itoa(tok.VocabSize()) + " tokens but the model only"},
		{"eos", &eos, tok, F32, "eos_token_id is 3"},
		{"bkspc", &bk, tok, F32, "bkspc_token_id is 4"},
		{"f16 range", big, tok, F16, "h.0.mlp.c_fc.weight: value 7 (70000) is beyond f16's range"},
		{"type", p, tok, TensorType(8), "tensor type ggml type 8 not supported"},
	} {
		err := Write(path, c.p, c.tok, Options{Type: c.typ})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// A byte-only tokenizer (no merges) is expressible: an empty array.
	bt := data.ByteTokenizer()
	bcfg := p.Cfg
	bcfg.VocabSize = bt.VocabSize()
	bp, _ := model.NewParams(bcfg, model.F32, rand.New(rand.NewPCG(1, 2)))
	if err := Write(filepath.Join(dir, "bytes.gguf"), bp, bt, Options{}); err != nil {
		t.Errorf("byte tokenizer: %v", err)
	} else if f, err := ReadFile(filepath.Join(dir, "bytes.gguf")); err != nil || len(f.KV["tokenizer.ggml.merges"].([]any)) != 0 {
		t.Errorf("byte tokenizer read back: %v", err)
	}
	// The f16-range model is fine as f32.
	if err := Write(filepath.Join(dir, "ok.gguf"), big, tok, Options{Type: F32}); err != nil {
		t.Errorf("f32 export of a large value: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("a refused export changed the existing file")
	}
	// A NaN is refused (p.Check or the exporter, naming the parameter).
	big.Get("h.1.ln_2.bias").F32[0] = float32(math.NaN())
	if err := Write(path, big, tok, Options{}); err == nil || !strings.Contains(err.Error(), "h.1.ln_2.bias") {
		t.Errorf("NaN: error %v, want one naming h.1.ln_2.bias", err)
	}
}

func TestParseHostile(t *testing.T) {
	p, tok := testModel(t)
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := Write(path, p, tok, Options{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	// Every truncation is an error, never a panic.
	for _, n := range []int{0, 3, 8, 24, 100, 5000, len(b) / 2, len(b) - 1} {
		if _, err := Parse(b[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	bad := append([]byte(nil), b...)
	binary.LittleEndian.PutUint64(bad[8:], 1<<50) // tensor count
	if _, err := Parse(bad); err == nil {
		t.Error("huge tensor count: no error")
	}
	copy(bad, b)
	bad[0] = 'X'
	if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "not a GGUF file") {
		t.Errorf("bad magic: %v", err)
	}
}
