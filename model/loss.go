package model

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// CrossEntropy returns the token-mean cross-entropy of logits (N, V)
// against targets (N): the mean over rows with target ≥ 0 of
// logsumexp(logits[r]) − logits[r][target], a fused op with a stable
// hand-written logsumexp and float64 accumulation. A batch where every
// target is ignored gives loss 0 (and zero gradient), not NaN. The targets
// are copied; change them for later steps with SetCrossEntropyTargets.
//
// When logits is the output of one of this package's fused ops with an
// (N, V) output buffer (Graph.Logits, the lm_head), the loss works in
// place of that buffer, so that a training graph holds one (N, V) buffer
// instead of three (logits, softmax, dlogits): the forward overwrites the
// logits of every counted row with exp(logit − max), and the backward
// overwrites the whole buffer with dLoss/dlogits, which is also the
// gradient it hands to the lm_head's backward (which never reads its own
// output). After a Step with such a loss, Graph.Logits32 and Logits64
// therefore return the gradient, not the logits: nothing else may read the
// logits node (use a graph without a loss, Graph.CompileForward, for
// logits). With any other logits node (an input node, say) the loss keeps
// its own softmax and gradient buffers and leaves the logits alone.
func CrossEntropy(logits *G.Node, targets []int32) (*G.Node, error) {
	if logits == nil {
		return nil, errors.New("cross entropy: nil logits")
	}
	s := logits.Shape()
	if len(s) != 2 {
		return nil, fmt.Errorf("cross entropy: logits must be (N, V), got shape %v", s)
	}
	n, v := s[0], s[1]
	var op G.Op
	var set func([]int32) error
	switch logits.Dtype() {
	case tensor.Float32:
		op, set = newCrossEntropyOp[float32](logits, n, v)
	case tensor.Float64:
		op, set = newCrossEntropyOp[float64](logits, n, v)
	default:
		return nil, fmt.Errorf("cross entropy: unsupported dtype %v", logits.Dtype())
	}
	if err := set(targets); err != nil {
		return nil, err
	}
	loss, err := G.ApplyOp(op, logits)
	if err != nil {
		return nil, fmt.Errorf("cross entropy: %w", err)
	}
	return loss, nil
}

// SetCrossEntropyTargets replaces the targets of a loss node made by
// CrossEntropy (len N; negative = ignored).
func SetCrossEntropyTargets(loss *G.Node, targets []int32) error {
	if loss == nil {
		return errors.New("cross entropy: nil loss node")
	}
	switch op := loss.Op().(type) {
	case *fusedOp[float32]:
		if k, ok := op.k.(*crossEntropyOp[float32]); ok {
			return k.setTargets(targets)
		}
	case *fusedOp[float64]:
		if k, ok := op.k.(*crossEntropyOp[float64]); ok {
			return k.setTargets(targets)
		}
	}
	return errors.New("cross entropy: node was not made by CrossEntropy")
}

// CrossEntropyCount is the number of rows counted (target ≥ 0) by the last
// forward of a loss node made by CrossEntropy.
func CrossEntropyCount(loss *G.Node) int {
	switch op := loss.Op().(type) {
	case *fusedOp[float32]:
		if k, ok := op.k.(*crossEntropyOp[float32]); ok {
			return k.count
		}
	case *fusedOp[float64]:
		if k, ok := op.k.(*crossEntropyOp[float64]); ok {
			return k.count
		}
	}
	return 0
}

// newCrossEntropyOp builds the fused cross-entropy op over logits (n, v),
// in place of the logits' buffer when they are a fused op's (n, v) output
// (see CrossEntropy). It returns the op and its targets setter.
func newCrossEntropyOp[T Float](logits *G.Node, n, v int) (*fusedOp[T], func([]int32) error) {
	buf := inPlaceLogits[T](logits, n, v)
	if buf == nil {
		k := &crossEntropyOp[T]{n: n, v: v, targets: make([]int32, n), k: newCrossEntropyKernel[T](n, v)}
		return newFusedOp[T](k), k.setTargets
	}
	k := &crossEntropyOp[T]{n: n, v: v, targets: make([]int32, n), k: newCrossEntropyKernelInPlace[T](n, v, buf)}
	// The input gradient (slot 0) is the logits buffer itself.
	shared := func(slot, size int) []T {
		if slot == 0 && size == len(buf) {
			return buf
		}
		return nil
	}
	return newFusedOpShared[T](k, shared), k.setTargets
}

// inPlaceLogits returns the output buffer of the fused op producing logits
// when it has n·v elements (the buffer every forward of that op writes its
// output into), nil otherwise.
func inPlaceLogits[T Float](logits *G.Node, n, v int) []T {
	f, ok := logits.Op().(*fusedOp[T])
	if !ok || f.out == nil || len(f.outBuf) != n*v {
		return nil
	}
	return f.outBuf
}
