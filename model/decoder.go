package model

import (
	"errors"
	"fmt"
	"math"

	"smtrain/internal/parallel"
	"smtrain/model/internal/vec"
)

// Decoder is an incremental GPT-2 forward with a KV cache for several
// independent sequences ("slots"). Each slot is a stack of inputs: Push
// appends one input per slot (batched across slots), Pop drops the top
// entry without a forward pass (its logits revert to the new top's cached
// logits, DESIGN 3.3). It reuses the training graph's kernels (embedding,
// layer norm, linear, GELU) on float32 parameters shared with the Params
// it was built from (after changing the parameters, Reset or Prefill the
// slots: cached keys, values and logits are not recomputed), its products
// with those weights or a half-precision copy (DecoderWeights). A Decoder
// is not safe for concurrent use; use one per goroutine.
type Decoder struct {
	p          *Params
	half       [][]uint16 // the f16 weights (DecoderWeights.half); nil: float32
	cfg        Config
	nseq, cap_ int
	lens       []int
	kc, vc     [][]float32 // per slot (L, H, cap, D/H): each head's entries contiguous
	logits     [][]float32 // per slot (cap, V)
	// A prompt's entries other than its last get their logits only when
	// asked (after a Pop down to them): Prefill keeps their final layer
	// norm, hid (cap, D) per slot, and marks them in lazy.
	hid  [][]float32
	lazy [][]bool

	// work buffers for up to maxRows rows
	maxRows                   int
	tok, pos                  []int32
	rowSeq                    []int
	x, x2, h, qkv, att, f, lg []float32

	emb                      embedKernel[float32]
	ln                       *layerNormKernel[float32]
	cAttn, cProj, cFc, fProj linearKernel[float32]
	head                     linearKernel[float32]
	hl                       halfLinear // every product, with f16 weights
	gelu                     *geluKernel[float32]
	attn                     decAttention
}

// NewDecoder makes a decoder over float32 params p (multiplying with them
// as they are, WeightsF32) with nseq slots of at most maxLen entries each
// (capped at n_positions). NewDecoderWith takes other weights.
func NewDecoder(p *Params, nseq, maxLen int) (*Decoder, error) {
	w, err := NewDecoderWeights(p, WeightsF32)
	if err != nil {
		return nil, err
	}
	return NewDecoderWith(w, nseq, maxLen)
}

// NewDecoderWith makes a decoder multiplying with weights w, with nseq
// slots of at most maxLen entries each (capped at n_positions); several
// decoders may share w.
func NewDecoderWith(w *DecoderWeights, nseq, maxLen int) (*Decoder, error) {
	if w == nil {
		return nil, errors.New("decoder: nil weights")
	}
	if nseq <= 0 || maxLen <= 0 {
		return nil, fmt.Errorf("decoder: nseq %d and maxLen %d must be positive", nseq, maxLen)
	}
	p := w.p
	cfg := p.Cfg
	if maxLen > cfg.NPositions {
		maxLen = cfg.NPositions
	}
	D, V, L := cfg.NEmbd, cfg.VocabSize, cfg.NLayer
	rows := max(nseq, maxLen)
	d := &Decoder{p: p, half: w.half, cfg: cfg, nseq: nseq, cap_: maxLen, lens: make([]int, nseq), maxRows: rows,
		tok: make([]int32, rows), pos: make([]int32, rows), rowSeq: make([]int, rows),
		x: make([]float32, rows*D), x2: make([]float32, rows*D), h: make([]float32, rows*D),
		qkv: make([]float32, rows*3*D), att: make([]float32, rows*D), f: make([]float32, rows*4*D),
		lg:  make([]float32, rows*V),
		emb: embedKernel[float32]{d: D}, ln: newLayerNormKernel[float32](rows, D, cfg.LayerNormEpsilon),
		cAttn: linearKernel[float32]{c: D, oc: 3 * D}, cProj: linearKernel[float32]{c: D, oc: D},
		cFc: linearKernel[float32]{c: D, oc: 4 * D}, fProj: linearKernel[float32]{c: 4 * D, oc: D},
		head: linearKernel[float32]{c: D, oc: V, transW: true}, gelu: newGELUKernel[float32](rows * 4 * D),
	}
	d.kc, d.vc, d.logits = make([][]float32, nseq), make([][]float32, nseq), make([][]float32, nseq)
	d.hid, d.lazy = make([][]float32, nseq), make([][]bool, nseq)
	for s := 0; s < nseq; s++ {
		d.kc[s] = make([]float32, L*maxLen*D)
		d.vc[s] = make([]float32, L*maxLen*D)
		d.logits[s] = make([]float32, maxLen*V)
		d.hid[s] = make([]float32, maxLen*cfg.NEmbd)
		d.lazy[s] = make([]bool, maxLen)
	}
	d.attn = decAttention{d: d, scratch: make([]float32, parallel.MaxChunks()*maxLen)}
	d.setTuning(&decodeTuning)
	return d, nil
}

