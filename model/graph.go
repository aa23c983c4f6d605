package model

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Graph is the training graph of a GPT-2 model on gorgonia for a batch of
// B rows of T inputs, built from fused ops. Parameter nodes share their
// data with the Params they were built from: updating Params.List[i] in
// place is seen by the next Step.
type Graph struct {
	G *G.ExprGraph
	// Logits is the (B·T, V) output node.
	Logits *G.Node
	// ParamNodes are the parameter nodes in Params.List order.
	ParamNodes []*G.Node
	B, T       int
	// Params are the parameters the graph reads.
	Params *Params

	bs       *batchState
	compiled bool
}

// NewGraph builds the forward graph of p for batches of B rows of T inputs.
// Set the inputs of each step with SetBatch.
func NewGraph(p *Params, B, T int) (*Graph, error) {
	if p == nil {
		return nil, errors.New("model graph: nil params")
	}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("model graph: %w", err)
	}
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("model graph: batch shape B=%d T=%d must be positive", B, T)
	}
	if p.grads == nil { // Params not made by ZeroParams
		p.grads = &gradStore{}
	}
	g := &Graph{G: G.NewGraph(), B: B, T: T, Params: p, bs: newBatchState(B, T)}
	var err error
	if p.DType == F32 {
		err = buildGraph(g, func(q *Param) []float32 { return q.F32 })
	} else {
		err = buildGraph(g, func(q *Param) []float64 { return q.F64 })
	}
	if err != nil {
		return nil, fmt.Errorf("model graph: %w", err)
	}
	return g, nil
}

func buildGraph[T Float](g *Graph, data func(*Param) []T) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("building graph: %v", r)
		}
	}()
	cfg := g.Params.Cfg
	dt := dtypeOf[T]()
	N, D, V := g.B*g.T, cfg.NEmbd, cfg.VocabSize
	for _, q := range g.Params.List {
		v := tensor.New(tensor.WithShape(q.Shape...), tensor.WithBacking(data(q)))
		n := G.NewTensor(g.G, dt, len(q.Shape), G.WithShape(q.Shape...), G.WithName(q.Name), G.WithValue(v))
		g.ParamNodes = append(g.ParamNodes, n)
	}
	pn := g.ParamNodes
	// Parameter gradients live in p's gradient store, shared by every
	// graph of p (graphs of different batch shapes run one step at a time,
	// and a step's gradients are consumed before the next step).
	param := map[*G.Node]int{}
	for i, n := range g.ParamNodes {
		param[n] = i
	}
	// Buffers shared across layers. The gradient of an input that has a
	// single consumer (h → c_attn, qkv → attention, a → c_proj, h2 → c_fc,
	// f → the MLP's gelu+c_proj) is written by that consumer's backward
	// and read only by its producer's backward, in the same layer; every
	// backward op of layer l runs before any of layer l−1 (each needs the
	// gradient of layer l−1's output, which depends on all of layer l), so
	// one buffer per kind serves every layer. The residual stream's
	// gradients have two readers: x's gradient (written by ln_1 of layer l,
	// or ln_f, which add the residual's share themselves: layerNormOp.resid)
	// is read by the next op back (mlp c_proj of layer l−1, the embedding)
	// and by ln_2 of layer l−1 (through that c_proj's output gradient), both
	// before ln_1 of layer l−1 writes the buffer again; likewise x2's (ln_2)
	// is read by attn c_proj and ln_1 of the same layer before ln_2 of the
	// layer below writes it. Scratch buffers (the MLP's GELU output, its
	// tanh and its gradient) are recomputed by each layer's backward.
	shared := map[string][]T{}
	buf := func(name string, n int) []T {
		b, ok := shared[name]
		if !ok {
			b = make([]T, n)
			shared[name] = b
		}
		if len(b) != n {
			panic(fmt.Sprintf("shared buffer %s: %d elements, want %d", name, len(b), n))
		}
		return b
	}
	// applyShared applies k to in; the gradient of in[0] goes to the
	// buffer shared under name ("" : its own), those of parameters to the
	// store.
	applyShared := func(name string, k opKernel[T], in ...*G.Node) (*G.Node, *fusedOp[T]) {
		if err != nil {
			return nil, nil
		}
		ins := append([]*G.Node(nil), in...)
		op := newFusedOpShared[T](k, func(slot, n int) []T {
			if i, ok := param[ins[slot]]; ok {
				return paramGrad[T](g.Params, i)
			}
			if slot != 0 || name == "" {
				return nil
			}
			return buf(name, n)
		})
		var n *G.Node
		n, err = G.ApplyOp(op, in...)
		return n, op
	}
	eps := cfg.LayerNormEpsilon
	emb := &embedOp[T]{n: N, d: D, v: V, p: cfg.NPositions, bs: g.bs, k: embedKernel[T]{d: D}, tied: true}
	x, _ := applyShared("", emb, pn[0], pn[1])
	for l := 0; l < cfg.NLayer; l++ {
		w := pn[2+l*perLayer:]
		ln1 := newLayerNormOp[T](N, D, eps)
		h, _ := applyShared("dx", ln1, x, w[pLn1W], w[pLn1B])                                                                // (N, D)
		qkv, _ := applyShared("dh", newLinearOp[T]("c_attn", N, D, 3*D, false, true, false), h, w[pAttnW], w[pAttnB])        // (N, 3D)
		a, _ := applyShared("dqkv", newAttentionOp[T](g.bs, cfg.NHead, D), qkv)                                              // (N, D)
		x2, proj := applyShared("da", newLinearOp[T]("attn.c_proj", N, D, D, false, true, true), a, w[pProjW], w[pProjB], x) // (N, D)
		ln2 := newLayerNormOp[T](N, D, eps)
		h2, _ := applyShared("dx2", ln2, x2, w[pLn2W], w[pLn2B])                                                // (N, D)
		f, _ := applyShared("dh2", newLinearOp[T]("c_fc", N, D, 4*D, false, true, false), h2, w[pFcW], w[pFcB]) // (N, 4D)
		mlp := newGELULinearOp[T](N, 4*D, D, buf("gelu", N*4*D), buf("dgelu", N*4*D), buf("gelu.tanh", N*4*D))
		var fproj *fusedOp[T]
		x, fproj = applyShared("df", mlp, f, w[pFcProjW], w[pFcProjB], x2) // (N, D)
		ln1.resid, ln2.resid = proj, fproj
	}
	nl := len(pn)
	h, _ := applyShared("dx", newLayerNormOp[T](N, D, eps), x, pn[nl-2], pn[nl-1]) // (N, D)
	var head *fusedOp[T]
	g.Logits, head = applyShared("dhf", newLinearOp[T]("lm_head", N, D, V, true, false, false), h, pn[0]) // (N, V)
	emb.head = head
	return err
}

