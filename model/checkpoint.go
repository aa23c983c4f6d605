package model

// Checkpoint folders in HF GPT-2 layout: model.safetensors (HF tensor names
// and shapes, tied LM head omitted, metadata format=pt) and config.json
// (GPT-2 keys plus bkspc_token_id), plus any extra files (tokenizer.json,
// optimizer state, ...). A folder is written to a temporary sibling and
// renamed into place, so a reader sees the old or the new checkpoint, never
// a mixture.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"smtrain/internal/atomicfile"
)

// File names inside a checkpoint folder.
const (
	ModelFile  = "model.safetensors"
	ConfigFile = "config.json"
)

// hfConfig is the config.json written by Save: HF GPT2Config keys plus
// smtrain's bkspc_token_id.
type hfConfig struct {
	ModelType          string   `json:"model_type"`
	Architectures      []string `json:"architectures"`
	ActivationFunction string   `json:"activation_function"`
	NEmbd              int      `json:"n_embd"`
	NLayer             int      `json:"n_layer"`
	NHead              int      `json:"n_head"`
	NPositions         int      `json:"n_positions"`
	NCtx               int      `json:"n_ctx"`
	NInner             *int     `json:"n_inner"`
	VocabSize          int      `json:"vocab_size"`
	LayerNormEpsilon   float64  `json:"layer_norm_epsilon"`
	TieWordEmbeddings  bool     `json:"tie_word_embeddings"`
	ScaleAttnWeights   bool     `json:"scale_attn_weights"`
	BkspcTokenID       int      `json:"bkspc_token_id"`
	EOSTokenID         int      `json:"eos_token_id"`
}

