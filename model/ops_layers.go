package model

import (
	"errors"
	"fmt"

	"gorgonia.org/tensor"
)

// batchState is the non-differentiable per-step input of a graph: token
// ids, position ids and parent pointers, and the ancestor mask derived
// from the parents. Ops read it at every forward.
type batchState struct {
	b, t          int
	tok, pos, par []int32 // (B·T)
	mask          []uint8 // (B, T, T): 1 where j is i or an ancestor of i
	ok            bool    // a valid batch has been set
}

func newBatchState(b, t int) *batchState {
	return &batchState{b: b, t: t, tok: make([]int32, b*t), pos: make([]int32, b*t), par: make([]int32, b*t), mask: make([]uint8, b*t*t)}
}

// set validates and copies a batch. vocab and npos bound the ids.
func (s *batchState) set(inputs, positions, parents []int32, vocab, npos int) error {
	n := s.b * s.t
	if len(inputs) != n || len(positions) != n || len(parents) != n {
		return fmt.Errorf("batch: inputs, positions and parents need %d entries (B=%d × T=%d), got %d, %d, %d",
			n, s.b, s.t, len(inputs), len(positions), len(parents))
	}
	for i := 0; i < n; i++ {
		b, t := i/s.t, i%s.t
		if inputs[i] < 0 || int(inputs[i]) >= vocab {
			return fmt.Errorf("batch: row %d index %d: token id %d outside the vocabulary [0, %d)", b, t, inputs[i], vocab)
		}
		if positions[i] < 0 || int(positions[i]) >= npos {
			return fmt.Errorf("batch: row %d index %d: position %d outside [0, %d)", b, t, positions[i], npos)
		}
		if parents[i] < -1 || int(parents[i]) >= t {
			return fmt.Errorf("batch: row %d index %d: parent %d must be -1 or an earlier index of the same row", b, t, parents[i])
		}
	}
	s.ok = false
	copy(s.tok, inputs)
	copy(s.pos, positions)
	copy(s.par, parents)
	zero8(s.mask)
	T := s.t
	for b := 0; b < s.b; b++ {
		par := s.par[b*T : b*T+T]
		for i := 0; i < T; i++ {
			row := s.mask[(b*T+i)*T : (b*T+i)*T+T]
			for j := i; j >= 0; j = int(par[j]) {
				row[j] = 1
			}
		}
	}
	s.ok = true
	return nil
}

func zero8(s []uint8) {
	for i := range s {
		s[i] = 0
	}
}

var errNoBatch = errors.New("no batch set (call SetBatch first)")

// ---------------------------------------------------------------------------

type embedOp[T Float] struct {
	n, d, v, p int
	bs         *batchState
	k          embedKernel[T]
	// tied: wte is the tied LM head's weight (head, set once the head is
	// built): the embedding does not differentiate wte itself but adds its
	// scatter into the head's wte gradient, so the model keeps one wte
	// gradient instead of two that gorgonia would sum into a third. The
	// head's backward (which overwrites that buffer) always runs first:
	// the embedding's output gradient depends on it.
	tied bool
	head *fusedOp[T]
}

func (o *embedOp[T]) kind() string { return "embedding" }
func (o *embedOp[T]) inShapes() []tensor.Shape {
	return []tensor.Shape{{o.v, o.d}, {o.p, o.d}}
}
func (o *embedOp[T]) outShape() tensor.Shape { return tensor.Shape{o.n, o.d} }
func (o *embedOp[T]) diffWRT() []bool        { return []bool{!o.tied, true} }
func (o *embedOp[T]) fwd(in [][]T, out []T) error {
	if !o.bs.ok {
		return errNoBatch
	}
	o.k.forward(o.bs.tok, o.bs.pos, in[0], in[1], out)
	return nil
}
func (o *embedOp[T]) bwd(in [][]T, out, dout []T, din [][]T) {
	if !o.tied {
		o.k.backward(o.bs.tok, o.bs.pos, dout, din[0], din[1], false)
		return
	}
	zero(din[1])
	o.k.backward(o.bs.tok, o.bs.pos, dout, o.head.din[1], din[1], true)
}

// ---------------------------------------------------------------------------

