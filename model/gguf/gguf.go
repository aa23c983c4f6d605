// Package gguf writes smtrain checkpoints as GGUF files for llama.cpp's
// GPT-2 architecture ("gpt2"), and reads GGUF files back for checks.
//
// The layout follows llama.cpp (gguf-py/gguf/constants.py, gguf_writer.py
// and the GPT-2 loader in src/llama-model.cpp): the header (magic "GGUF",
// version 3, tensor and key/value counts), the key/value metadata, the
// tensor infos (name, dims innermost first, type, offset) and the tensor
// data, each tensor starting at a multiple of the alignment (32).
//
// Tensor names and layouts are llama.cpp's: token_embd, position_embd,
// blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up, ffn_down},
// output_norm and output (the tied LM head written out, as llama.cpp's own
// converter does). HF Conv1D weights ([in, out]) are transposed to
// llama.cpp's [out rows of in]. With F16, the matrices are stored as
// binary16 and the norms and biases stay F32 (llama.cpp's converter does
// the same).
//
// The tokenizer is embedded as llama.cpp's "gpt2" byte-level BPE tokenizer
// (tokens in byte-level form, merges in rank order, pre-tokenizer "gpt-2")
// with smtrain's special tokens (<pad>, <eos>, <bkspc>, role markers,
// <|end|>) marked as control tokens, and <eos> as BOS and EOS.
//
// <bkspc> is an ordinary (control) token to llama.cpp: choosing it appends
// it to the context like any other token; nothing pops the KV cache. A
// llama.cpp user must therefore ban it (a logit bias of -inf, e.g.
// node-llama-cpp's TokenBias "never", llama-cli's --logit-bias ID-inf) to
// get smtrain's greedy decode with <bkspc> banned; sampling it in llama.cpp
// does not undo the previous token the way smtrain's decoder does, and the
// continuation then conditions on a literal <bkspc> the policy was never
// trained to read past. The id is recorded in smtrain.bkspc_token_id.
package gguf

import (
	"smtrain/model/internal/vec"

	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"smtrain/data"
	"smtrain/internal/atomicfile"
	"smtrain/model"
)

// Format constants (gguf-py/gguf/constants.py).
const (
	Magic     = 0x46554747 // "GGUF" little-endian
	Version   = 3
	Alignment = 32
)

// Value types of key/value metadata (GGUFValueType).
const (
	typeUint8   = 0
	typeInt8    = 1
	typeUint16  = 2
	typeInt16   = 3
	typeUint32  = 4
	typeInt32   = 5
	typeFloat32 = 6
	typeBool    = 7
	typeString  = 8
	typeArray   = 9
	typeUint64  = 10
	typeInt64   = 11
	typeFloat64 = 12
)

// TensorType is a ggml tensor type; only F32 and F16 are written.
type TensorType uint32

// ggml tensor types (GGMLQuantizationType).
const (
	F32 TensorType = 0
	F16 TensorType = 1
)