// MarshalConfig returns the config.json content for cfg.
func MarshalConfig(cfg Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model config: %w", err)
	}
	h := hfConfig{
		ModelType: "gpt2", Architectures: []string{"GPT2LMHeadModel"}, ActivationFunction: "gelu_new",
		NEmbd: cfg.NEmbd, NLayer: cfg.NLayer, NHead: cfg.NHead, NPositions: cfg.NPositions, NCtx: cfg.NPositions,
		VocabSize: cfg.VocabSize, LayerNormEpsilon: cfg.LayerNormEpsilon,
		TieWordEmbeddings: true, ScaleAttnWeights: true,
		BkspcTokenID: cfg.BkspcTokenID, EOSTokenID: cfg.EOSTokenID,
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// readConfig is what ParseConfig accepts: the keys that define the maths
// (pointers, to tell absent from zero). Other HF keys (dropout rates,
// task parameters, ...) are ignored.
type readConfig struct {
	ModelType                  *string         `json:"model_type"`
	ActivationFunction         *string         `json:"activation_function"`
	NEmbd                      *int            `json:"n_embd"`
	NLayer                     *int            `json:"n_layer"`
	NHead                      *int            `json:"n_head"`
	NPositions                 *int            `json:"n_positions"`
	NCtx                       *int            `json:"n_ctx"`
	NInner                     *int            `json:"n_inner"`
	VocabSize                  *int            `json:"vocab_size"`
	LayerNormEpsilon           *float64        `json:"layer_norm_epsilon"`
	TieWordEmbeddings          *bool           `json:"tie_word_embeddings"`
	ScaleAttnWeights           *bool           `json:"scale_attn_weights"`
	ScaleAttnByInverseLayerIdx *bool           `json:"scale_attn_by_inverse_layer_idx"`
	AddCrossAttention          *bool           `json:"add_cross_attention"`
	BkspcTokenID               *int            `json:"bkspc_token_id"`
	EOSTokenID                 json.RawMessage `json:"eos_token_id"`
}

// ParseConfig parses a GPT-2 config.json (smtrain's or HF's). Keys that
// change the architecture must describe the model smtrain implements
// (gpt2, tanh GELU, n_inner 4·n_embd, tied embeddings, attention scaled by
// 1/sqrt(head_dim)); unknown keys are ignored. A missing bkspc_token_id
// means -1 (no backspace token); a missing layer_norm_epsilon means 1e-5.
func ParseConfig(b []byte) (Config, error) {
	var r readConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return Config{}, fmt.Errorf("invalid JSON: %v", err)
	}
	if dec.More() {
		return Config{}, errors.New("trailing data after the JSON object")
	}
	if r.ModelType != nil && *r.ModelType != "gpt2" {
		return Config{}, fmt.Errorf("model_type %q, want \"gpt2\"", *r.ModelType)
	}
	if r.ActivationFunction != nil {
		switch *r.ActivationFunction {
		case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		default:
			return Config{}, fmt.Errorf("activation_function %q not supported (smtrain uses the tanh GELU, \"gelu_new\")", *r.ActivationFunction)
		}
	}
	need := func(name string, v *int) (int, error) {
		if v == nil {
			return 0, fmt.Errorf("missing key %s", name)
		}
		return *v, nil
	}
	var cfg Config
	var err error
	if cfg.NEmbd, err = need("n_embd", r.NEmbd); err != nil {
		return Config{}, err
	}
	if cfg.NLayer, err = need("n_layer", r.NLayer); err != nil {
		return Config{}, err
	}
	if cfg.NHead, err = need("n_head", r.NHead); err != nil {
		return Config{}, err
	}
	if cfg.VocabSize, err = need("vocab_size", r.VocabSize); err != nil {
		return Config{}, err
	}
	switch {
	case r.NPositions != nil:
		cfg.NPositions = *r.NPositions
	case r.NCtx != nil:
		cfg.NPositions = *r.NCtx
	default:
		return Config{}, errors.New("missing key n_positions")
	}
	if r.NInner != nil && *r.NInner != 4*cfg.NEmbd {
		return Config{}, fmt.Errorf("n_inner %d not supported (must be null or 4*n_embd = %d)", *r.NInner, 4*cfg.NEmbd)
	}
	if r.TieWordEmbeddings != nil && !*r.TieWordEmbeddings {
		return Config{}, errors.New("tie_word_embeddings false not supported (the LM head is tied to wte)")
	}
	if r.ScaleAttnWeights != nil && !*r.ScaleAttnWeights {
		return Config{}, errors.New("scale_attn_weights false not supported")
	}
	if r.ScaleAttnByInverseLayerIdx != nil && *r.ScaleAttnByInverseLayerIdx {
		return Config{}, errors.New("scale_attn_by_inverse_layer_idx true not supported")
	}
	if r.AddCrossAttention != nil && *r.AddCrossAttention {
		return Config{}, errors.New("add_cross_attention true not supported")
	}
	cfg.LayerNormEpsilon = 1e-5
	if r.LayerNormEpsilon != nil {
		cfg.LayerNormEpsilon = *r.LayerNormEpsilon
	}
	cfg.BkspcTokenID = -1
	if r.BkspcTokenID != nil {
		cfg.BkspcTokenID = *r.BkspcTokenID
	}
	if len(r.EOSTokenID) == 0 || string(r.EOSTokenID) == "null" {
		return Config{}, errors.New("missing key eos_token_id")
	}
	eos, err := strconv.Atoi(string(r.EOSTokenID))
	if err != nil {
		return Config{}, fmt.Errorf("eos_token_id %s: want one integer", r.EOSTokenID)
	}
	cfg.EOSTokenID = eos
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ReadConfig reads and parses a config.json file; errors name the file.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParamsTensors returns p's parameters as safetensors tensors (HF names,
// p's dtype), in List order, without the tied LM head.
//
// The tensors' Data alias p's values (F32TensorView): encode them before
// p changes, and do not modify them.
func ParamsTensors(p *Params) []Tensor {
	ts := make([]Tensor, len(p.List))
	for i, q := range p.List {
		if q.F32 != nil {
			ts[i] = F32TensorView(q.Name, q.Shape, q.F32)
		} else {
			ts[i] = F64TensorView(q.Name, q.Shape, q.F64)
		}
	}
	return ts
}

// hfBuffer matches the non-parameter buffers HF GPT-2 checkpoints may carry.
var hfBuffer = regexp.MustCompile(`^h\.(\d+)\.attn\.(bias|masked_bias)$`)

// ParamsFromSafetensors builds cfg's parameters (of type dt) from the
// tensors of st. Every parameter must be present with exactly its shape and
// a float dtype (F16, BF16, F32, F64; converted to dt) and finite values.
// Names may carry HF's "transformer." prefix. Besides the parameters only
// HF GPT-2's attention buffers (h.N.attn.bias, h.N.attn.masked_bias) and an
// lm_head.weight equal to wte.weight are allowed.
func ParamsFromSafetensors(st *Safetensors, cfg Config, dt DType) (*Params, error) {
	p, err := ZeroParams(cfg, dt)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Tensor{}
	for i := range st.Tensors {
		t := &st.Tensors[i]
		name := strings.TrimPrefix(t.Name, "transformer.")
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("tensor %s given twice (with and without the \"transformer.\" prefix)", name)
		}
		byName[name] = t
	}
	used := map[string]bool{}
	for _, q := range p.List {
		t := byName[q.Name]
		if t == nil {
			return nil, fmt.Errorf("missing tensor %s (shape %v)", q.Name, q.Shape)
		}
		used[q.Name] = true
		if !sameShape(t.Shape, q.Shape) {
			return nil, fmt.Errorf("tensor %s: shape %v, want %v", t.Name, t.Shape, q.Shape)
		}
		if !t.IsFloat() {
			return nil, fmt.Errorf("tensor %s: dtype %s, want a float type (F32, F64, F16, BF16)", t.Name, t.DType)
		}
		vals, err := t.Float64s()
		if err != nil {
			return nil, err
		}
		bad := 0
		for j, v := range vals {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				bad++
			}
			if q.F32 != nil {
				q.F32[j] = float32(v)
			} else {
				q.F64[j] = v
			}
		}
		if bad > 0 {
			return nil, fmt.Errorf("tensor %s: %d non-finite values", t.Name, bad)
		}
	}
	for name, t := range byName {
		if used[name] {
			continue
		}
		if m := hfBuffer.FindStringSubmatch(name); m != nil {
			if l, err := strconv.Atoi(m[1]); err == nil && l < cfg.NLayer {
				continue
			}
		}
		if name == "lm_head.weight" {
			if err := checkTied(t, byName["wte.weight"]); err != nil {
				return nil, err
			}
			continue
		}
		return nil, fmt.Errorf("unexpected tensor %s %v (not a parameter of config n_layer=%d)", t.Name, t.Shape, cfg.NLayer)
	}
	return p, nil
}