// Cap is the maximum number of entries of a slot.
func (d *Decoder) Cap() int { return d.cap_ }

// NumSeq is the number of slots.
func (d *Decoder) NumSeq() int { return d.nseq }

func (d *Decoder) checkSeq(seq int) error {
	if seq < 0 || seq >= d.nseq {
		return fmt.Errorf("decoder: slot %d outside [0, %d)", seq, d.nseq)
	}
	return nil
}

func (d *Decoder) checkToken(tok int32) error {
	if tok < 0 || int(tok) >= d.cfg.VocabSize {
		return fmt.Errorf("decoder: token id %d outside the vocabulary [0, %d)", tok, d.cfg.VocabSize)
	}
	return nil
}

// Prefill resets slot seq and runs the whole prompt through the model in
// one causal pass, filling the cache and the logits of every entry.
func (d *Decoder) Prefill(seq int, tokens []int32) error {
	if err := d.checkSeq(seq); err != nil {
		return err
	}
	if len(tokens) > d.cap_ {
		return fmt.Errorf("decoder: prompt of %d tokens exceeds the capacity %d", len(tokens), d.cap_)
	}
	for _, t := range tokens {
		if err := d.checkToken(t); err != nil {
			return err
		}
	}
	d.lens[seq] = 0
	for i, t := range tokens {
		d.tok[i], d.pos[i], d.rowSeq[i] = t, int32(i), seq
	}
	d.forward(len(tokens))
	d.lens[seq] = len(tokens)
	return nil
}

// Push appends tokens[i] to slot seqs[i] (at position = its current
// length) for every i, in one batched forward step. Slots must be
// distinct.
func (d *Decoder) Push(seqs []int, tokens []int32) error {
	if len(seqs) != len(tokens) {
		return fmt.Errorf("decoder: %d slots but %d tokens", len(seqs), len(tokens))
	}
	for i, s := range seqs {
		if err := d.checkSeq(s); err != nil {
			return err
		}
		if err := d.checkToken(tokens[i]); err != nil {
			return err
		}
		if d.lens[s] >= d.cap_ {
			return fmt.Errorf("decoder: slot %d is full (%d entries)", s, d.cap_)
		}
		for _, o := range seqs[:i] {
			if o == s {
				return fmt.Errorf("decoder: slot %d pushed twice in one step", s)
			}
		}
	}
	for i, s := range seqs {
		d.tok[i], d.pos[i], d.rowSeq[i] = tokens[i], int32(d.lens[s]), s
	}
	d.forward(len(seqs))
	for _, s := range seqs {
		d.lens[s]++
	}
	return nil
}

// Pop drops the top entry of slot seq; no forward pass is needed.
func (d *Decoder) Pop(seq int) error {
	if err := d.checkSeq(seq); err != nil {
		return err
	}
	if d.lens[seq] == 0 {
		return fmt.Errorf("decoder: pop of empty slot %d", seq)
	}
	d.lens[seq]--
	return nil
}