// String names the type like ggml does.
func (t TensorType) String() string {
	switch t {
	case F32:
		return "f32"
	case F16:
		return "f16"
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// size is the bytes per element of t.
func (t TensorType) size() int {
	if t == F16 {
		return 2
	}
	return 4
}

// ParseTensorType maps "f32"/"f16" to a type.
func ParseTensorType(s string) (TensorType, error) {
	switch s {
	case "f32", "F32":
		return F32, nil
	case "f16", "F16":
		return F16, nil
	}
	return 0, fmt.Errorf("unknown tensor type %q (want f32 or f16)", s)
}

// File types (general.file_type, llama_ftype).
const (
	fileTypeAllF32    = 0
	fileTypeMostlyF16 = 1
)

// llama.cpp token types (tokenizer.ggml.token_type).
const (
	TokenNormal      = 1
	TokenUnknown     = 2
	TokenControl     = 3
	TokenUserDefined = 4
	TokenUnused      = 5
	TokenByte        = 6
)

// Options choose what Write stores.
type Options struct {
	// Type is the type of the weight matrices (F32 or F16); norms and
	// biases are always F32.
	Type TensorType
	// Name is general.name (default "smtrain-gpt2").
	Name string
}

// tensor is one tensor to write: llama.cpp name, ggml dims (innermost
// first), type and the float32 values in row-major order of the reversed
// dims.
type tensor struct {
	name string
	dims []uint64
	typ  TensorType
	data []float32
}

func (t *tensor) nbytes() uint64 { return uint64(len(t.data) * t.typ.size()) }

// kv is one metadata entry: its key, value type and value.
type kv struct {
	key string
	typ uint32
	val any // uint32, float32, bool, string, []string, []int32
}

// Encode writes p and tok as a GGUF file to w. It returns an error naming
// what cannot be expressed (vocabulary, special tokens, values beyond F16's
// range) before writing anything.
func Encode(w io.Writer, p *model.Params, tok *data.Tokenizer, opt Options) error {
	kvs, ts, err := build(p, tok, opt)
	if err != nil {
		return err
	}
	return encode(w, kvs, ts)
}

// Write writes p and tok as a GGUF file at path atomically (a temporary
// file in the same folder, synced, then renamed over path).
func Write(path string, p *model.Params, tok *data.Tokenizer, opt Options) error {
	kvs, ts, err := build(p, tok, opt)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error { return encode(w, kvs, ts) })
}

// build checks p and tok and lays out the metadata and tensors.
func build(p *model.Params, tok *data.Tokenizer, opt Options) ([]kv, []tensor, error) {
	if p == nil || tok == nil {
		return nil, nil, errors.New("gguf: no model or tokenizer")
	}
	if opt.Type != F32 && opt.Type != F16 {
		return nil, nil, fmt.Errorf("gguf: tensor type %v not supported (f32 or f16)", opt.Type)
	}
	cfg := p.Cfg
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("gguf: model config: %w", err)
	}
	if err := p.Check(); err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	v, err := vocabOf(tok, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	ts, err := tensorsOf(p, opt.Type)
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	name := opt.Name
	if name == "" {
		name = "smtrain-gpt2"
	}
	ftype := uint32(fileTypeAllF32)
	if opt.Type == F16 {
		ftype = fileTypeMostlyF16
	}
	u32 := func(k string, x int) kv { return kv{k, typeUint32, uint32(x)} }
	kvs := []kv{
		{"general.architecture", typeString, "gpt2"},
		{"general.name", typeString, name},
		u32("general.file_type", int(ftype)),
		u32("general.alignment", Alignment),
		u32("gpt2.context_length", cfg.NPositions),
		u32("gpt2.embedding_length", cfg.NEmbd),
		u32("gpt2.feed_forward_length", 4*cfg.NEmbd),
		u32("gpt2.block_count", cfg.NLayer),
		u32("gpt2.attention.head_count", cfg.NHead),
		{"gpt2.attention.layer_norm_epsilon", typeFloat32, float32(cfg.LayerNormEpsilon)},
		{"tokenizer.ggml.model", typeString, "gpt2"},
		{"tokenizer.ggml.pre", typeString, "gpt-2"},
		{"tokenizer.ggml.tokens", typeArray, v.tokens},
		{"tokenizer.ggml.token_type", typeArray, v.types},
		{"tokenizer.ggml.merges", typeArray, v.merges},
		u32("tokenizer.ggml.bos_token_id", int(v.sp.EOS)),
		u32("tokenizer.ggml.eos_token_id", int(v.sp.EOS)),
		u32("tokenizer.ggml.padding_token_id", int(v.sp.Pad)),
		{"tokenizer.ggml.add_bos_token", typeBool, false},
		{"tokenizer.ggml.add_eos_token", typeBool, false},
	}
	if v.sp.Bkspc >= 0 {
		kvs = append(kvs, u32("smtrain.bkspc_token_id", int(v.sp.Bkspc)))
	}
	return kvs, ts, nil
}

// tensorsOf maps p's parameters to llama.cpp's GPT-2 tensors.
func tensorsOf(p *model.Params, typ TensorType) ([]tensor, error) {
	cfg := p.Cfg
	D, V, P, F := cfg.NEmbd, cfg.VocabSize, cfg.NPositions, 4*cfg.NEmbd
	get := func(name string) ([]float32, error) {
		q := p.Get(name)
		if q == nil {
			return nil, fmt.Errorf("parameter %s missing", name)
		}
		if q.F32 != nil {
			return q.F32, nil
		}
		out := make([]float32, len(q.F64))
		for i, x := range q.F64 {
			out[i] = float32(x)
		}
		return out, nil
	}
	var ts []tensor
	var err error
	// add appends a tensor from HF parameter src; rows x cols are the HF
	// shape, transpose turns a Conv1D [in, out] weight into [out][in].
	add := func(name, src string, rows, cols int, transpose bool) {
		if err != nil {
			return
		}
		var x []float32
		if x, err = get(src); err != nil {
			return
		}
		if len(x) != rows*cols {
			err = fmt.Errorf("parameter %s has %d values, want %d x %d", src, len(x), rows, cols)
			return
		}
		t := tensor{name: name, typ: F32}
		if rows > 1 {
			t.typ = typ
		}
		if err = checkValues(x, t.typ, src); err != nil {
			return
		}
		switch {
		case rows == 1:
			t.dims = []uint64{uint64(cols)}
			t.data = x
		case transpose:
			t.dims = []uint64{uint64(rows), uint64(cols)}
			t.data = make([]float32, len(x))
			for i := 0; i < rows; i++ {
				for j := 0; j < cols; j++ {
					t.data[j*rows+i] = x[i*cols+j]
				}
			}
		default:
			t.dims = []uint64{uint64(cols), uint64(rows)}
			t.data = x
		}
		ts = append(ts, t)
	}
	add("token_embd.weight", "wte.weight", V, D, false)
	add("position_embd.weight", "wpe.weight", P, D, false)
	add("output_norm.weight", "ln_f.weight", 1, D, false)
	add("output_norm.bias", "ln_f.bias", 1, D, false)
	add("output.weight", "wte.weight", V, D, false)
	for l := 0; l < cfg.NLayer; l++ {
		b, h := fmt.Sprintf("blk.%d.", l), fmt.Sprintf("h.%d.", l)
		add(b+"attn_norm.weight", h+"ln_1.weight", 1, D, false)
		add(b+"attn_norm.bias", h+"ln_1.bias", 1, D, false)
		add(b+"attn_qkv.weight", h+"attn.c_attn.weight", D, 3*D, true)
		add(b+"attn_qkv.bias", h+"attn.c_attn.bias", 1, 3*D, false)
		add(b+"attn_output.weight", h+"attn.c_proj.weight", D, D, true)
		add(b+"attn_output.bias", h+"attn.c_proj.bias", 1, D, false)
		add(b+"ffn_norm.weight", h+"ln_2.weight", 1, D, false)
		add(b+"ffn_norm.bias", h+"ln_2.bias", 1, D, false)
		add(b+"ffn_up.weight", h+"mlp.c_fc.weight", D, F, true)
		add(b+"ffn_up.bias", h+"mlp.c_fc.bias", 1, F, false)
		add(b+"ffn_down.weight", h+"mlp.c_proj.weight", F, D, true)
		add(b+"ffn_down.bias", h+"mlp.c_proj.bias", 1, D, false)
	}
	return ts, err
}

// checkValues refuses non-finite values of parameter src and, for F16,
// values beyond its range (they would become infinities in the file);
// the index is src's (HF layout).
func checkValues(v []float32, typ TensorType, src string) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("parameter %s: value %d is %v", src, i, x)
		}
		if typ == F16 && math.Abs(float64(x)) > maxHalf {
			return fmt.Errorf("parameter %s: value %d (%g) is beyond f16's range (±%g); export with -type f32", src, i, x, maxHalf)
		}
	}
	return nil
}