// SetBatch sets the inputs of the next steps: token ids, position ids and
// parent pointers, each (B·T) row-major. A parent is -1 (the row's first
// input, or padding) or the index of an earlier input of the same row;
// each input attends to itself and its ancestors (DESIGN 3.1).
func (g *Graph) SetBatch(inputs, positions, parents []int32) error {
	return g.bs.set(inputs, positions, parents, g.Params.Cfg.VocabSize, g.Params.Cfg.NPositions)
}

// Machine runs a compiled graph: forward and backward of one loss.
type Machine struct {
	g     *Graph
	vm    G.VM
	loss  *G.Node
	grads G.Nodes
	g32   [][]float32
	g64   [][]float64
}

// Compile differentiates loss (a scalar node of g) with respect to every
// parameter and compiles forward and backward into a tape machine. A graph
// can be compiled once.
func (g *Graph) Compile(loss *G.Node) (m *Machine, err error) {
	if g.compiled {
		return nil, errors.New("model graph: already compiled")
	}
	if loss == nil || !loss.IsScalar() {
		return nil, errors.New("model graph: loss must be a scalar node")
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("model graph: compiling: %v", r)
		}
	}()
	grads, err := G.Grad(loss, g.ParamNodes...)
	if err != nil {
		return nil, fmt.Errorf("model graph: gradients: %w", err)
	}
	vm := G.NewTapeMachine(g.G)
	g.compiled = true
	return &Machine{g: g, vm: vm, loss: loss, grads: grads,
		g32: make([][]float32, len(grads)), g64: make([][]float64, len(grads))}, nil
}

// CompileForward compiles the forward pass only (inference: logits, no
// loss, no gradients). A graph can be compiled once.
func (g *Graph) CompileForward() (m *Machine, err error) {
	if g.compiled {
		return nil, errors.New("model graph: already compiled")
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("model graph: compiling: %v", r)
		}
	}()
	vm := G.NewTapeMachine(g.G)
	g.compiled = true
	return &Machine{g: g, vm: vm}, nil
}

// Step runs forward and backward on the current batch. Gradients are
// recomputed from zero every step (nothing accumulates across steps).
func (m *Machine) Step() error {
	if !m.g.bs.ok {
		return fmt.Errorf("model step: %w", errNoBatch)
	}
	m.vm.Reset()
	if err := m.vm.RunAll(); err != nil {
		return fmt.Errorf("model step: %w", err)
	}
	return nil
}

// Close releases the machine.
func (m *Machine) Close() error { return m.vm.Close() }

// Loss is the loss value of the last Step.
func (m *Machine) Loss() float64 {
	if m.loss == nil {
		return 0
	}
	switch v := m.loss.Value().(type) {
	case *G.F32:
		return float64(*v)
	case *G.F64:
		return float64(*v)
	case *tensor.Dense:
		switch x := v.Data().(type) {
		case float32:
			return float64(x)
		case float64:
			return x
		}
	}
	return 0
}

// Grads returns the gradients of the last Step in Params.List order
// (float32 graphs; nil otherwise). The slices belong to the Params'
// gradient store, shared by every graph of those Params, and are
// overwritten by the next Step of any of them.
func (m *Machine) Grads() [][]float32 {
	if m.g.Params.DType != F32 {
		return nil
	}
	for i, n := range m.grads {
		m.g32[i] = denseData[float32](n.Value())
	}
	return m.g32
}

// Grads64 is Grads for float64 graphs.
func (m *Machine) Grads64() [][]float64 {
	if m.g.Params.DType != F64 {
		return nil
	}
	for i, n := range m.grads {
		m.g64[i] = denseData[float64](n.Value())
	}
	return m.g64
}

// Logits32 returns the (B·T, V) logits of the last forward of a float32
// graph (nil otherwise), owned by the graph.
func (g *Graph) Logits32() []float32 {
	if g.Params.DType != F32 || g.Logits.Value() == nil {
		return nil
	}
	return denseData[float32](g.Logits.Value())
}

// Logits64 is Logits32 for float64 graphs.
func (g *Graph) Logits64() []float64 {
	if g.Params.DType != F64 || g.Logits.Value() == nil {
		return nil
	}
	return denseData[float64](g.Logits.Value())
}

func denseData[T Float](v G.Value) []T {
	d, ok := v.(*tensor.Dense)
	if !ok || d.Dtype() != dtypeOf[T]() {
		return nil
	}
	s, err := valueData[T](d, d.Size())
	if err != nil {
		return nil
	}
	return s
}
