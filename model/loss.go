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
		k := &crossEntropyOp[float32]{n: n, v: v, targets: make([]int32, n), k: newCrossEntropyKernel[float32](n, v)}
		op, set = newFusedOp[float32](k), k.setTargets
	case tensor.Float64:
		k := &crossEntropyOp[float64]{n: n, v: v, targets: make([]int32, n), k: newCrossEntropyKernel[float64](n, v)}
		op, set = newFusedOp[float64](k), k.setTargets
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