// encode writes the header, metadata, tensor infos and aligned data.
func encode(w io.Writer, kvs []kv, ts []tensor) error {
	e := &enc{w: w}
	e.u32(Magic)
	e.u32(Version)
	e.u64(uint64(len(ts)))
	e.u64(uint64(len(kvs)))
	for _, k := range kvs {
		e.str(k.key)
		e.u32(k.typ)
		e.value(k.typ, k.val)
	}
	var off uint64
	for _, t := range ts {
		e.str(t.name)
		e.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			e.u64(d)
		}
		e.u32(uint32(t.typ))
		e.u64(off)
		off = pad(off+t.nbytes(), Alignment)
	}
	e.zeros(pad(e.n, Alignment) - e.n)
	start := e.n
	for _, t := range ts {
		e.zeros(pad(e.n-start, Alignment) - (e.n - start))
		e.tensorData(&t)
	}
	return e.err
}

// pad rounds x up to a multiple of n.
func pad(x, n uint64) uint64 { return (x + n - 1) / n * n }

// enc writes little-endian values and remembers the first error.
type enc struct {
	w   io.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *enc) write(b []byte) {
	if e.err != nil {
		return
	}
	var k int
	k, e.err = e.w.Write(b)
	e.n += uint64(k)
}

func (e *enc) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], x)
	e.write(e.buf[:4])
}

func (e *enc) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], x)
	e.write(e.buf[:])
}

func (e *enc) str(s string) {
	e.u64(uint64(len(s)))
	e.write([]byte(s))
}

func (e *enc) zeros(n uint64) {
	if n > 0 {
		e.write(make([]byte, n))
	}
}

// value writes a metadata value of type typ (arrays carry their element
// type and count).
func (e *enc) value(typ uint32, v any) {
	switch x := v.(type) {
	case uint32:
		e.u32(x)
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		e.write([]byte{b})
	case string:
		e.str(x)
	case []string:
		e.u32(typeString)
		e.u64(uint64(len(x)))
		for _, s := range x {
			e.str(s)
		}
	case []int32:
		e.u32(typeInt32)
		e.u64(uint64(len(x)))
		for _, i := range x {
			e.u32(uint32(i))
		}
	default:
		if e.err == nil {
			e.err = fmt.Errorf("gguf: value of type %T not supported", v)
		}
	}
}

// tensorData writes t's values as t.typ in chunks.
func (e *enc) tensorData(t *tensor) {
	const chunk = 1 << 14
	b := make([]byte, 0, 4*chunk)
	for i := 0; i < len(t.data); i += chunk {
		b = b[:0]
		for _, x := range t.data[i:min(i+chunk, len(t.data))] {
			if t.typ == F16 {
				b = binary.LittleEndian.AppendUint16(b, vec.HalfFromFloat32(x))
			} else {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
			}
		}
		e.write(b)
	}
}
