package model

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Fused custom gorgonia ops (DESIGN 7.1). Each fusedOp wraps an opKernel
// (a forward/backward pair over flat slices). Its symbolic derivative is
// one backward node (inputs…, output, dOutput) that computes the gradients
// of all differentiable inputs into op-owned buffers; it returns the first
// one and small reader nodes hand out the others. Outputs are op-owned
// buffers reused every step (ReturnsPtr=false, CallsExtern=false,
// OverwritesInput=-1), so steps do not allocate inside the ops.

// opKernel is what a fused op computes. Shapes are static (fixed when the
// graph is built).
type opKernel[T Float] interface {
	kind() string
	inShapes() []tensor.Shape
	outShape() tensor.Shape // empty shape: scalar output
	diffWRT() []bool
	// fwd computes out from in.
	fwd(in [][]T, out []T) error
	// bwd writes the input gradients into din given dout, overwriting
	// every element (din are op-owned buffers with stale contents; nil for
	// inputs that are not differentiable).
	bwd(in [][]T, out, dout []T, din [][]T)
}

var opCounter atomic.Int64

func nextOpID() int64 { return opCounter.Add(1) }

func dtypeOf[T Float]() tensor.Dtype {
	if isF32[T]() {
		return tensor.Float32
	}
	return tensor.Float64
}

func hmType(s tensor.Shape, dt tensor.Dtype) hm.Type {
	if len(s) == 0 {
		return dt
	}
	return G.TensorType{Dims: len(s), Of: dt}
}

func shapeSize(s tensor.Shape) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// valueData returns the backing data of v as []T without copying, after
// checking its dtype and size.
func valueData[T Float](v G.Value, want int) ([]T, error) {
	dt := dtypeOf[T]()
	var s []T
	switch x := v.(type) {
	case *tensor.Dense:
		if x.Dtype() != dt {
			return nil, fmt.Errorf("value has dtype %v, want %v", x.Dtype(), dt)
		}
		if dt == tensor.Float32 {
			f := x.Float32s()
			if len(f) > 0 {
				s = unsafe.Slice((*T)(unsafe.Pointer(&f[0])), len(f))
			}
		} else {
			f := x.Float64s()
			if len(f) > 0 {
				s = unsafe.Slice((*T)(unsafe.Pointer(&f[0])), len(f))
			}
		}
	case *G.F32:
		if dt != tensor.Float32 {
			return nil, fmt.Errorf("value is float32, want %v", dt)
		}
		s = unsafe.Slice((*T)(unsafe.Pointer(x)), 1)
	case *G.F64:
		if dt != tensor.Float64 {
			return nil, fmt.Errorf("value is float64, want %v", dt)
		}
		s = unsafe.Slice((*T)(unsafe.Pointer(x)), 1)
	default:
		return nil, fmt.Errorf("unsupported value type %T", v)
	}
	if len(s) != want {
		return nil, fmt.Errorf("value has %d elements, want %d", len(s), want)
	}
	return s, nil
}

func newDense[T Float](s tensor.Shape, n int) (*tensor.Dense, []T) {
	buf := make([]T, n)
	return tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(buf)), buf
}

// fusedOp is the forward node's op.
type fusedOp[T Float] struct {
	k      opKernel[T]
	id     int64
	out    *tensor.Dense // nil for a scalar output
	outBuf []T
	scal   [1]T // scalar output storage
	in     [][]T
	ins    []tensor.Shape // cached kernel input shapes
	sizes  []int

	// backward state, shared by the backward and reader ops
	din      [][]T
	dinDense []*tensor.Dense
	first    int // first differentiable input (the backward node's output)
	bin      [][]T
	// shared gives input-gradient buffers (newFusedOpShared); gradsReady:
	// allocGrads ran.
	shared     func(slot, n int) []T
	gradsReady bool
	// dout is the output gradient of the last backward (a gorgonia-owned
	// buffer, valid until the step ends): an op whose input this op adds
	// as a residual reads it (layerNormOp.resid).
	dout []T
}

var (
	_ G.Op   = (*fusedOp[float32])(nil)
	_ G.SDOp = (*fusedOp[float32])(nil)
	_ G.Op   = (*bwdOp[float64])(nil)
	_ G.Op   = (*readOp[float64])(nil)
)

func newFusedOp[T Float](k opKernel[T]) *fusedOp[T] { return newFusedOpShared(k, nil) }

