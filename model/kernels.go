package model

import (
	"math"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"

	"smtrain/internal/parallel"
	"smtrain/model/internal/vec"
)

// Float is the element type of the kernels.
type Float interface{ float32 | float64 }

// Kernels in the style of llm.c: each layer is a forward/backward pair over
// flat row-major slices; backward accumulates (+=) into the gradients it is
// given when acc is true, as llm.c does, and overwrites them when acc is
// false (the fused ops own fresh gradient buffers each step, so they skip
// zeroing them); matrix work goes through BLAS (gonum blas32/blas64, OpenBLAS with
// the openblas build tag) and rows/heads are split across cores with
// parallel.For. Each kernel struct owns the buffers it needs between forward
// and backward (saved statistics, scratch) so steps do not allocate.

func isF32[T Float]() bool {
	var z T
	return unsafe.Sizeof(z) == 4
}

func as32[T Float](s []T) []float32 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&s[0])), len(s))
}

func as64[T Float](s []T) []float64 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(&s[0])), len(s))
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices:
// op(A) is (m, k), op(B) is (k, n), C is (m, n), with leading dimensions
// lda, ldb, ldc (strided sub-matrices are allowed).
func gemm[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	if isF32[T]() {
		blas32.Implementation().Sgemm(trans(tA), trans(tB), m, n, k, float32(alpha), as32(a), lda, as32(b), ldb, float32(beta), as32(c), ldc)
	} else {
		blas64.Implementation().Dgemm(trans(tA), trans(tB), m, n, k, float64(alpha), as64(a), lda, as64(b), ldb, float64(beta), as64(c), ldc)
	}
}

// gemv computes y = alpha·op(A)·x + beta·y for a row-major (m, n) matrix
// A with leading dimension lda; x and y are contiguous.
func gemv[T Float](tA bool, m, n int, alpha T, a []T, lda int, x []T, beta T, y []T) {
	if m == 0 || n == 0 {
		return
	}
	if isF32[T]() {
		blas32.Implementation().Sgemv(trans(tA), m, n, float32(alpha), as32(a), lda, as32(x), 1, float32(beta), as32(y), 1)
	} else {
		blas64.Implementation().Dgemv(trans(tA), m, n, float64(alpha), as64(a), lda, as64(x), 1, float64(beta), as64(y), 1)
	}
}

func zero[T Float](s []T) {
	for i := range s {
		s[i] = 0
	}
}

// ---------------------------------------------------------------------------
// Embedding: out[r] = wte[tok[r]] + wpe[pos[r]].

type embedKernel[T Float] struct {
	d    int
	tune *tuning // nil: defaultTuning
	// per call
	tok, pos         []int32
	wte, wpe, out    []T
	dout, dwte, dwpe []T
	acc              bool
}

// The embedding's loops, each the kernel viewed as the parallel.Task of
// that loop: rows of the forward; columns of the backward's scatter.
type (
	embedForwardTask[T Float]  embedKernel[T]
	embedBackwardTask[T Float] embedKernel[T]
)

// forward: tok, pos (n); wte (V, D); wpe (P, D); out (n, D).
func (k *embedKernel[T]) forward(tok, pos []int32, wte, wpe, out []T) {
	k.tok, k.pos, k.wte, k.wpe, k.out = tok, pos, wte, wpe, out
	parallel.For(len(tok), tuned(k.tune).grainRows(k.d), (*embedForwardTask[T])(k))
}

// backward: dwte (V, D) += scatter of dout, dwpe (P, D) likewise.
func (k *embedKernel[T]) backward(tok, pos []int32, dout, dwte, dwpe []T, acc bool) {
	k.tok, k.pos, k.dout, k.dwte, k.dwpe, k.acc = tok, pos, dout, dwte, dwpe, acc
	// Split over columns: rows sharing a token never race, and the order
	// of additions is fixed.
	parallel.For(k.d, 1+tuned(k.tune).grainElems/(len(tok)+1), (*embedBackwardTask[T])(k))
}

// RunRange embeds rows [lo, hi).
func (t *embedForwardTask[T]) RunRange(_, lo, hi int) {
	k := (*embedKernel[T])(t)
	d := k.d
	for r := lo; r < hi; r++ {
		o := k.out[r*d : r*d+d]
		te := k.wte[int(k.tok[r])*d:]
		pe := k.wpe[int(k.pos[r])*d:]
		for j := range o {
			o[j] = te[j] + pe[j]
		}
	}
}

// RunRange scatters columns [lo, hi) of every row's gradient.
func (t *embedBackwardTask[T]) RunRange(_, lo, hi int) {
	k := (*embedKernel[T])(t)
	d := k.d
	if !k.acc {
		for i := 0; i < len(k.dwte); i += d {
			zero(k.dwte[i+lo : i+hi])
		}
		for i := 0; i < len(k.dwpe); i += d {
			zero(k.dwpe[i+lo : i+hi])
		}
	}
	for r := range k.tok {
		g := k.dout[r*d+lo : r*d+hi]
		te := k.dwte[int(k.tok[r])*d+lo : int(k.tok[r])*d+hi]
		pe := k.dwpe[int(k.pos[r])*d+lo : int(k.pos[r])*d+hi]
		for j, v := range g {
			te[j] += v
			pe[j] += v
		}
	}
}