// Logits returns the logits (V) at the top of slot seq (nil when the slot
// is empty). The slice is read-only and stays valid until the entry is
// overwritten by a later Push or Prefill. At a prompt entry other than the
// last (exposed by Pop) the first call computes them, with the LM head on
// the entry's kept final layer norm.
func (d *Decoder) Logits(seq int) []float32 {
	if seq < 0 || seq >= d.nseq || d.lens[seq] == 0 {
		return nil
	}
	V, D := d.cfg.VocabSize, d.cfg.NEmbd
	n := d.lens[seq]
	lg := d.logits[seq][(n-1)*V : n*V : n*V]
	if d.lazy[seq][n-1] {
		// the head on the entry's kept final layer norm
		d.mul(&d.head, 0, d.hid[seq][(n-1)*D:n*D], nil, nil, lg)
		d.lazy[seq][n-1] = false
	}
	return lg
}

// mul runs the product of k with parameter pi (a layer's weight matrix,
// or wte for the LM head): y = x @ W + b (+ r), b and r may be nil, with
// the float32 parameter or its half-precision copy.
func (d *Decoder) mul(k *linearKernel[float32], pi int, x, b, r, y []float32) {
	if d.half != nil {
		d.hl.forward(k.c, k.oc, x, d.half[pi], b, r, y)
		return
	}
	k.forward(x, d.p.List[pi].F32, b, r, y)
}

// cacheKV writes row qkv's keys and values (its q, k, v: 3D) into slot
// s's key/value cache at layer l and position p.
func (d *Decoder) cacheKV(qkv []float32, s, l, p int) {
	D, H, C := d.cfg.NEmbd, d.cfg.NHead, d.cap_
	hs := D / H
	for h := 0; h < H; h++ {
		off := ((l*H+h)*C + p) * hs
		copy(d.kc[s][off:off+hs], qkv[D+h*hs:])
		copy(d.vc[s][off:off+hs], qkv[2*D+h*hs:])
	}
}

// Len is the number of entries of slot seq.
func (d *Decoder) Len(seq int) int {
	if seq < 0 || seq >= d.nseq {
		return 0
	}
	return d.lens[seq]
}

// Reset empties slot seq.
func (d *Decoder) Reset(seq int) {
	if seq >= 0 && seq < d.nseq {
		d.lens[seq] = 0
	}
}

// forward runs rows d.tok[:n] at d.pos[:n] of slots d.rowSeq[:n]: writes
// their keys/values into the cache, then attends each row to its slot's
// cache entries 0..pos, and stores the logits of each row that ends its
// slot's run in this step. One code path for every step: a batch-1 token,
// a batch of slots and a prompt differ only in n (the kernels pick their
// one-row or few-row loops and whether to split across cores from it).
//
// A small step runs on the caller's core: a helper core spin-waiting for
// each step's work (removed in e44715b with the tuner that chose between
// it and one core) made a batch-1 step of config small 2.7x slower than
// one core at load average 2-4 on the 2-core VM (217 vs 80 us median),
// 2-4x slower under heavier load, and won only when the machine was idle.
func (d *Decoder) forward(n int) {
	if n == 0 {
		return
	}
	cfg, P := d.cfg, d.p.List
	D, V := cfg.NEmbd, cfg.VocabSize
	x, x2, h := d.x[:n*D], d.x2[:n*D], d.h[:n*D]
	qkv, att, f := d.qkv[:n*3*D], d.att[:n*D], d.f[:n*4*D]
	d.emb.forward(d.tok[:n], d.pos[:n], P[0].F32, P[1].F32, x) // (n, D)
	for l := 0; l < cfg.NLayer; l++ {
		b := 2 + l*perLayer
		w := P[b:]
		d.ln.forward(x, w[pLn1W].F32, w[pLn1B].F32, h)        // (n, D)
		d.mul(&d.cAttn, b+pAttnW, h, w[pAttnB].F32, nil, qkv) // (n, 3D)
		for i := 0; i < n; i++ {
			d.cacheKV(qkv[i*3*D:(i+1)*3*D], d.rowSeq[i], l, int(d.pos[i]))
		}
		d.attn.run(n, l)                                       // att (n, D)
		d.mul(&d.cProj, b+pProjW, att, w[pProjB].F32, x, x2)   // (n, D)
		d.ln.forward(x2, w[pLn2W].F32, w[pLn2B].F32, h)        // (n, D)
		d.mul(&d.cFc, b+pFcW, h, w[pFcB].F32, nil, f)          // (n, 4D)
		d.gelu.forward(f, f)                                   // (n, 4D) in place
		d.mul(&d.fProj, b+pFcProjW, f, w[pFcProjB].F32, x2, x) // (n, D)
	}
	nl := len(P)
	d.ln.forward(x, P[nl-2].F32, P[nl-1].F32, h)
	// The head runs on the rows that end their slot's run in this step
	// (every row of a Push; a prompt's last row): the others keep their
	// final layer norm for Logits to use should a Pop expose them.
	k := 0 // rows needing logits, gathered to the front of h
	for i := 0; i < n; i++ {
		s, p := d.rowSeq[i], int(d.pos[i])
		if i+1 < n && d.rowSeq[i+1] == s {
			copy(d.hid[s][p*D:(p+1)*D], h[i*D:(i+1)*D])
			d.lazy[s][p] = true
			continue
		}
		if k < i {
			copy(h[k*D:(k+1)*D], h[i*D:(i+1)*D])
		}
		d.pos[k], d.rowSeq[k] = d.pos[i], s
		k++
	}
	lg := d.lg[:k*V]
	d.mul(&d.head, 0, h[:k*D], nil, nil, lg) // (k, V)
	for i := 0; i < k; i++ {
		s, p := d.rowSeq[i], int(d.pos[i])
		copy(d.logits[s][p*V:(p+1)*V], lg[i*V:(i+1)*V])
		d.lazy[s][p] = false
	}
}