// newFusedOpShared is newFusedOp whose input-gradient buffers come from
// shared(slot, n) when it returns non-nil (buffers shared between ops
// whose gradients are never live at the same time; see buildGraph).
func newFusedOpShared[T Float](k opKernel[T], shared func(slot, n int) []T) *fusedOp[T] {
	op := &fusedOp[T]{k: k, id: nextOpID(), first: -1, shared: shared}
	ins := k.inShapes()
	op.ins = ins
	for _, s := range ins {
		op.sizes = append(op.sizes, shapeSize(s))
	}
	op.in = make([][]T, len(ins))
	op.bin = make([][]T, len(ins))
	op.din = make([][]T, len(ins))
	op.dinDense = make([]*tensor.Dense, len(ins))
	if s := k.outShape(); len(s) > 0 {
		op.out, op.outBuf = newDense[T](s, shapeSize(s))
	} else {
		op.outBuf = op.scal[:]
	}
	for i, d := range k.diffWRT() {
		if d && op.first < 0 {
			op.first = i
		}
	}
	return op
}

// allocGrads makes the input-gradient buffers at the first backward (a
// graph compiled forward-only never allocates them): shared(slot, n)'s
// buffer when it returns one, an op-owned one otherwise.
func (op *fusedOp[T]) allocGrads() {
	if op.gradsReady {
		return
	}
	for i, d := range op.k.diffWRT() {
		if !d {
			continue
		}
		if op.shared != nil {
			if buf := op.shared(i, op.sizes[i]); buf != nil {
				op.din[i] = buf
				op.dinDense[i] = tensor.New(tensor.WithShape(op.ins[i].Clone()...), tensor.WithBacking(buf))
				continue
			}
		}
		op.dinDense[i], op.din[i] = newDense[T](op.ins[i], op.sizes[i])
	}
	op.gradsReady = true
}

// Arity, Type, InferShape, Do, ReturnsPtr, CallsExtern, OverwritesInput,
// WriteHash, Hashcode and String implement gorgonia.Op (likewise for
// bwdOp and readOp below).
func (op *fusedOp[T]) Arity() int { return len(op.ins) }

func (op *fusedOp[T]) Type() hm.Type {
	dt := dtypeOf[T]()
	ins := op.k.inShapes()
	ts := make(hm.Types, 0, len(ins)+1)
	for _, s := range ins {
		ts = append(ts, hmType(s, dt))
	}
	ts = append(ts, hmType(op.k.outShape(), dt))
	return hm.NewFnType(ts...)
}

func (op *fusedOp[T]) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.k.outShape().Clone(), nil
}

func (op *fusedOp[T]) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != len(op.ins) {
		return nil, fmt.Errorf("%v: got %d inputs, want %d", op, len(vals), len(op.ins))
	}
	for i, v := range vals {
		s, err := valueData[T](v, op.sizes[i])
		if err != nil {
			return nil, fmt.Errorf("%v input %d: %w", op, i, err)
		}
		op.in[i] = s
	}
	if err := op.k.fwd(op.in, op.outBuf); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return op.outValue(), nil
}

func (op *fusedOp[T]) outValue() G.Value {
	if op.out != nil {
		return op.out
	}
	if isF32[T]() {
		return (*G.F32)(unsafe.Pointer(&op.scal[0]))
	}
	return (*G.F64)(unsafe.Pointer(&op.scal[0]))
}

func (op *fusedOp[T]) ReturnsPtr() bool     { return false }
func (op *fusedOp[T]) CallsExtern() bool    { return false }
func (op *fusedOp[T]) OverwritesInput() int { return -1 }

func writeShapes(h hash.Hash, ss ...tensor.Shape) {
	for _, s := range ss {
		fmt.Fprintf(h, "%v;", []int(s))
	}
}

func (op *fusedOp[T]) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s#%d/%v/fwd:", op.k.kind(), op.id, dtypeOf[T]())
	writeShapes(h, op.k.inShapes()...)
	writeShapes(h, op.k.outShape())
}

func (op *fusedOp[T]) Hashcode() uint32 { return hashOf(op) }

func (op *fusedOp[T]) String() string { return fmt.Sprintf("%s#%d", op.k.kind(), op.id) }

func hashOf(op G.Op) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// DiffWRT reports which inputs are differentiable.
func (op *fusedOp[T]) DiffWRT(n int) []bool { return op.k.diffWRT() }