// ---------------------------------------------------------------------------
// Layer norm over the last dimension: y = (x-mean)/sqrt(var+eps)·w + b.

type layerNormKernel[T Float] struct {
	d          int
	tune       *tuning // nil: defaultTuning
	eps        float64
	mean, rstd []T // (n) saved by forward
	part       []T // (chunks, 2D) partial dw|db
	// per call
	x, w, b, y, dy, dx, dw, db []T
	acc                        bool
}

// The layer norm's two loops, each the kernel viewed as the parallel.Task
// of that loop: rows of the forward, rows of the backward.
type (
	lnForwardTask[T Float]  layerNormKernel[T]
	lnBackwardTask[T Float] layerNormKernel[T]
)

func newLayerNormKernel[T Float](n, d int, eps float64) *layerNormKernel[T] {
	return &layerNormKernel[T]{d: d, eps: eps, mean: make([]T, n), rstd: make([]T, n), part: make([]T, parallel.MaxChunks()*2*d)}
}

// forward: x (n, D), w, b (D), y (n, D); n = len(x)/D.
func (k *layerNormKernel[T]) forward(x, w, b, y []T) {
	k.x, k.w, k.b, k.y = x, w, b, y
	parallel.For(len(x)/k.d, tuned(k.tune).grainRows(k.d), (*lnForwardTask[T])(k))
}

// backward accumulates dx (n, D), dw, db (D) given dy (n, D) and the saved
// statistics of the last forward on x.
func (k *layerNormKernel[T]) backward(x, w, dy, dx, dw, db []T, acc bool) {
	k.x, k.w, k.dy, k.dx, k.dw, k.db, k.acc = x, w, dy, dx, dw, db, acc
	n := len(x) / k.d
	grain := tuned(k.tune).grainRows(k.d)
	c := parallel.NumChunks(n, grain)
	zero(k.part[:c*2*k.d])
	parallel.For(n, grain, (*lnBackwardTask[T])(k))
	d := k.d
	if !acc {
		zero(dw)
		zero(db)
	}
	for ch := 0; ch < c; ch++ {
		p := k.part[ch*2*d:]
		for j := 0; j < d; j++ {
			dw[j] += p[j]
			db[j] += p[d+j]
		}
	}
}

// RunRange normalises rows [lo, hi), saving their statistics.
func (t *lnForwardTask[T]) RunRange(_, lo, hi int) {
	k := (*layerNormKernel[T])(t)
	d := k.d
	w, b := k.w[:d], k.b[:d]
	for r := lo; r < hi; r++ {
		x := k.x[r*d : r*d+d]
		y := k.y[r*d : r*d+d]
		k.mean[r], k.rstd[r] = lnForwardRow(x, w, b, y, k.eps)
	}
}

