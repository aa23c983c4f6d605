package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// DType is the floating-point type of a model's parameters and activations.
type DType int

// The supported parameter types: float32 for training and decoding,
// float64 for gradient checks.
const (
	F32 DType = iota
	F64
)

// String names the type like safetensors does.
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F64:
		return "F64"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Param is one named parameter tensor in HF GPT-2 layout. Exactly one of
// F32 and F64 is non-nil, holding the row-major data of Shape.
type Param struct {
	Name  string
	Shape []int
	F32   []float32
	F64   []float64
}

// Size is the number of elements of p.
func (p *Param) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Params is a GPT-2 model's parameters in HF GPT-2 order (see ParamNames).
type Params struct {
	Cfg   Config
	DType DType
	List  []*Param
	index map[string]int
	grads *gradStore // parameter gradients of p's training graphs
}

// ParamSpec is the name and shape of one parameter.
type ParamSpec struct {
	Name  string
	Shape []int
}

// ParamSpecs lists the parameter names and shapes of cfg in HF GPT-2 order:
// wte, wpe, then per layer ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc,
// mlp.c_proj (weight before bias), then ln_f. Linear weights use HF's Conv1D
// layout [in, out] (y = x @ W + b); the LM head is tied to wte.
func ParamSpecs(cfg Config) []ParamSpec {
	D, V, P := cfg.NEmbd, cfg.VocabSize, cfg.NPositions
	s := []ParamSpec{{"wte.weight", []int{V, D}}, {"wpe.weight", []int{P, D}}}
	for l := 0; l < cfg.NLayer; l++ {
		h := fmt.Sprintf("h.%d.", l)
		s = append(s,
			ParamSpec{h + "ln_1.weight", []int{D}},
			ParamSpec{h + "ln_1.bias", []int{D}},
			ParamSpec{h + "attn.c_attn.weight", []int{D, 3 * D}},
			ParamSpec{h + "attn.c_attn.bias", []int{3 * D}},
			ParamSpec{h + "attn.c_proj.weight", []int{D, D}},
			ParamSpec{h + "attn.c_proj.bias", []int{D}},
			ParamSpec{h + "ln_2.weight", []int{D}},
			ParamSpec{h + "ln_2.bias", []int{D}},
			ParamSpec{h + "mlp.c_fc.weight", []int{D, 4 * D}},
			ParamSpec{h + "mlp.c_fc.bias", []int{4 * D}},
			ParamSpec{h + "mlp.c_proj.weight", []int{4 * D, D}},
			ParamSpec{h + "mlp.c_proj.bias", []int{D}},
		)
	}
	s = append(s, ParamSpec{"ln_f.weight", []int{D}}, ParamSpec{"ln_f.bias", []int{D}})
	return s
}

// Per-layer parameter offsets inside Params.List (after wte and wpe).
const (
	pLn1W = iota
	pLn1B
	pAttnW
	pAttnB
	pProjW
	pProjB
	pLn2W
	pLn2B
	pFcW
	pFcB
	pFcProjW
	pFcProjB
	perLayer
)

// ZeroParams allocates cfg's parameters, all zero.
func ZeroParams(cfg Config, dt DType) (*Params, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model config: %w", err)
	}
	if dt != F32 && dt != F64 {
		return nil, fmt.Errorf("model params: unsupported dtype %v", dt)
	}
	specs := ParamSpecs(cfg)
	p := &Params{Cfg: cfg, DType: dt, List: make([]*Param, len(specs)), index: make(map[string]int, len(specs)), grads: &gradStore{}}
	for i, s := range specs {
		q := &Param{Name: s.Name, Shape: append([]int(nil), s.Shape...)}
		if dt == F32 {
			q.F32 = make([]float32, q.Size())
		} else {
			q.F64 = make([]float64, q.Size())
		}
		p.List[i] = q
		p.index[s.Name] = i
	}
	return p, nil
}

