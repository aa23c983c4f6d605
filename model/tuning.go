package model

// tuning is the kernels' dispatch: when a loop is split across cores and
// which product loop a linear layer runs. Every kernel reads it from its
// tune field, nil meaning defaultTuning; a Graph or Decoder sets all of
// its kernels' with setTuning. Tests pass their own to reach the other
// paths on tiny shapes; no path changes a result beyond float rounding.
type tuning struct {
	// grainElems is the minimum work per chunk, in elements, before a
	// loop is split across cores (row loops: grainElems/(width+1) rows).
	grainElems int
	// gemvMaxRows is the most rows for which a column-split linear
	// forward runs one matrix-vector product per row rather than a
	// matrix-matrix product: BLAS gemm packs the weight matrix on every
	// call, which at one or a few rows (a decoder step) costs several
	// times the product itself.
	gemvMaxRows int
	// colSplitMaxRows is the most rows for which the linear forward
	// splits its work across cores by output columns (each chunk then
	// reads only its share of the weights) rather than by rows (each
	// chunk would read all of them): decoder steps and short prefills.
	colSplitMaxRows int
	// colGrainMACs is the minimum number of multiply-adds per chunk
	// before a column-split linear forward uses more than one core
	// (smaller products do not pay for the hand-off to a worker).
	colGrainMACs int
	// taskSplitBackward lets a linear backward on two workers compute dx
	// on one and dW, db on the other instead of splitting each by rows
	// and columns (one hand-off instead of two, whole BLAS calls).
	taskSplitBackward bool
	// vecGemm lets column-split forwards of float32 weights use the
	// assembly product kernels (vec.Gemm8/Gemm4 for 8 or 4 rows,
	// vec.Gemv and vec.DotAcc for one) instead of BLAS.
	vecGemm bool
}

// defaultTuning is the tuning of every kernel whose tune is nil. Nothing
// writes it.
var defaultTuning = tuning{
	grainElems:        8192,
	gemvMaxRows:       4,
	colSplitMaxRows:   64,
	colGrainMACs:      1 << 17,
	taskSplitBackward: true,
	vecGemm:           true,
}

// decodeTuning is what NewDecoder sets: defaultTuning with a column-split
// linear forward kept on the caller's core below 2^20 multiply-adds (the
// training default, 2^17, hands a batch-8 step of config small to the
// worker pool for every product, whose futex hand-offs cost more than
// they save). Measured with smbench on a quiet 2-core VM, three interleaved
// rounds, decode small tok/s: batch 8 14.8-20.0k vs 9.6-16.8k with
// defaultTuning (the removed two-core step: 16.2-21.1k), batch 1
// 12.7-13.0k vs 8.9-13.6k; gpt2s batch 1 unchanged (24.8-26.1 vs
// 23.0-28.2 tok/s: its larger products still split).
var decodeTuning = func() tuning {
	t := defaultTuning
	t.colGrainMACs = 1 << 20
	return t
}()

// tuned is t, or defaultTuning when t is nil.
func tuned(t *tuning) *tuning {
	if t == nil {
		return &defaultTuning
	}
	return t
}

// grainRows is the minimum number of rows of width elements per chunk.
func (t *tuning) grainRows(width int) int { return max(1, t.grainElems/(width+1)) }

// tunable is a fused op whose kernel reads a tuning.
type tunable interface{ setTuning(*tuning) }

// setTuning makes every kernel of g use t (nil: defaultTuning).
func (g *Graph) setTuning(t *tuning) {
	for _, n := range g.G.AllNodes() {
		if op, ok := n.Op().(tunable); ok {
			op.setTuning(t)
		}
	}
}

func (o *fusedOp[T]) setTuning(t *tuning) {
	if k, ok := o.k.(tunable); ok {
		k.setTuning(t)
	}
}

func (o *embedOp[T]) setTuning(t *tuning)        { o.k.tune = t }
func (o *layerNormOp[T]) setTuning(t *tuning)    { o.k.tune = t }
func (o *linearOp[T]) setTuning(t *tuning)       { o.k.tune = t }
func (o *geluLinearOp[T]) setTuning(t *tuning)   { o.gelu.tune, o.lin.tune = t, t }
func (o *crossEntropyOp[T]) setTuning(t *tuning) { o.k.tune = t }

// setTuning makes every kernel of d use t (nil: defaultTuning).
func (d *Decoder) setTuning(t *tuning) {
	d.emb.tune, d.ln.tune, d.gelu.tune, d.attn.tune, d.hl.tune = t, t, t, t, t
	for _, k := range []*linearKernel[float32]{&d.cAttn, &d.cProj, &d.cFc, &d.fProj, &d.head} {
		k.tune = t
	}
}