// decAttention attends each (row, head) to its slot's cached keys/values.
type decAttention struct {
	d       *Decoder
	scratch []float32 // (chunks, cap)
	layer   int
	tune    *tuning // nil: defaultTuning
}

func (a *decAttention) run(n, layer int) {
	a.layer = layer
	work := 0 // multiply-adds, to decide whether splitting pays
	for i := 0; i < n; i++ {
		work += 2 * (int(a.d.pos[i]) + 1) * a.d.cfg.NEmbd
	}
	rh := n * a.d.cfg.NHead
	grain := rh
	if work > 64*tuned(a.tune).grainElems {
		// the channel pool's hand-off (a futex wake-up, several µs)
		// pays only for long contexts
		grain = 1
	}
	parallel.For(rh, grain, a)
}

func (a *decAttention) RunRange(chunk, lo, hi int) { a.rows(chunk, a.layer, lo, hi) }

// rows attends (row, head) pairs [lo, hi) at layer l, in chunk's scratch.
func (a *decAttention) rows(chunk, l, lo, hi int) {
	d := a.d
	H, D, C := d.cfg.NHead, d.cfg.NEmbd, d.cap_
	hs := D / H
	scale := float32(1 / math.Sqrt(float64(hs)))
	sc := a.scratch[chunk*C : (chunk+1)*C]
	for rh := lo; rh < hi; rh++ {
		i, h := rh/H, rh%H
		s, p := d.rowSeq[i], int(d.pos[i])
		q := d.qkv[i*3*D+h*hs : i*3*D+h*hs+hs]
		base := (l*H + h) * C * hs
		kc, vc := d.kc[s][base:], d.vc[s][base:]
		// scores (p+1) = scale · K[0..p] q
		if !vec.DotRows(q, kc, hs, p+1, scale, sc[:p+1]) {
			gemv(false, p+1, hs, scale, kc, hs, q, 0, sc[:p+1])
		}
		mx := float32(math.Inf(-1))
		for _, v := range sc[:p+1] {
			if v > mx {
				mx = v
			}
		}
		sum := expShift32(sc[:p+1], sc[:p+1], mx)
		inv := float32(1 / sum)
		for j := range sc[:p+1] {
			sc[j] *= inv
		}
		// out (hs) = V[0..p]ᵀ softmax
		out := d.att[i*D+h*hs : i*D+h*hs+hs]
		if !vec.AxpyRows32(sc[:p+1], vc, hs, p+1, out) {
			gemv(true, p+1, hs, 1, vc, hs, sc[:p+1], 0, out)
		}
	}
}