// RunRange computes dx for rows [lo, hi) and adds their dw, db terms to
// chunk's partial sums.
func (t *lnBackwardTask[T]) RunRange(chunk, lo, hi int) {
	k := (*layerNormKernel[T])(t)
	d := k.d
	w := k.w[:d]
	p := k.part[chunk*2*d : chunk*2*d+2*d]
	pw, pb := p[:d], p[d:2*d]
	for r := lo; r < hi; r++ {
		x := k.x[r*d : r*d+d]
		dy := k.dy[r*d : r*d+d]
		dx := k.dx[r*d : r*d+d]
		m, rs := k.mean[r], k.rstd[r]
		if isF32[T]() && vec.LNBackwardRow(as32(x), as32(dy), as32(w), as32(dx), as32(pw), as32(pb), float32(m), float32(rs), k.acc) {
			continue
		}
		var sdn, sdnn T
		for j, v := range x {
			nj := (v - m) * rs
			g := dy[j]
			dn := w[j] * g
			sdn += dn
			sdnn += dn * nj
			pw[j] += nj * g
			pb[j] += g
		}
		sdn /= T(d)
		sdnn /= T(d)
		if k.acc {
			for j, v := range x {
				nj := (v - m) * rs
				dx[j] += (w[j]*dy[j] - sdn - nj*sdnn) * rs
			}
		} else {
			for j, v := range x {
				nj := (v - m) * rs
				dx[j] = (w[j]*dy[j] - sdn - nj*sdnn) * rs
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Linear (HF Conv1D layout): y = x @ W + b (+ r), x (n, C), W (C, OC),
// b (OC), optional residual r (n, OC). With transW, W is (OC, C) and
// y = x @ Wᵀ (the tied LM head).

type linearKernel[T Float] struct {
	c, oc  int
	transW bool
	tune   *tuning // nil: defaultTuning
	ones   []T     // (n) of 1s: db = dyᵀ·1 as a matrix-vector product
	// per call
	x, w, b, r, y, dy, dx, dw, db []T
	n                             int
	beta                          T // 1 to accumulate, 0 to overwrite
}

// The linear kernel's loops, each the kernel viewed as the parallel.Task
// of that loop (a conversion, no allocation):
type (
	// forward of many rows: rows [lo, hi) as one BLAS gemm
	linRowsTask[T Float] linearKernel[T]
	// forward of few rows (the decoder's steps, short prefills): column
	// blocks [lo, hi) of every row, each chunk reading only its share of W
	linColsTask[T Float] linearKernel[T]
	// backward: dx for rows [lo, hi)
	linDxTask[T Float] linearKernel[T]
	// backward: dW and db for output columns [lo, hi)
	linDwTask[T Float] linearKernel[T]
	// backward on two workers: item 0 is dx for every row, item 1 dW and
	// db for every column (one hand-off, whole BLAS calls)
	linDxDwTask[T Float] linearKernel[T]
)

// colBlock is the width of the column blocks a column-split forward
// distributes (whole cache lines of y per chunk).
const colBlock = 16

// forward: y (n, OC) = x @ W + b + r; b and r may be nil.
func (k *linearKernel[T]) forward(x, w, b, r, y []T) {
	k.x, k.w, k.b, k.r, k.y = x, w, b, r, y
	k.n = len(x) / k.c
	tn := tuned(k.tune)
	if k.n <= tn.colSplitMaxRows {
		nb := (k.oc + colBlock - 1) / colBlock
		parallel.For(nb, max(1, tn.colGrainMACs/(k.n*k.c*colBlock+1)), (*linColsTask[T])(k))
		return
	}
	parallel.For(k.n, tn.grainRows(k.c+k.oc), (*linRowsTask[T])(k))
}

// backward accumulates dx (n, C), dw, db given dy (n, OC). Any of dx, dw,
// db may be nil (not needed). The residual's gradient is dy itself.
func (k *linearKernel[T]) backward(x, w, dy, dx, dw, db []T, acc bool) {
	k.x, k.w, k.dy, k.dx, k.dw, k.db = x, w, dy, dx, dw, db
	k.n = len(x) / k.c
	if db != nil && len(k.ones) < k.n { // before the chunks share it
		k.ones = make([]T, k.n)
		for i := range k.ones {
			k.ones[i] = 1
		}
	}
	k.beta = 0
	if acc {
		k.beta = 1
	}
	tn := tuned(k.tune)
	if dx != nil && (dw != nil || db != nil) && parallel.MaxChunks() == 2 && tn.taskSplitBackward &&
		k.n*k.c*k.oc >= 2*tn.grainElems {
		// Two workers: dx on one, dW and db on the other (the same number
		// of multiply-adds), each as one whole BLAS call.
		parallel.For(2, 1, (*linDxDwTask[T])(k))
		return
	}
	if dx != nil {
		parallel.For(k.n, tn.grainRows(k.c+k.oc), (*linDxTask[T])(k))
	}
	if dw != nil || db != nil {
		parallel.For(k.oc, 1+tn.grainElems/(k.n*(k.c+1)+1), (*linDwTask[T])(k))
	}
}

// RunRange computes y for rows [lo, hi): y = b (+ r), then += x @ W.
func (t *linRowsTask[T]) RunRange(_, lo, hi int) {
	k := (*linearKernel[T])(t)
	c, oc, m := k.c, k.oc, hi-lo
	y := k.y[lo*oc : hi*oc]
	switch {
	case k.r != nil && k.b != nil:
		r := k.r[lo*oc : hi*oc]
		for i := 0; i < m; i++ {
			for j := 0; j < oc; j++ {
				y[i*oc+j] = r[i*oc+j] + k.b[j]
			}
		}
	case k.r != nil:
		copy(y, k.r[lo*oc:hi*oc])
	case k.b != nil:
		for i := 0; i < m; i++ {
			copy(y[i*oc:i*oc+oc], k.b)
		}
	default:
		zero(y)
	}
	if k.transW {
		gemm(false, true, m, oc, c, 1, k.x[lo*c:], c, k.w, c, 1, y, oc)
	} else {
		gemm(false, false, m, oc, c, 1, k.x[lo*c:], c, k.w, oc, 1, y, oc)
	}
}

// RunRange computes column blocks [lo, hi) (colBlock columns each) of
// every row of y: y = b (+ r), then += x @ W through the vector kernels
// (8 or 4 rows at a time, or one) or BLAS.
func (t *linColsTask[T]) RunRange(_, lo, hi int) {
	k := (*linearKernel[T])(t)
	c, oc := k.c, k.oc
	tn := tuned(k.tune)
	lo, hi = lo*colBlock, min(hi*colBlock, oc)
	n, w := k.n, hi-lo
	for i := 0; i < n; i++ {
		y := k.y[i*oc+lo : i*oc+hi]
		switch {
		case k.r != nil && k.b != nil:
			r, b := k.r[i*oc+lo:i*oc+hi], k.b[lo:hi]
			for j := range y {
				y[j] = r[j] + b[j]
			}
		case k.r != nil:
			copy(y, k.r[i*oc+lo:i*oc+hi])
		case k.b != nil:
			copy(y, k.b[lo:hi])
		default:
			zero(y)
		}
	}
	r0 := 0 // rows before r0 are done
	if isF32[T]() && !k.transW && tn.vecGemm && n >= 4 {
		// 8 rows at a time through the AVX-512 kernel, 4 through the
		// AVX2 one (weights read once per 8 or 4 rows, no packing;
		// the same arithmetic), their tail columns through BLAS
		for ; r0+8 <= n && vec.HaveAVX512; r0 += 8 {
			x, y := as32(k.x[r0*c:]), as32(k.y[r0*oc+lo:])
			d := vec.Gemm8(c, w, x, c, as32(k.w[lo:]), oc, y, oc)
			for h := 0; h < 8; h += 4 {
				e := d + vec.Gemm4(c, w-d, x[h*c:], c, as32(k.w[lo+d:]), oc, y[h*oc+d:], oc)
				if e < w {
					gemm(false, false, 4, w-e, c, 1, k.x[(r0+h)*c:], c, k.w[lo+e:], oc, 1, k.y[(r0+h)*oc+lo+e:], oc)
				}
			}
		}
		for ; r0+4 <= n; r0 += 4 {
			d := vec.Gemm4(c, w, as32(k.x[r0*c:]), c, as32(k.w[lo:]), oc, as32(k.y[r0*oc+lo:]), oc)
			if d < w {
				gemm(false, false, 4, w-d, c, 1, k.x[r0*c:], c, k.w[lo+d:], oc, 1, k.y[r0*oc+lo+d:], oc)
			}
		}
	}
	switch rows := n - r0; {
	case rows == 0:
	case rows > tn.gemvMaxRows && k.transW: // y[:, lo:hi] += x @ W[lo:hi, :]ᵀ
		gemm(false, true, rows, w, c, 1, k.x[r0*c:], c, k.w[lo*c:], c, 1, k.y[r0*oc+lo:], oc)
	case rows > tn.gemvMaxRows: // y[:, lo:hi] += x @ W[:, lo:hi]
		gemm(false, false, rows, w, c, 1, k.x[r0*c:], c, k.w[lo:], oc, 1, k.y[r0*oc+lo:], oc)
	default:
		for i := r0; i < n; i++ {
			x, y := k.x[i*c:i*c+c], k.y[i*oc+lo:i*oc+hi]
			if k.transW { // y[lo:hi] += W[lo:hi, :] x
				if !isF32[T]() || !tn.vecGemm || !vec.DotAcc(as32(x), as32(k.w[lo*c:]), c, as32(y)) {
					gemv(false, w, c, 1, k.w[lo*c:], c, x, 1, y)
				}
			} else { // y[lo:hi] += W[:, lo:hi]ᵀ x
				d := 0
				if isF32[T]() && tn.vecGemm {
					// the AVX2 one-row kernel; BLAS for its tail columns
					d = vec.Gemv(as32(x), as32(k.w[lo:]), oc, as32(y))
				}
				if d < w {
					gemv(true, c, w-d, 1, k.w[lo+d:], oc, x, 1, y[d:])
				}
			}
		}
	}
}

func (t *linDxTask[T]) RunRange(_, lo, hi int) { (*linearKernel[T])(t).dxRange(lo, hi) }
func (t *linDwTask[T]) RunRange(_, lo, hi int) { (*linearKernel[T])(t).dwRange(lo, hi) }

func (t *linDxDwTask[T]) RunRange(_, lo, hi int) {
	k := (*linearKernel[T])(t)
	if lo == 0 {
		k.dxRange(0, k.n)
	}
	if hi == 2 {
		k.dwRange(0, k.oc)
	}
}

// dxRange computes dx for rows [lo, hi).
func (k *linearKernel[T]) dxRange(lo, hi int) {
	c, oc, m := k.c, k.oc, hi-lo
	if k.transW { // W (OC, C): dx += dy @ W
		gemm(false, false, m, c, oc, 1, k.dy[lo*oc:], oc, k.w, c, k.beta, k.dx[lo*c:], c)
	} else { // W (C, OC): dx += dy @ Wᵀ
		gemm(false, true, m, c, oc, 1, k.dy[lo*oc:], oc, k.w, oc, k.beta, k.dx[lo*c:], c)
	}
}

// dwRange computes dW and db for output columns [lo, hi).
func (k *linearKernel[T]) dwRange(lo, hi int) {
	c, oc, m := k.c, k.oc, hi-lo
	if k.dw != nil {
		if k.transW { // dW[lo:hi, :] += dy[:, lo:hi]ᵀ @ x
			gemm(true, false, m, c, k.n, 1, k.dy[lo:], oc, k.x, c, k.beta, k.dw[lo*c:], c)
		} else { // dW[:, lo:hi] += xᵀ @ dy[:, lo:hi]
			gemm(true, false, c, m, k.n, 1, k.x, c, k.dy[lo:], oc, k.beta, k.dw[lo:], oc)
		}
	}
	if k.db != nil { // db[lo:hi] (+)= dy[:, lo:hi]ᵀ · 1 (backward sized ones)
		if k.beta == 0 { // explicit: BLAS beta = 0 need not clear a NaN
			zero(k.db[lo:hi])
		}
		gemv(true, k.n, m, 1, k.dy[lo:], oc, k.ones[:k.n], 1, k.db[lo:hi])
	}
}

// ---------------------------------------------------------------------------
// GELU, tanh approximation: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).

const geluS = 0.7978845608028654 // sqrt(2/pi)

type geluKernel[T Float] struct {
	th   []T     // tanh saved by forward
	tune *tuning // nil: defaultTuning
	// per call
	x, y, dy, dx []T
	acc          bool
}

// The GELU's loops, each the kernel viewed as the parallel.Task of that
// loop: elements of the forward, elements of the backward.
type (
	geluForwardTask[T Float]  geluKernel[T]
	geluBackwardTask[T Float] geluKernel[T]
)

func newGELUKernel[T Float](n int) *geluKernel[T] { return &geluKernel[T]{th: make([]T, n)} }

// forward: y = gelu(x), elementwise over len(x).
func (k *geluKernel[T]) forward(x, y []T) {
	k.x, k.y = x, y
	parallel.For(len(x), tuned(k.tune).grainElems/8, (*geluForwardTask[T])(k))
}

// backward: dx += gelu'(x)·dy, using the tanh saved by the last forward.
func (k *geluKernel[T]) backward(x, dy, dx []T, acc bool) {
	k.x, k.dy, k.dx, k.acc = x, dy, dx, acc
	parallel.For(len(x), tuned(k.tune).grainElems/4, (*geluBackwardTask[T])(k))
}

// RunRange computes y and the saved tanh for elements [lo, hi).
func (t *geluForwardTask[T]) RunRange(_, lo, hi int) {
	k := (*geluKernel[T])(t)
	x, y, th := k.x[lo:hi], k.y[lo:hi], k.th[lo:hi]
	if isF32[T]() {
		x32, y32, th32 := as32(x), as32(y), as32(th)
		v := vec.GELUForward(x32, y32, th32)
		geluForward32(x32[v:], y32[v:], th32[v:])
		return
	}
	for i, v := range x {
		u := geluS * (float64(v) + 0.044715*float64(v)*float64(v)*float64(v))
		t := T(math.Tanh(u))
		th[i] = t
		y[i] = 0.5 * v * (1 + t)
	}
}

// RunRange computes dx for elements [lo, hi).
func (t *geluBackwardTask[T]) RunRange(_, lo, hi int) {
	k := (*geluKernel[T])(t)
	x, th := k.x[lo:hi], k.th[lo:hi]
	dy, dx := k.dy[lo:hi], k.dx[lo:hi]
	dy, dx, th = dy[:len(x)], dx[:len(x)], th[:len(x)]
	if isF32[T]() {
		v := vec.GELUBackward(as32(x), as32(th), as32(dy), as32(dx), k.acc)
		x, th, dy, dx = x[v:], th[v:], dy[v:], dx[v:]
	}
	if k.acc {
		for i, v := range x {
			t := th[i]
			dx[i] += (0.5*(1+t) + 0.5*v*(1-t*t)*geluS*(1+3*0.044715*v*v)) * dy[i]
		}
		return
	}
	for i, v := range x {
		t := th[i]
		dx[i] = (0.5*(1+t) + 0.5*v*(1-t*t)*geluS*(1+3*0.044715*v*v)) * dy[i]
	}
}

// geluForward32 is the float32 GELU forward with tanh32 (fastmath_test.go) inlined by hand
// (the compiler does not inline it): y = ½x(1 + t), t = tanh(u) saved in th.
func geluForward32(x, y, th []float32) {
	y, th = y[:len(x)], th[:len(x)]
	for i, v := range x {
		u := geluS * (v + 0.044715*v*v*v)
		const clamp = 7.90531110763549805
		if u > clamp {
			u = clamp
		} else if u < -clamp {
			u = -clamp
		}
		u2 := u * u
		u4 := u2 * u2
		p01 := float32(4.89352455891786e-03) + float32(6.37261928875436e-04)*u2
		p23 := float32(1.48572235717979e-05) + float32(5.12229709037114e-08)*u2
		p45 := float32(-8.60467152213735e-11) + float32(2.00018790482477e-13)*u2
		p := (p01 + p23*u4) + (p45+float32(-2.76076847742355e-16)*u4)*(u4*u4)
		q := (float32(4.89352518554385e-03) + float32(2.26843463243900e-03)*u2) +
			(float32(1.18534705686654e-04)+float32(1.19825839466702e-06)*u2)*u4
		t := u * p / q
		th[i] = t
		y[i] = 0.5 * v * (1 + t)
	}
}

// ---------------------------------------------------------------------------
// Masked multi-head attention over qkv (B·T, 3D) laid out as HF GPT-2's
// c_attn output: q, k, v blocks of D columns, heads contiguous (hs columns
// each) inside every block. mask (B, T, T) is 1 where input j is i itself
// or an ancestor of i in its row (a subset of the causal mask).

// attnBlock is the row-block size of the attention products: only blocks
// on or left of the diagonal are computed, about half of the T×T work
// for long rows (DESIGN 3.1's mask never reaches right of the diagonal).
const attnBlock = 64

type attentionKernel[T Float] struct {
	b, t, h, d int
	att        []T // (B, H, T, T) softmax probabilities saved by forward
	scratch    []T // (chunks, T, T) dP
	mask       []uint8
	// per call
	qkv, out, dout, dqkv []T
	bwd                  bool
	beta                 T
}

func newAttentionKernel[T Float](b, t, h, d int, mask []uint8) *attentionKernel[T] {
	return &attentionKernel[T]{b: b, t: t, h: h, d: d, mask: mask,
		att: make([]T, b*h*t*t), scratch: make([]T, parallel.MaxChunks()*t*t)}
}

// forward: out (B·T, D) = attention(qkv (B·T, 3D)).
func (k *attentionKernel[T]) forward(qkv, out []T) {
	k.qkv, k.out, k.bwd = qkv, out, false
	parallel.For(k.b*k.h, 1, k)
}

// backward accumulates dqkv (B·T, 3D) given dout (B·T, D).
func (k *attentionKernel[T]) backward(qkv, dout, dqkv []T, acc bool) {
	k.qkv, k.dout, k.dqkv, k.bwd = qkv, dout, dqkv, true
	k.beta = 0
	if acc {
		k.beta = 1
	}
	parallel.For(k.b*k.h, 1, k)
}

func (k *attentionKernel[T]) RunRange(chunk, lo, hi int) {
	T_, D, hs := k.t, k.d, k.d/k.h
	D3 := 3 * D
	scale := T(1 / math.Sqrt(float64(hs)))
	for bh := lo; bh < hi; bh++ {
		b, h := bh/k.h, bh%k.h
		base := b * T_ * D3
		q := k.qkv[base+h*hs:]
		kk := k.qkv[base+D+h*hs:]
		v := k.qkv[base+2*D+h*hs:]
		P := k.att[bh*T_*T_ : (bh+1)*T_*T_]
		mask := k.mask[b*T_*T_ : (b+1)*T_*T_]
		if !k.bwd {
			// S = scale · Q Kᵀ  (T, T), lower triangle by row blocks:
			// rows r0..r1 need keys 0..r1 only (the mask is causal).
			for r0 := 0; r0 < T_; r0 += attnBlock {
				r1 := min(T_, r0+attnBlock)
				gemm(false, true, r1-r0, r1, hs, scale, q[r0*D3:], D3, kk, D3, 0, P[r0*T_:], T_)
			}
			for i := 0; i < T_; i++ {
				row := P[i*T_ : i*T_+T_]
				mrow := mask[i*T_ : i*T_+T_]
				mx := T(math.Inf(-1))
				for j := 0; j <= i; j++ {
					if mrow[j] != 0 && row[j] > mx {
						mx = row[j]
					}
				}
				var sum float64
				if isF32[T]() { // masked entries → −Inf → exp 0
					r32 := as32(row[:i+1])
					for j, mk := range mrow[:i+1] {
						if mk == 0 {
							r32[j] = float32(math.Inf(-1))
						}
					}
					sum = expShift32(r32, r32, float32(mx))
				} else {
					for j := 0; j <= i; j++ {
						if mrow[j] != 0 {
							e := T(math.Exp(float64(row[j] - mx)))
							row[j] = e
							sum += float64(e)
						} else {
							row[j] = 0
						}
					}
				}
				inv := T(1 / sum)
				for j := 0; j <= i; j++ {
					row[j] *= inv
				}
				zero(row[i+1:])
			}
			// out_h (T, hs) = P V (P is 0 right of the diagonal)
			out := k.out[b*T_*D+h*hs:]
			for r0 := 0; r0 < T_; r0 += attnBlock {
				r1 := min(T_, r0+attnBlock)
				gemm(false, false, r1-r0, hs, r1, 1, P[r0*T_:], T_, v, D3, 0, out[r0*D:], D)
			}
			continue
		}
		dout := k.dout[b*T_*D+h*hs:]
		dq := k.dqkv[base+h*hs:]
		dk := k.dqkv[base+D+h*hs:]
		dv := k.dqkv[base+2*D+h*hs:]
		dP := k.scratch[chunk*T_*T_ : (chunk+1)*T_*T_]
		// dP = dOut Vᵀ (T, T) on the lower triangle by row blocks; dV += Pᵀ
		// dOut by key blocks c0..c1, which only rows c0.. reach.
		for r0 := 0; r0 < T_; r0 += attnBlock {
			r1 := min(T_, r0+attnBlock)
			gemm(false, true, r1-r0, r1, hs, 1, dout[r0*D:], D, v, D3, 0, dP[r0*T_:], T_)
			gemm(true, false, r1-r0, hs, T_-r0, 1, P[r0*T_+r0:], T_, dout[r0*D:], D, k.beta, dv[r0*D3:], D3)
		}
		// dS = P ⊙ (dP − rowsum(P ⊙ dP))
		for i := 0; i < T_; i++ {
			pr := P[i*T_ : i*T_+i+1]
			dr := dP[i*T_ : i*T_+T_]
			var s T
			for j, p := range pr {
				s += p * dr[j]
			}
			for j, p := range pr {
				dr[j] = p * (dr[j] - s)
			}
			zero(dr[i+1:])
		}
		// dQ += scale · dS K ; dK += scale · dSᵀ Q (dS is 0 right of the
		// diagonal: row block r0..r1 needs keys 0..r1, key block r0..r1
		// rows r0..)
		for r0 := 0; r0 < T_; r0 += attnBlock {
			r1 := min(T_, r0+attnBlock)
			gemm(false, false, r1-r0, hs, r1, scale, dP[r0*T_:], T_, kk, D3, k.beta, dq[r0*D3:], D3)
			gemm(true, false, r1-r0, hs, T_-r0, scale, dP[r0*T_+r0:], T_, q[r0*D3:], D3, k.beta, dk[r0*D3:], D3)
		}
	}
}

// ---------------------------------------------------------------------------
// Cross entropy: mean over rows with target ≥ 0 of logsumexp(l) − l[t],
// computed with a stable logsumexp and float64 accumulation.

// crossEntropyKernel computes the cross entropy and its gradient. In place
// (inPlace, for logits that are a model op's output buffer: see
// CrossEntropy), prob is the logits buffer itself: the forward overwrites
// each counted row of the logits with exp(l − max) (the expShift32,
// vec.Max and vec.Scale loops are elementwise, safe in place; the target's
// logit is read first), and the backward writes the gradient over it too
// (dlogits is that same buffer), zeroing the rows with a negative target,
// which still hold their raw logits. The loss then needs no (N, V) buffer
// of its own.
type crossEntropyKernel[T Float] struct {
	v       int
	tune    *tuning   // nil: defaultTuning
	lse     []float64 // (n) saved by forward
	inv     []T       // (n) 1/Σ exp(l − max), saved by forward
	prob    []T       // (n, V) exp(l − max), saved by forward (in place: the logits buffer)
	inPlace bool      // prob is the logits buffer, and dlogits is too
	partial []float64 // (chunks) loss sums
	// per call
	logits, dlogits []T
	targets         []int32
	scale           float64
	acc             bool
}

// The cross entropy's loops, each the kernel viewed as the parallel.Task
// of that loop: rows of the forward (loss, saved softmax), rows of the
// backward.
type (
	ceForwardTask[T Float]  crossEntropyKernel[T]
	ceBackwardTask[T Float] crossEntropyKernel[T]
)

// newCrossEntropyKernel returns the kernel for (n, v) logits with its own
// prob buffer (the logits are left alone).
func newCrossEntropyKernel[T Float](n, v int) *crossEntropyKernel[T] {
	k := newCrossEntropyKernelInPlace[T](n, v, nil)
	k.prob = make([]T, n*v)
	return k
}

// newCrossEntropyKernelInPlace returns the kernel for (n, v) logits that
// works in place of logitsBuf (n·v elements), the buffer the logits will
// always be in (see above); it allocates no (n, v) buffer. A nil logitsBuf
// leaves prob to the caller.
func newCrossEntropyKernelInPlace[T Float](n, v int, logitsBuf []T) *crossEntropyKernel[T] {
	k := &crossEntropyKernel[T]{v: v, lse: make([]float64, n), inv: make([]T, n), partial: make([]float64, parallel.MaxChunks())}
	if logitsBuf != nil {
		if len(logitsBuf) != n*v {
			panic("cross entropy: the in-place logits buffer does not hold n·v elements")
		}
		k.prob, k.inPlace = logitsBuf, true
	}
	return k
}

// sameBuf reports whether a and b start at the same element.
func sameBuf[T Float](a, b []T) bool {
	return len(a) > 0 && len(b) > 0 && &a[0] == &b[0]
}

// forward returns the mean loss and the number of counted rows (0 rows
// gives loss 0).
func (k *crossEntropyKernel[T]) forward(logits []T, targets []int32) (float64, int) {
	if k.inPlace && !sameBuf(logits, k.prob) {
		panic("cross entropy: in-place kernel given logits outside its buffer")
	}
	k.logits, k.targets = logits, targets
	n := len(targets)
	grain := tuned(k.tune).grainRows(k.v)
	c := parallel.NumChunks(n, grain)
	for i := 0; i < c; i++ {
		k.partial[i] = 0
	}
	parallel.For(n, grain, (*ceForwardTask[T])(k))
	var s float64
	for i := 0; i < c; i++ {
		s += k.partial[i]
	}
	cnt := 0
	for _, t := range targets {
		if t >= 0 {
			cnt++
		}
	}
	if cnt == 0 {
		return 0, 0
	}
	return s / float64(cnt), cnt
}

// backward accumulates dlogits += dloss·(softmax − onehot)/count for the
// counted rows, using the logsumexp saved by the last forward. In place,
// dlogits must be the logits buffer and acc false.
func (k *crossEntropyKernel[T]) backward(logits []T, targets []int32, dloss float64, dlogits []T, acc bool) {
	if k.inPlace && (acc || !sameBuf(dlogits, k.prob)) {
		panic("cross entropy: in-place backward must overwrite the logits buffer (acc false)")
	}
	cnt := 0
	for _, t := range targets {
		if t >= 0 {
			cnt++
		}
	}
	if cnt == 0 {
		if !acc {
			zero(dlogits)
		}
		return
	}
	k.logits, k.targets, k.dlogits, k.scale, k.acc = logits, targets, dlogits, dloss/float64(cnt), acc
	parallel.For(len(targets), tuned(k.tune).grainRows(k.v), (*ceBackwardTask[T])(k))
}

// RunRange computes rows [lo, hi)'s logsumexp and unnormalised softmax
// (saved for the backward) and adds their losses to chunk's partial sum;
// rows with a negative target are skipped.
func (tk *ceForwardTask[T]) RunRange(chunk, lo, hi int) {
	k := (*crossEntropyKernel[T])(tk)
	V := k.v
	for r := lo; r < hi; r++ {
		t := k.targets[r]
		if t < 0 {
			continue
		}
		l := k.logits[r*V : r*V+V]
		lt := float64(l[t]) // before e (in place: l itself) is written
		mx, rest := l[0], l
		if isF32[T]() {
			if m, n := vec.Max(as32(l)); n > 0 {
				mx, rest = T(m), l[n:]
			}
		}
		for _, x := range rest {
			if x > mx {
				mx = x
			}
		}
		e := k.prob[r*V : r*V+V]
		var s float64
		if isF32[T]() {
			s = expShift32(as32(e), as32(l), float32(mx))
		} else {
			for j, x := range l {
				e[j] = T(math.Exp(float64(x - mx)))
				s += float64(e[j])
			}
		}
		lse := float64(mx) + math.Log(s)
		k.lse[r], k.inv[r] = lse, T(1/s)
		k.partial[chunk] += lse - lt
	}
}

// RunRange writes (or adds) rows [lo, hi)'s gradient; rows with a negative
// target get 0 (or nothing added).
func (tk *ceBackwardTask[T]) RunRange(_, lo, hi int) {
	k := (*crossEntropyKernel[T])(tk)
	V := k.v
	for r := lo; r < hi; r++ {
		t := k.targets[r]
		if t < 0 {
			if !k.acc {
				zero(k.dlogits[r*V : r*V+V])
			}
			continue
		}
		d := k.dlogits[r*V : r*V+V]
		e := k.prob[r*V : r*V+V]
		sc := T(k.scale) * k.inv[r]
		if isF32[T]() {
			n := vec.Scale(as32(d), as32(e), float32(sc), k.acc)
			d, e = d[n:], e[n:]
		}
		if k.acc {
			for j, p := range e {
				d[j] += sc * p
			}
		} else {
			for j, p := range e {
				d[j] = sc * p
			}
		}
		k.dlogits[r*V+int(t)] -= T(k.scale)
	}
}

// lnForwardRow normalises one row: mean = Σx/d and var = Σ(x−m)²/d in
// float64 (m = T(mean)), rs = T(1/√(var+eps)), y = (x−m)·rs·w + b; it
// returns m and rs.
func lnForwardRow[T Float](x, w, b, y []T, eps float64) (T, T) {
	if isF32[T]() {
		if m, rs, ok := vec.LNForwardRow(as32(x), as32(w), as32(b), as32(y), eps); ok {
			return T(m), T(rs)
		}
	}
	var m float64
	for _, v := range x {
		m += float64(v)
	}
	m /= float64(len(x))
	mt := T(m)
	var v2 float64
	for _, v := range x {
		dv := float64(v - mt)
		v2 += dv * dv
	}
	rs := T(1 / math.Sqrt(v2/float64(len(x))+eps))
	for j, v := range x {
		y[j] = (v-mt)*rs*w[j] + b[j]
	}
	return mt, rs
}
