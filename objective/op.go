package objective

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"smtrain/data"
)

// Handle carries the per-step inputs of a loss node built by NewLossNode
// (the batch, λ, the <bkspc> id) and its last Result. Set them before each
// run of the graph (Set gives the batch to the model graph as well); the
// graph is never rebuilt. A Handle belongs to one graph and is not safe for
// concurrent use.
type Handle struct {
	batch   *data.Batch
	lambda  float64
	bkspcID int
	noGrad  bool
	last    Result
	work    Workspace
}

// NewHandle returns a Handle for a vocabulary whose <bkspc> token is
// bkspcID (-1: none).
func NewHandle(bkspcID int) *Handle { return &Handle{bkspcID: bkspcID} }

// BatchGraph is the model graph whose logits the loss node reads
// (*model.Graph): it takes a batch's inputs, positions and tree parents.
type BatchGraph interface {
	SetBatch(inputs, positions, parents []int32) error
}

// Set installs batch b and λ for the next forward pass, in one call on
// both sides: the model graph g gets the batch's inputs, the loss node its
// targets and masks, so neither can run on a stale batch. g is nil only
// when the logits do not come from a model graph (tests that feed logits
// directly).
func (h *Handle) Set(g BatchGraph, b *data.Batch, lambda float64) error {
	if b == nil {
		return errors.New("objective: nil batch")
	}
	if g != nil {
		if err := g.SetBatch(b.Inputs, b.Positions, b.Parents); err != nil {
			return err
		}
	}
	h.batch, h.lambda = b, lambda
	return nil
}

// SetGradient turns the gradient computation of the forward pass on (the
// default) or off (evaluation: the loss only, about half the work).
func (h *Handle) SetGradient(on bool) { h.noGrad = !on }

// Result is the outcome of the last forward pass.
func (h *Handle) Result() Result { return h.last }

var lossOpID atomic.Int64

// NewLossNode applies obj to logits (N, V) = (B*T, V), float32 or float64,
// as one fused op with the exact analytic gradient. The returned node is a
// scalar of the logits' dtype. The forward computes dLoss/dlogits at the
// same time (unless h.SetGradient(false)); the backward node only scales it
// by the incoming gradient.
//
// The gradient is computed in place of the logits, so that a training
// graph holds one (N, V) buffer rather than three: after a forward with the
// gradient on, the logits node's value (its backing slice, e.g.
// model.Graph.Logits32, or the value of an input node fed to it) holds
// dLoss/dlogits, not the logits, and the backward node returns that same
// tensor. Nothing may read the logits after the loss forward (the logits
// node must have no other consumer, and its producer's backward must not
// read its own output; the model graph's lm_head satisfies both). An input
// node fed directly must be given fresh logits before every run. With
// h.SetGradient(false) the logits are left untouched.
func NewLossNode(logits *G.Node, obj Objective, h *Handle) (*G.Node, error) {
	if logits == nil || obj == nil || h == nil {
		return nil, errors.New("objective loss node: nil logits, objective or handle")
	}
	s := logits.Shape()
	if len(s) != 2 || s[0] <= 0 || s[1] <= 0 {
		return nil, fmt.Errorf("objective loss node: logits must be (N, V), got shape %v", s)
	}
	var op G.Op
	switch logits.Dtype() {
	case tensor.Float32:
		op = newLossOp[float32](obj, h, s[0], s[1])
	case tensor.Float64:
		op = newLossOp[float64](obj, h, s[0], s[1])
	default:
		return nil, fmt.Errorf("objective loss node: unsupported dtype %v", logits.Dtype())
	}
	n, err := G.ApplyOp(op, logits)
	if err != nil {
		return nil, fmt.Errorf("objective loss node %s: %w", obj.Name(), err)
	}
	return n, nil
}

func dtypeOf[F Float]() tensor.Dtype {
	var z F
	if _, ok := any(z).(float32); ok {
		return tensor.Float32
	}
	return tensor.Float64
}