type layerNormOp[T Float] struct {
	n, d int
	k    *layerNormKernel[T]
	// resid, when set, is the op that adds this op's input x as a residual
	// (declared not differentiable there): x's gradient is this op's plus
	// resid's output gradient, summed here rather than by gorgonia (which
	// would keep the residual's copy and the sum in two more (N, D)
	// buffers per use). resid's backward always runs first: this op's
	// output gradient depends on it.
	resid *fusedOp[T]
}

func newLayerNormOp[T Float](n, d int, eps float64) *layerNormOp[T] {
	return &layerNormOp[T]{n: n, d: d, k: newLayerNormKernel[T](n, d, eps)}
}
func (o *layerNormOp[T]) kind() string { return "layernorm" }
func (o *layerNormOp[T]) inShapes() []tensor.Shape {
	return []tensor.Shape{{o.n, o.d}, {o.d}, {o.d}}
}
func (o *layerNormOp[T]) outShape() tensor.Shape { return tensor.Shape{o.n, o.d} }
func (o *layerNormOp[T]) diffWRT() []bool        { return []bool{true, true, true} }
func (o *layerNormOp[T]) fwd(in [][]T, out []T) error {
	o.k.forward(in[0], in[1], in[2], out)
	return nil
}
func (o *layerNormOp[T]) bwd(in [][]T, out, dout []T, din [][]T) {
	if o.resid == nil {
		o.k.backward(in[0], in[1], dout, din[0], din[1], din[2], false)
		return
	}
	copy(din[0], o.resid.dout)
	zero(din[1])
	zero(din[2])
	o.k.backward(in[0], in[1], dout, din[0], din[1], din[2], true)
}

// ---------------------------------------------------------------------------

// linearOp: inputs x (N, C), W (C, OC) [or (OC, C) when transW], then
// b (OC) if bias, then r (N, OC) if residual.
type linearOp[T Float] struct {
	n              int
	bias, residual bool
	k              linearKernel[T]
	name           string
}

func newLinearOp[T Float](name string, n, c, oc int, transW, bias, residual bool) *linearOp[T] {
	return &linearOp[T]{n: n, bias: bias, residual: residual, name: name, k: linearKernel[T]{c: c, oc: oc, transW: transW}}
}
func (o *linearOp[T]) kind() string { return o.name }
func (o *linearOp[T]) inShapes() []tensor.Shape {
	s := []tensor.Shape{{o.n, o.k.c}, {o.k.c, o.k.oc}}
	if o.k.transW {
		s[1] = tensor.Shape{o.k.oc, o.k.c}
	}
	if o.bias {
		s = append(s, tensor.Shape{o.k.oc})
	}
	if o.residual {
		s = append(s, tensor.Shape{o.n, o.k.oc})
	}
	return s
}
func (o *linearOp[T]) outShape() tensor.Shape { return tensor.Shape{o.n, o.k.oc} }

// diffWRT: the residual r is not differentiated here: its gradient is dy,
// which the layer norm reading the same r adds (layerNormOp.resid).
func (o *linearOp[T]) diffWRT() []bool {
	d := []bool{true, true}
	if o.bias {
		d = append(d, true)
	}
	if o.residual {
		d = append(d, false)
	}
	return d
}
func (o *linearOp[T]) fwd(in [][]T, out []T) error {
	var b, r []T
	i := 2
	if o.bias {
		b = in[i]
		i++
	}
	if o.residual {
		r = in[i]
	}
	o.k.forward(in[0], in[1], b, r, out)
	return nil
}
func (o *linearOp[T]) bwd(in [][]T, out, dout []T, din [][]T) {
	var db []T
	if o.bias {
		db = din[2]
	}
	o.k.backward(in[0], in[1], dout, din[0], din[1], db, false)
}

// ---------------------------------------------------------------------------

// geluLinearOp is the MLP's second half, y = gelu(f) @ W + b + r, as one op
// that keeps only its input f: the GELU's output (and its tanh) live in
// scratch buffers shared by every layer's op and are recomputed by the
// backward, which needs them for dW. That saves two (N, 4D) buffers per
// layer for one more GELU forward per layer and step (elementwise, small
// next to the products). Inputs f (N, C), W (C, OC), b (OC), r (N, OC);
// r is not differentiated here (layerNormOp.resid).
type geluLinearOp[T Float] struct {
	n       int
	gelu    *geluKernel[T]
	lin     linearKernel[T]
	gl, dgl []T // (N, C) shared scratch: gelu(f) and its gradient
}