// checkTied verifies that lm_head equals wte (smtrain ties the LM head).
func checkTied(head, wte *Tensor) error {
	if !sameShape(head.Shape, wte.Shape) || !head.IsFloat() {
		return fmt.Errorf("tensor %s: %s %v, want the tied LM head equal to wte.weight %v", head.Name, head.DType, head.Shape, wte.Shape)
	}
	a, err := head.Float64s()
	if err != nil {
		return err
	}
	b, err := wte.Float64s()
	if err != nil {
		return err
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Errorf("tensor %s differs from wte.weight at element %d (untied LM heads are not supported)", head.Name, i)
		}
	}
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// LoadSafetensorsParams loads cfg's parameters from a weights file (an HF
// GPT-2 model.safetensors or one written by Save). Errors name the file.
func LoadSafetensorsParams(path string, cfg Config, dt DType) (*Params, error) {
	st, err := ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	p, err := ParamsFromSafetensors(st, cfg, dt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Load reads the checkpoint folder dir (config.json + model.safetensors)
// into parameters of type dt, validating the configuration and every tensor.
func Load(dir string, dt DType) (*Params, error) {
	cfg, err := ReadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	return LoadSafetensorsParams(filepath.Join(dir, ModelFile), cfg, dt)
}

// Save writes p to the checkpoint folder dir: model.safetensors,
// config.json and the extra files (name -> content, e.g. tokenizer.json).
// The folder is built as a temporary sibling and renamed into place; an
// existing checkpoint folder at dir is replaced (atomically where the OS
// can exchange two directories, Linux). An existing dir that is not a
// checkpoint folder (non-empty without config.json or model.safetensors) is
// not touched and is an error.
func Save(dir string, p *Params, extra map[string][]byte) (err error) {
	return SaveWith(dir, p, extra, nil)
}

// SaveWith is Save with more files written by functions, streamed into
// their files (a large optimizer state needs no in-memory encoding).
func SaveWith(dir string, p *Params, extra map[string][]byte, streams map[string]func(io.Writer) error) (err error) {
	if err := p.Check(); err != nil {
		return err
	}
	names := make([]string, 0, len(extra)+len(streams))
	for name := range extra {
		names = append(names, name)
	}
	for name := range streams {
		if _, dup := extra[name]; dup {
			return fmt.Errorf("checkpoint %s: extra file %q given twice", dir, name)
		}
		names = append(names, name)
	}
	for _, name := range names {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || name == ModelFile || name == ConfigFile {
			return fmt.Errorf("checkpoint %s: invalid extra file name %q", dir, name)
		}
	}
	cfgJSON, err := MarshalConfig(p.Cfg)
	if err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	if err := checkReplaceable(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// the weights are encoded straight into the file (no in-memory copy)
	if err = atomicfile.Write(filepath.Join(tmp, ModelFile), func(w io.Writer) error {
		return EncodeSafetensors(w, ParamsTensors(p), map[string]string{"format": "pt"})
	}); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	files := map[string][]byte{ConfigFile: cfgJSON}
	for k, v := range extra {
		files[k] = v
	}
	for name, data := range files {
		if err = atomicfile.WriteFile(filepath.Join(tmp, name), data); err != nil {
			return err
		}
	}
	for name, write := range streams {
		if err = atomicfile.Write(filepath.Join(tmp, name), write); err != nil {
			return fmt.Errorf("checkpoint %s: %s: %w", dir, name, err)
		}
	}
	atomicfile.SyncDir(tmp)
	if _, statErr := os.Lstat(dir); statErr != nil {
		if err = os.Rename(tmp, dir); err != nil {
			return err
		}
		atomicfile.SyncDir(parent)
		return nil
	}
	if err = replaceDir(tmp, dir); err != nil {
		return err
	}
	atomicfile.SyncDir(parent)
	return nil
}

// checkReplaceable refuses to overwrite something that is not a checkpoint.
func checkReplaceable(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("checkpoint %s: exists and is not a directory", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	for _, e := range ents {
		if e.Name() == ModelFile || e.Name() == ConfigFile {
			return nil
		}
	}
	return fmt.Errorf("checkpoint %s: refusing to replace a non-empty folder that is not a checkpoint (no %s or %s)", dir, ConfigFile, ModelFile)
}

// replaceDir puts the folder tmp at dir, which exists, and removes the old
// content. It exchanges the two atomically where supported, else it moves
// the old folder aside first.
func replaceDir(tmp, dir string) error {
	if err := exchangeDirs(tmp, dir); err == nil {
		return os.RemoveAll(tmp) // tmp now holds the old checkpoint
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(old, dir) // put the old one back
		return err
	}
	return os.RemoveAll(old)
}