// denseData returns the backing slice of a (N,V) dense value after checking
// its dtype and size (Float32s/Float64s do not check, DESIGN 7.1).
func denseData[F Float](v G.Value, n int) ([]F, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("logits value is %T, want *tensor.Dense", v)
	}
	if d.Dtype() != dtypeOf[F]() {
		return nil, fmt.Errorf("logits dtype %v, want %v", d.Dtype(), dtypeOf[F]())
	}
	var s any
	switch d.Dtype() {
	case tensor.Float32:
		s = d.Float32s()
	case tensor.Float64:
		s = d.Float64s()
	}
	out := s.([]F)
	if len(out) != n {
		return nil, fmt.Errorf("logits have %d elements, want %d", len(out), n)
	}
	return out, nil
}

// scalarOf reads a scalar gradient value (*G.F32, *G.F64 or a 1-element tensor).
func scalarOf(v G.Value) (float64, error) {
	switch x := v.(type) {
	case *G.F64:
		return float64(*x), nil
	case *G.F32:
		return float64(*x), nil
	case *tensor.Dense:
		if x.Size() == 1 {
			switch x.Dtype() {
			case tensor.Float64:
				return x.Float64s()[0], nil
			case tensor.Float32:
				return float64(x.Float32s()[0]), nil
			}
		}
	}
	return 0, fmt.Errorf("loss gradient value %T is not a float scalar", v)
}

// lossOp is the forward op: logits (N, V) -> scalar loss. It owns no
// (N, V) buffer: with the gradient on, its forward overwrites the logits
// input's backing slice with dLoss/dlogits (the logits are dead after the
// loss: see NewLossNode), and its backward op hands out that same tensor,
// scaled in place by dy when dy ≠ 1.
type lossOp[F Float] struct {
	obj  Objective
	h    *Handle
	n, v int
	id   int64

	val64   G.F64         // op-owned scalar output (float64 graphs)
	val32   G.F32         // op-owned scalar output (float32 graphs)
	grad    *tensor.Dense // the logits input of the last forward, now dLoss/dlogits
	gradBuf []F           // its backing slice
	hasGrad bool
}

func newLossOp[F Float](obj Objective, h *Handle, n, v int) *lossOp[F] {
	return &lossOp[F]{obj: obj, h: h, n: n, v: v, id: lossOpID.Add(1)}
}

var (
	_ G.Op   = (*lossOp[float32])(nil)
	_ G.SDOp = (*lossOp[float64])(nil)
	_ G.Op   = (*lossGradOp[float32])(nil)
)

func (op *lossOp[F]) Arity() int { return 1 }

// Type builds a fresh hm.FnType on every call (gorgonia recycles it).
func (op *lossOp[F]) Type() hm.Type {
	dt := dtypeOf[F]()
	return hm.NewFnType(G.TensorType{Dims: 2, Of: dt}, dt)
}

func (op *lossOp[F]) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func (op *lossOp[F]) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 1 {
		return nil, fmt.Errorf("%v: got %d inputs, want 1", op, len(vals))
	}
	L, err := denseData[F](vals[0], op.n*op.v)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	h := op.h
	if h.batch == nil {
		return nil, fmt.Errorf("%v: no batch set on the handle", op)
	}
	if h.batch.B*h.batch.T != op.n {
		return nil, fmt.Errorf("%v: batch has B*T = %d*%d rows, the graph has %d", op, h.batch.B, h.batch.T, op.n)
	}
	// The gradient overwrites the logits in place (nil: forward only, L is
	// not modified).
	var g []F
	op.hasGrad, op.grad, op.gradBuf = false, nil, nil
	if !h.noGrad {
		g = L
	}
	p := Params{BkspcID: h.bkspcID, Lambda: h.lambda, Work: &h.work}
	var res Result
	switch l := any(L).(type) {
	case []float32:
		res, err = op.obj.Loss32(l, op.v, h.batch, p, any(g).([]float32))
	case []float64:
		res, err = op.obj.Loss(l, op.v, h.batch, p, any(g).([]float64))
	}
	if err != nil {
		return nil, err
	}
	if g != nil {
		op.hasGrad, op.grad, op.gradBuf = true, vals[0].(*tensor.Dense), g
	}
	h.last = res
	if dtypeOf[F]() == tensor.Float32 {
		op.val32 = G.F32(res.Loss)
		return &op.val32, nil
	}
	op.val64 = G.F64(res.Loss)
	return &op.val64, nil
}