// newGELULinearOp builds the op over shared scratch: gl, dgl and th hold
// n·c elements each (th is the GELU's saved tanh).
func newGELULinearOp[T Float](n, c, oc int, gl, dgl, th []T) *geluLinearOp[T] {
	return &geluLinearOp[T]{n: n, gelu: &geluKernel[T]{th: th}, lin: linearKernel[T]{c: c, oc: oc}, gl: gl, dgl: dgl}
}
func (o *geluLinearOp[T]) kind() string { return "mlp.gelu_c_proj" }
func (o *geluLinearOp[T]) inShapes() []tensor.Shape {
	return []tensor.Shape{{o.n, o.lin.c}, {o.lin.c, o.lin.oc}, {o.lin.oc}, {o.n, o.lin.oc}}
}
func (o *geluLinearOp[T]) outShape() tensor.Shape { return tensor.Shape{o.n, o.lin.oc} }
func (o *geluLinearOp[T]) diffWRT() []bool        { return []bool{true, true, true, false} }
func (o *geluLinearOp[T]) fwd(in [][]T, out []T) error {
	o.gelu.forward(in[0], o.gl)
	o.lin.forward(o.gl, in[1], in[2], in[3], out)
	return nil
}
func (o *geluLinearOp[T]) bwd(in [][]T, out, dout []T, din [][]T) {
	o.gelu.forward(in[0], o.gl) // recompute gelu(f) and its tanh
	o.lin.backward(o.gl, in[1], dout, o.dgl, din[1], din[2], false)
	o.gelu.backward(in[0], o.dgl, din[0], false)
}

type attentionOp[T Float] struct {
	bs *batchState
	k  *attentionKernel[T]
}

func newAttentionOp[T Float](bs *batchState, nhead, d int) *attentionOp[T] {
	return &attentionOp[T]{bs: bs, k: newAttentionKernel[T](bs.b, bs.t, nhead, d, bs.mask)}
}
func (o *attentionOp[T]) kind() string { return "attention" }
func (o *attentionOp[T]) inShapes() []tensor.Shape {
	return []tensor.Shape{{o.bs.b * o.bs.t, 3 * o.k.d}}
}
func (o *attentionOp[T]) outShape() tensor.Shape { return tensor.Shape{o.bs.b * o.bs.t, o.k.d} }
func (o *attentionOp[T]) diffWRT() []bool        { return []bool{true} }
func (o *attentionOp[T]) fwd(in [][]T, out []T) error {
	if !o.bs.ok {
		return errNoBatch
	}
	o.k.forward(in[0], out)
	return nil
}
func (o *attentionOp[T]) bwd(in [][]T, out, dout []T, din [][]T) {
	o.k.backward(in[0], dout, din[0], false)
}

// ---------------------------------------------------------------------------

type crossEntropyOp[T Float] struct {
	n, v    int
	targets []int32
	count   int
	k       *crossEntropyKernel[T]
}

func (o *crossEntropyOp[T]) kind() string             { return "crossentropy" }
func (o *crossEntropyOp[T]) inShapes() []tensor.Shape { return []tensor.Shape{{o.n, o.v}} }
func (o *crossEntropyOp[T]) outShape() tensor.Shape   { return tensor.ScalarShape() }
func (o *crossEntropyOp[T]) diffWRT() []bool          { return []bool{true} }
func (o *crossEntropyOp[T]) fwd(in [][]T, out []T) error {
	l, c := o.k.forward(in[0], o.targets)
	out[0] = T(l)
	o.count = c
	return nil
}
func (o *crossEntropyOp[T]) bwd(in [][]T, out, dout []T, din [][]T) {
	o.k.backward(in[0], o.targets, float64(dout[0]), din[0], false)
}

func (o *crossEntropyOp[T]) setTargets(t []int32) error {
	if len(t) != o.n {
		return fmt.Errorf("cross entropy: %d targets for %d logit rows", len(t), o.n)
	}
	for i, x := range t {
		if int(x) >= o.v {
			return fmt.Errorf("cross entropy: target %d at row %d outside the vocabulary [0, %d)", x, i, o.v)
		}
	}
	copy(o.targets, t)
	return nil
}
