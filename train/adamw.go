package train

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"

	"smtrain/internal/parallel"
	"smtrain/model"
)

// Float is the element type of parameters, gradients and optimizer state.
type Float interface{ ~float32 | ~float64 }

// AdamWConfig holds the AdamW hyperparameters (torch.optim.AdamW's
// meaning: decoupled weight decay p -= lr·wd·p before the Adam update).
type AdamWConfig struct {
	LR          float64 `json:"lr"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
}

// DefaultAdamW is nanoGPT's setting (lr 6e-4, betas 0.9/0.95, eps 1e-8,
// weight decay 0.1).
var DefaultAdamW = AdamWConfig{LR: 6e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}

// Validate reports the first invalid hyperparameter.
func (c AdamWConfig) Validate() error {
	switch {
	case !(c.LR >= 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("adamw: lr must be finite and >= 0, got %g", c.LR)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fmt.Errorf("adamw: beta1 must be in [0, 1), got %g", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("adamw: beta2 must be in [0, 1), got %g", c.Beta2)
	case !(c.Eps > 0):
		return fmt.Errorf("adamw: eps must be positive, got %g", c.Eps)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("adamw: weight_decay must be finite and >= 0, got %g", c.WeightDecay)
	}
	return nil
}

// AdamW is the AdamW optimizer over a fixed list of named parameter slices.
// It reproduces torch.optim.AdamW (non-amsgrad) update by update:
//
//	p ← p·(1 − lr·wd)              (only where Decay[i])
//	m ← β1·m + (1−β1)·g
//	v ← β2·v + (1−β2)·g²
//	p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)
//
// The element arithmetic is done in T, like torch does for a parameter of
// that dtype. LR may be changed between steps (schedules).
type AdamW[T Float] struct {
	AdamWConfig
	// Names are the parameter names (state is saved and restored by name).
	Names []string
	// Decay says which parameters get weight decay.
	Decay []bool
	// M and V are the first and second moment estimates, one slice per
	// parameter, same lengths as the parameters.
	M, V [][]T
	// Step is the number of updates done (t in the bias corrections).
	Step int
}

// DecayMask returns the nanoGPT weight-decay mask: parameters with two or
// more dimensions (matmul weights and the wte/wpe embeddings) are decayed;
// 1-D parameters (biases, layer-norm gains and shifts) are not.
func DecayMask(shapes [][]int) []bool {
	out := make([]bool, len(shapes))
	for i, s := range shapes {
		out[i] = len(s) >= 2
	}
	return out
}

// NewAdamW makes an optimizer for parameters with the given names and
// element counts and zero moments.
func NewAdamW[T Float](cfg AdamWConfig, names []string, sizes []int, decay []bool) (*AdamW[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(sizes) != len(names) || len(decay) != len(names) {
		return nil, fmt.Errorf("adamw: %d names, %d sizes, %d decay flags", len(names), len(sizes), len(decay))
	}
	a := &AdamW[T]{AdamWConfig: cfg, Names: append([]string(nil), names...), Decay: append([]bool(nil), decay...)}
	seen := map[string]bool{}
	for i, n := range sizes {
		if seen[names[i]] {
			return nil, fmt.Errorf("adamw: duplicate parameter name %q", names[i])
		}
		seen[names[i]] = true
		if n < 0 {
			return nil, fmt.Errorf("adamw: parameter %s: negative size %d", names[i], n)
		}
		a.M = append(a.M, make([]T, n))
		a.V = append(a.V, make([]T, n))
	}
	return a, nil
}

// Update applies one AdamW step to params in place given their gradients
// (clip the gradients first if wanted). params and grads are in the
// optimizer's parameter order. A non-finite gradient is not checked here:
// the caller skips the step when the gradient norm is not finite.
func (a *AdamW[T]) Update(params, grads [][]T) error {
	if len(params) != len(a.M) || len(grads) != len(a.M) {
		return fmt.Errorf("adamw: %d params and %d grads for %d optimizer slots", len(params), len(grads), len(a.M))
	}
	for i := range params {
		if len(params[i]) != len(a.M[i]) || len(grads[i]) != len(a.M[i]) {
			return fmt.Errorf("adamw: parameter %s: %d values and %d gradients, optimizer has %d", a.Names[i], len(params[i]), len(grads[i]), len(a.M[i]))
		}
	}
	if err := a.AdamWConfig.Validate(); err != nil {
		return err
	}
	a.Step++
	t := float64(a.Step)
	bc1 := 1 - math.Pow(a.Beta1, t)
	bc2sqrt := math.Sqrt(1 - math.Pow(a.Beta2, t))
	b1, b2, stepSize := a.Beta1, a.Beta2, a.LR/bc1
	forChunks(params, func(i, lo, hi int) {
		decay := 1.0
		if a.Decay[i] {
			decay = 1 - a.LR*a.WeightDecay
		}
		k := adamStep{b1: b1, b2: b2, stepSize: stepSize, bc2: bc2sqrt, eps: a.Eps, decay: decay}
		p, g, m, v := params[i][lo:hi], grads[i][lo:hi], a.M[i][lo:hi], a.V[i][lo:hi]
		switch pp := any(p).(type) {
		case []float32:
			k.run32(pp, any(g).([]float32), any(m).([]float32), any(v).([]float32))
		case []float64:
			k.run64(pp, any(g).([]float64), any(m).([]float64), any(v).([]float64))
		default:
			k.runT(toF64(p), toF64(g), toF64(m), toF64(v), func(pf, mf, vf []float64) {
				for j := range p {
					p[j], m[j], v[j] = T(pf[j]), T(mf[j]), T(vf[j])
				}
			})
		}
	})
	return nil
}

// adamStep holds the scalars of one update.
type adamStep struct {
	b1, b2, stepSize, bc2, eps, decay float64
}

// run32 updates float32 slices with float32 arithmetic, as torch does
// for float32 parameters (scalars rounded to float32 once).
func (k *adamStep) run32(p, g, m, v []float32) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	b1, b2, ob1, ob2 := float32(k.b1), float32(k.b2), float32(1-k.b1), float32(1-k.b2)
	step, bc2, eps, decay := float32(k.stepSize), float32(k.bc2), float32(k.eps), float32(k.decay)
	c := [8]float32{b1, ob1, b2, ob2, decay, step, bc2, eps}
	n := adamVec32(p, g, m, v, &c) // the same arithmetic, 8 lanes at a time
	p, g, m, v = p[n:], g[n:], m[n:], v[n:]
	for j := range p {
		gj := g[j]
		mj := b1*m[j] + ob1*gj
		vj := b2*v[j] + ob2*gj*gj
		m[j], v[j] = mj, vj
		p[j] = p[j]*decay - step*mj/(float32(math.Sqrt(float64(vj)))/bc2+eps)
	}
}

// run64 is run32 for float64.
func (k *adamStep) run64(p, g, m, v []float64) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	b1, b2, ob1, ob2 := k.b1, k.b2, 1-k.b1, 1-k.b2
	for j := range p {
		gj := g[j]
		mj := b1*m[j] + ob1*gj
		vj := b2*v[j] + ob2*gj*gj
		m[j], v[j] = mj, vj
		p[j] = p[j]*k.decay - k.stepSize*mj/(math.Sqrt(vj)/k.bc2+k.eps)
	}
}

// runT handles named float types through float64 copies.
func (k *adamStep) runT(p, g, m, v []float64, store func(p, m, v []float64)) {
	k.run64(p, g, m, v)
	store(p, m, v)
}

func toF64[T Float](x []T) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// chunk is the number of elements one goroutine handles at a time.
const chunk = 1 << 15

// forChunks calls f over [lo, hi) pieces of every slice of xs, on all
// cores (parallel.For over the slices' elements laid end to end) when
// there is enough work, each piece at most chunk long.
func forChunks[T Float](xs [][]T, f func(i, lo, hi int)) {
	total := 0
	for _, x := range xs {
		total += len(x)
	}
	if total < 2*chunk {
		for i, x := range xs {
			f(i, 0, len(x))
		}
		return
	}
	parallel.For(total, chunk, parallel.Func(func(_, lo, hi int) {
		off := 0 // xs[i] starts at element off of the whole
		for i, x := range xs {
			a, b := max(lo, off), min(hi, off+len(x))
			for ; a < b; a += chunk {
				f(i, a-off, min(a+chunk, b)-off)
			}
			off += len(x)
			if off >= hi {
				return
			}
		}
	}))
}

// GradNorm returns the global L2 norm of grads, accumulated in float64.
func GradNorm[T Float](grads [][]T) float64 {
	var s float64
	for _, g := range grads {
		for _, x := range g {
			s += float64(x) * float64(x)
		}
	}
	return math.Sqrt(s)
}

// ClipGradNorm scales grads in place so that their global L2 norm is at
// most maxNorm, as torch.nn.utils.clip_grad_norm_ does (factor maxNorm /
// (norm + 1e-6) when that is below 1), and returns the norm before
// clipping. maxNorm <= 0 disables clipping. A non-finite norm is returned
// and the gradients are left unchanged (the caller should skip the step).
func ClipGradNorm[T Float](grads [][]T, maxNorm float64) float64 {
	norm := GradNorm(grads)
	clipToNorm(grads, norm, maxNorm)
	return norm
}

// clipToNorm is ClipGradNorm for grads whose norm (GradNorm) is known.
func clipToNorm[T Float](grads [][]T, norm, maxNorm float64) {
	if maxNorm <= 0 || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return
	}
	for _, g := range grads {
		for j := range g {
			g[j] = T(float64(g[j]) * coef)
		}
	}
}

// Optimizer-state file layout (optimizer.safetensors): tensors "m.<name>"
// and "v.<name>" (1-D, the parameter's element count) and metadata
// format=smtrain-adamw, version=1, step, and the hyperparameters.
const (
	stateFormat  = "smtrain-adamw"
	stateVersion = "1"
)

// StateTensors returns the optimizer state as safetensors tensors and
// metadata (see the layout above), in F32 or F64 according to T.
func (a *AdamW[T]) StateTensors() ([]model.Tensor, map[string]string) {
	var ts []model.Tensor
	for _, pair := range []struct {
		prefix string
		xs     [][]T
	}{{"m.", a.M}, {"v.", a.V}} {
		for i, x := range pair.xs {
			ts = append(ts, toTensor(pair.prefix+a.Names[i], x))
		}
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	md := map[string]string{
		"format": stateFormat, "version": stateVersion,
		"step": strconv.Itoa(a.Step),
		"lr":   f(a.LR), "beta1": f(a.Beta1), "beta2": f(a.Beta2), "eps": f(a.Eps), "weight_decay": f(a.WeightDecay),
	}
	return ts, md
}

// MarshalState encodes the optimizer state as a safetensors file.
func (a *AdamW[T]) MarshalState() ([]byte, error) {
	var b bytes.Buffer
	if err := a.WriteState(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteState writes the optimizer state as a safetensors file to w,
// straight from the moments (no copy of them in memory).
func (a *AdamW[T]) WriteState(w io.Writer) error {
	ts, md := a.StateTensors()
	return model.EncodeSafetensors(w, ts, md)
}

func toTensor[T Float](name string, x []T) model.Tensor {
	switch v := any(x).(type) {
	case []float32:
		return model.F32TensorView(name, []int{len(v)}, v)
	case []float64:
		return model.F64TensorView(name, []int{len(v)}, v)
	}
	// ~float32/~float64 named types: convert.
	f := make([]float64, len(x))
	for i := range x {
		f[i] = float64(x[i])
	}
	return model.F64Tensor(name, []int{len(f)}, f)
}

// LoadState restores the moments and step count from a state written by
// StateTensors/MarshalState. Every parameter of the optimizer must be
// present with the same element count; extra tensors are an error.
// Hyperparameters are not restored (they come from the configuration).
func (a *AdamW[T]) LoadState(st *model.Safetensors) error {
	if st.Metadata["format"] != stateFormat {
		return fmt.Errorf("optimizer state: format %q, want %q", st.Metadata["format"], stateFormat)
	}
	if v := st.Metadata["version"]; v != stateVersion {
		return fmt.Errorf("optimizer state: version %q, want %q", v, stateVersion)
	}
	step, err := strconv.Atoi(st.Metadata["step"])
	if err != nil || step < 0 {
		return fmt.Errorf("optimizer state: bad step %q", st.Metadata["step"])
	}
	if want := 2 * len(a.Names); len(st.Tensors) != want {
		return fmt.Errorf("optimizer state: %d tensors, want %d (m and v of %d parameters)", len(st.Tensors), want, len(a.Names))
	}
	newM := make([][]T, len(a.Names))
	newV := make([][]T, len(a.Names))
	for i, name := range a.Names {
		for _, pair := range []struct {
			prefix string
			dst    [][]T
		}{{"m.", newM}, {"v.", newV}} {
			t := st.Get(pair.prefix + name)
			if t == nil {
				return fmt.Errorf("optimizer state: missing tensor %s%s", pair.prefix, name)
			}
			if !t.IsFloat() || t.NumElements() != len(a.M[i]) {
				return fmt.Errorf("optimizer state: tensor %s%s: %s %v, want %d float values", pair.prefix, name, t.DType, t.Shape, len(a.M[i]))
			}
			f, err := t.Float64s()
			if err != nil {
				return fmt.Errorf("optimizer state: %w", err)
			}
			x := make([]T, len(f))
			for j, v := range f {
				x[j] = T(v)
			}
			pair.dst[i] = x
		}
	}
	for i := range newM {
		copy(a.M[i], newM[i])
		copy(a.V[i], newV[i])
	}
	a.Step = step
	return nil
}

// String summarises the optimizer for logs.
func (a *AdamW[T]) String() string {
	var dec []string
	for i, d := range a.Decay {
		if !d {
			continue
		}
		dec = append(dec, a.Names[i])
	}
	return fmt.Sprintf("AdamW(lr=%g, betas=(%g, %g), eps=%g, wd=%g on %d/%d params, step=%d)",
		a.LR, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, len(dec), len(a.Names), a.Step)
}