// NewParams allocates cfg's parameters with GPT-2 initialisation drawn from
// rng: weights N(0, 0.02), the residual projections (attn.c_proj and
// mlp.c_proj weights) N(0, 0.02/sqrt(2·n_layer)), biases 0, layer-norm gains
// 1 and biases 0.
func NewParams(cfg Config, dt DType, rng *rand.Rand) (*Params, error) {
	p, err := ZeroParams(cfg, dt)
	if err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, fmt.Errorf("model params: nil random source")
	}
	projStd := 0.02 / math.Sqrt(2*float64(cfg.NLayer))
	for _, q := range p.List {
		var std float64
		fill := math.NaN()
		switch {
		case hasSuffix(q.Name, "ln_1.weight"), hasSuffix(q.Name, "ln_2.weight"), q.Name == "ln_f.weight":
			fill = 1
		case hasSuffix(q.Name, ".bias"):
			fill = 0
		case hasSuffix(q.Name, "c_proj.weight"):
			std = projStd
		default:
			std = 0.02
		}
		for i := 0; i < q.Size(); i++ {
			v := fill
			if math.IsNaN(fill) {
				v = rng.NormFloat64() * std
			}
			if q.F32 != nil {
				q.F32[i] = float32(v)
			} else {
				q.F64[i] = v
			}
		}
	}
	return p, nil
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// Get returns the parameter called name, or nil.
func (p *Params) Get(name string) *Param {
	if p.index == nil {
		p.reindex()
	}
	i, ok := p.index[name]
	if !ok {
		return nil
	}
	return p.List[i]
}

func (p *Params) reindex() {
	p.index = make(map[string]int, len(p.List))
	for i, q := range p.List {
		p.index[q.Name] = i
	}
}

// NumParams is the total number of parameter elements (wte counted once).
func (p *Params) NumParams() int {
	n := 0
	for _, q := range p.List {
		n += q.Size()
	}
	return n
}

// Check verifies that p holds exactly cfg's parameters, in order, with the
// right shapes and one data slice of p.DType each.
func (p *Params) Check() error {
	if err := p.Cfg.Validate(); err != nil {
		return fmt.Errorf("model config: %w", err)
	}
	specs := ParamSpecs(p.Cfg)
	if len(p.List) != len(specs) {
		return fmt.Errorf("model params: have %d tensors, config needs %d", len(p.List), len(specs))
	}
	for i, s := range specs {
		q := p.List[i]
		if q == nil || q.Name != s.Name {
			return fmt.Errorf("model params: tensor %d is not %s", i, s.Name)
		}
		if len(q.Shape) != len(s.Shape) {
			return fmt.Errorf("model params: %s has shape %v, want %v", s.Name, q.Shape, s.Shape)
		}
		for j := range s.Shape {
			if q.Shape[j] != s.Shape[j] {
				return fmt.Errorf("model params: %s has shape %v, want %v", s.Name, q.Shape, s.Shape)
			}
		}
		switch {
		case p.DType == F32 && (q.F64 != nil || len(q.F32) != q.Size()):
			return fmt.Errorf("model params: %s must hold %d float32 values only", s.Name, q.Size())
		case p.DType == F64 && (q.F32 != nil || len(q.F64) != q.Size()):
			return fmt.Errorf("model params: %s must hold %d float64 values only", s.Name, q.Size())
		case p.DType != F32 && p.DType != F64:
			return fmt.Errorf("model params: unsupported dtype %v", p.DType)
		}
	}
	return nil
}

// Convert returns a deep copy of p with data of type dt.
func (p *Params) Convert(dt DType) (*Params, error) {
	q, err := ZeroParams(p.Cfg, dt)
	if err != nil {
		return nil, err
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	for i, src := range p.List {
		dst := q.List[i]
		for j := 0; j < src.Size(); j++ {
			var v float64
			if src.F32 != nil {
				v = float64(src.F32[j])
			} else {
				v = src.F64[j]
			}
			if dst.F32 != nil {
				dst.F32[j] = float32(v)
			} else {
				dst.F64[j] = v
			}
		}
	}
	return q, nil
}

// gradStore holds the parameter gradient buffers every training graph of
// one Params writes (allocated at a graph's first backward): graphs of
// different batch shapes run one step at a time and a step's gradients
// are consumed (Machine.Grads) before the next step, so one copy serves
// them all instead of one per graph.
type gradStore struct {
	mu  sync.Mutex
	f32 map[int][]float32
	f64 map[int][]float64
}

// paramGrad returns the gradient buffer of p.List[i] (len = its size),
// zero-filled when new.
func paramGrad[T Float](p *Params, i int) []T {
	s := p.grads
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p.List[i].F32) + len(p.List[i].F64)
	var buf any
	if isF32[T]() {
		if s.f32 == nil {
			s.f32 = map[int][]float32{}
		}
		if b := s.f32[i]; len(b) != n {
			s.f32[i] = make([]float32, n)
		}
		buf = s.f32[i]
	} else {
		if s.f64 == nil {
			s.f64 = map[int][]float64{}
		}
		if b := s.f64[i]; len(b) != n {
			s.f64[i] = make([]float64, n)
		}
		buf = s.f64[i]
	}
	return buf.([]T)
}