func (op *lossOp[F]) ReturnsPtr() bool     { return false }
func (op *lossOp[F]) CallsExtern() bool    { return false }
func (op *lossOp[F]) OverwritesInput() int { return -1 }

func (op *lossOp[F]) WriteHash(h hash.Hash) {
	c := op.obj.Config()
	fmt.Fprintf(h, "smtrain.objective.loss#%d/%s/%v/%dx%d/%v,%v,%v,%s,%s,%v",
		op.id, op.obj.Name(), dtypeOf[F](), op.n, op.v,
		c.Gamma, c.C, c.ClampEps, c.Weighting, c.ValueOn, op.h.bkspcID)
}

func (op *lossOp[F]) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func (op *lossOp[F]) String() string { return fmt.Sprintf("loss_%s#%d", op.obj.Name(), op.id) }

// DiffWRT implements G.SDOp: the loss is differentiable in the logits.
func (op *lossOp[F]) DiffWRT(int) []bool { return []bool{true} }

// SymDiff implements G.SDOp: one backward node (logits, loss, dloss) ->
// dlogits; the loss output is an input so it runs after the forward.
func (op *lossOp[F]) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: SymDiff got %d inputs, want 1", op, len(inputs))
	}
	b, err := G.ApplyOp(&lossGradOp[F]{f: op, id: lossOpID.Add(1)}, inputs[0], output, grad)
	if err != nil {
		return nil, fmt.Errorf("%v backward: %w", op, err)
	}
	return G.Nodes{b}, nil
}

// lossGradOp returns dy · dLoss/dlogits computed by its forward op: the
// forward's logits tensor, which holds the gradient (scaled in place when
// dy ≠ 1).
type lossGradOp[F Float] struct {
	f  *lossOp[F]
	id int64
}

func (op *lossGradOp[F]) Arity() int { return 3 }

func (op *lossGradOp[F]) Type() hm.Type {
	dt := dtypeOf[F]()
	return hm.NewFnType(G.TensorType{Dims: 2, Of: dt}, dt, dt, G.TensorType{Dims: 2, Of: dt})
}

func (op *lossGradOp[F]) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.f.n, op.f.v}, nil
}

func (op *lossGradOp[F]) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 3 {
		return nil, fmt.Errorf("%v: got %d inputs, want 3", op, len(vals))
	}
	f := op.f
	if !f.hasGrad {
		return nil, fmt.Errorf("%v: the forward pass computed no gradient (handle in evaluation mode?)", op)
	}
	dy, err := scalarOf(vals[2])
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	if d, ok := vals[0].(*tensor.Dense); !ok || d != f.grad {
		return nil, fmt.Errorf("%v: the logits value is not the tensor the forward wrote the gradient into", op)
	}
	// The gradient is handed out once per forward: scaling it in place
	// (the logits are dead) must not happen twice.
	f.hasGrad = false
	if dy != 1 {
		for i, g := range f.gradBuf {
			f.gradBuf[i] = F(float64(g) * dy)
		}
	}
	return f.grad, nil
}

func (op *lossGradOp[F]) ReturnsPtr() bool     { return false }
func (op *lossGradOp[F]) CallsExtern() bool    { return false }
func (op *lossGradOp[F]) OverwritesInput() int { return -1 }

func (op *lossGradOp[F]) WriteHash(h hash.Hash) {
	op.f.WriteHash(h)
	fmt.Fprintf(h, "/grad#%d:slot0", op.id)
}

func (op *lossGradOp[F]) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func (op *lossGradOp[F]) String() string { return fmt.Sprintf("%v.grad#%d", op.f, op.id) }