// SymDiff builds the backward node and the gradient readers.
func (op *fusedOp[T]) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if op.first < 0 {
		return make(G.Nodes, len(inputs)), nil
	}
	children := make(G.Nodes, 0, len(inputs)+2)
	children = append(children, inputs...)
	children = append(children, output, grad)
	b, err := G.ApplyOp(&bwdOp[T]{f: op, id: nextOpID()}, children...)
	if err != nil {
		return nil, fmt.Errorf("%v backward: %w", op, err)
	}
	ret := make(G.Nodes, len(inputs))
	for i, d := range op.k.diffWRT() {
		switch {
		case !d:
		case i == op.first:
			ret[i] = b
		default:
			r, err := G.ApplyOp(&readOp[T]{f: op, slot: i, id: nextOpID()}, b)
			if err != nil {
				return nil, fmt.Errorf("%v gradient %d: %w", op, i, err)
			}
			ret[i] = r
		}
	}
	return ret, nil
}

// bwdOp computes every input gradient of its forward op; its value is the
// gradient of the first differentiable input.
type bwdOp[T Float] struct {
	f  *fusedOp[T]
	id int64
}

func (op *bwdOp[T]) Arity() int { return len(op.f.ins) + 2 }

func (op *bwdOp[T]) Type() hm.Type {
	dt := dtypeOf[T]()
	ins := op.f.k.inShapes()
	ts := make(hm.Types, 0, len(ins)+3)
	for _, s := range ins {
		ts = append(ts, hmType(s, dt))
	}
	o := hmType(op.f.k.outShape(), dt)
	ts = append(ts, o, hmType(op.f.k.outShape(), dt), hmType(ins[op.f.first], dt))
	return hm.NewFnType(ts...)
}

func (op *bwdOp[T]) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.f.k.inShapes()[op.f.first].Clone(), nil
}

func (op *bwdOp[T]) Do(vals ...G.Value) (G.Value, error) {
	f := op.f
	ins := f.ins
	if len(vals) != len(ins)+2 {
		return nil, fmt.Errorf("%v: got %d inputs, want %d", op, len(vals), len(ins)+2)
	}
	for i := range ins {
		s, err := valueData[T](vals[i], f.sizes[i])
		if err != nil {
			return nil, fmt.Errorf("%v input %d: %w", op, i, err)
		}
		f.bin[i] = s
	}
	n := len(f.outBuf)
	out, err := valueData[T](vals[len(ins)], n)
	if err != nil {
		return nil, fmt.Errorf("%v output: %w", op, err)
	}
	dout, err := valueData[T](vals[len(ins)+1], n)
	if err != nil {
		return nil, fmt.Errorf("%v output gradient: %w", op, err)
	}
	f.allocGrads()
	f.dout = dout
	f.k.bwd(f.bin, out, dout, f.din)
	return f.dinDense[f.first], nil
}

func (op *bwdOp[T]) ReturnsPtr() bool     { return false }
func (op *bwdOp[T]) CallsExtern() bool    { return false }
func (op *bwdOp[T]) OverwritesInput() int { return -1 }
func (op *bwdOp[T]) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s#%d/%v/bwd#%d:slot%d", op.f.k.kind(), op.f.id, dtypeOf[T](), op.id, op.f.first)
	writeShapes(h, op.f.k.inShapes()...)
}
func (op *bwdOp[T]) Hashcode() uint32 { return hashOf(op) }
func (op *bwdOp[T]) String() string {
	return fmt.Sprintf("%s#%d.grad%d", op.f.k.kind(), op.f.id, op.f.first)
}

// readOp hands out the gradient of input slot computed by the backward
// node it reads (its only input, which orders it after the backward).
type readOp[T Float] struct {
	f    *fusedOp[T]
	slot int
	id   int64
}

func (op *readOp[T]) Arity() int { return 1 }
func (op *readOp[T]) Type() hm.Type {
	dt := dtypeOf[T]()
	ins := op.f.k.inShapes()
	return hm.NewFnType(hmType(ins[op.f.first], dt), hmType(ins[op.slot], dt))
}
func (op *readOp[T]) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.f.k.inShapes()[op.slot].Clone(), nil
}
func (op *readOp[T]) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 1 {
		return nil, fmt.Errorf("%v: got %d inputs, want 1", op, len(vals))
	}
	return op.f.dinDense[op.slot], nil
}
func (op *readOp[T]) ReturnsPtr() bool     { return false }
func (op *readOp[T]) CallsExtern() bool    { return false }
func (op *readOp[T]) OverwritesInput() int { return -1 }
func (op *readOp[T]) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s#%d/%v/read#%d:slot%d", op.f.k.kind(), op.f.id, dtypeOf[T](), op.id, op.slot)
	writeShapes(h, op.f.k.inShapes()[op.slot])
}
func (op *readOp[T]) Hashcode() uint32 { return hashOf(op) }
func (op *readOp[T]) String() string {
	return fmt.Sprintf("%s#%d.grad%d", op.f.k.kind(), op.f.id, op.slot)
}
