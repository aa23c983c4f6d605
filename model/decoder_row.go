package model

import "smtrain/model/internal/vec"

// rowStep is the decoder's one-row step (batch-1 decoding), cut in two
// fixed halves the way two-way tensor parallelism cuts a transformer:
// half 0 takes the first ⌊H/2⌋ heads, the first 2D hidden units of the MLP
// and the first ⌊V/2⌋ logits, half 1 the rest. Per layer that is two
// loops instead of one per operation: (1) the heads' q, k, v columns,
// their cache entries, their attention and their rows' share of c_proj;
// (2) the hidden units' c_fc columns, GELU and their rows' share of
// mlp.c_proj; then the head's rows once. The two shares of each
// projection are added by the caller in a fixed order, y = ((r + b) +
// share₀) + share₁, so the result is the same bit for bit whether the
// halves run on two cores (the spin team) or one after the other on the
// caller.
type rowStep struct {
	d     *Decoder
	phase int // 0: attention block, 1: MLP block, 2: logits
	layer int
	// share₁ of c_proj and mlp.c_proj (D each)
	proj, fproj []float32
	// attnW[l][half] is a contiguous copy of the half's q, k and v
	// columns of layer l's c_attn weight (D, 3·width), so that each core
	// streams one block instead of three strided column ranges (~6% per
	// step on the team, measured); qkvHalf[half] receives its product.
	// Rebuilt from the parameters before the first step after NewDecoder,
	// Reset or Prefill (stale: the parameters may have changed).
	attnW   [][2][]float32
	qkvHalf [2][]float32
	stale   bool
}

// run does one phase on t (nil: on the caller).
func (r *rowStep) run(t *spinTeam, phase, layer int) {
	r.phase, r.layer = phase, layer
	r.d.attn.layer = layer
	if t != nil {
		t.parallelFor(2, 1, r)
		return
	}
	r.runRange(0, 0, 2)
}

func (r *rowStep) runRange(chunk, lo, hi int) {
	for half := lo; half < hi; half++ {
		switch r.phase {
		case 0:
			r.attention(chunk, half)
		case 1:
			r.mlp(half)
		case 2:
			r.logits(half)
		}
	}
}

// addCols adds x @ W[:, c0:c1] to y (len c1 − c0) for row-major W with
// ldw columns.
func addCols(x, w []float32, ldw, c0, c1 int, y []float32) {
	done := vec.Gemv(x, w[c0:], ldw, y)
	if done < c1-c0 && len(x) > 0 {
		gemv(true, len(x), c1-c0-done, 1, w[c0+done:], ldw, x, 1, y[done:])
	}
}

func (r *rowStep) attention(chunk, half int) {
	d := r.d
	cfg, l := d.cfg, r.layer
	D, H, C := cfg.NEmbd, cfg.NHead, d.cap_
	hs := D / H
	h0, h1 := 0, H/2
	if half == 1 {
		h0, h1 = H/2, H
	}
	w := d.p.List[2+l*perLayer:]
	ba := w[pAttnB].F32
	x, qkv := d.h[:D], d.qkv[:3*D]
	// this half's q, k and v columns, from its contiguous copy of them
	nc := 3 * (h1 - h0) * hs
	out := r.qkvHalf[half][:nc]
	for s, o := 0, 0; s < 3; s, o = s+1, o+(h1-h0)*hs {
		copy(out[o:], ba[s*D+h0*hs:s*D+h1*hs])
	}
	addCols(x, r.attnW[l][half], nc, 0, nc, out)
	for s, o := 0, 0; s < 3; s, o = s+1, o+(h1-h0)*hs {
		copy(qkv[s*D+h0*hs:s*D+h1*hs], out[o:])
	}
	slot, p := d.rowSeq[0], int(d.pos[0])
	for h := h0; h < h1; h++ {
		off := ((l*H+h)*C + p) * hs
		copy(d.kc[slot][off:off+hs], qkv[D+h*hs:])
		copy(d.vc[slot][off:off+hs], qkv[2*D+h*hs:])
	}
	d.attn.runRange(chunk, h0, h1) // att[h0·hs, h1·hs) (run set its layer)
	// this half's rows of c_proj
	wp, bp := w[pProjW].F32, w[pProjB].F32
	k0, k1 := h0*hs, h1*hs
	projShare(half, d.att[k0:k1], wp[k0*D:], bp, d.x[:D], d.x2[:D], r.proj) // x2 = x + b + share₀
}

// projShare computes a half's share of a projection of width len(res) from
// in (that half's input rows, W's matching rows w): half 0 writes
// y = (res + b) + share₀, half 1 writes share₁ to share.
func projShare(half int, in, w, b, res, y, share []float32) {
	D := len(res)
	if half == 0 {
		for j := range y[:D] {
			y[j] = res[j] + b[j]
		}
		addCols(in, w, D, 0, D, y[:D])
		return
	}
	zero(share)
	addCols(in, w, D, 0, D, share)
}

func (r *rowStep) mlp(half int) {
	d := r.d
	D := d.cfg.NEmbd
	w := d.p.List[2+r.layer*perLayer:]
	c0, c1 := half*2*D, (half+1)*2*D
	f, th := d.f[c0:c1], d.gelu.th[c0:c1]
	copy(f, w[pFcB].F32[c0:c1])
	addCols(d.h[:D], w[pFcW].F32, 4*D, c0, c1, f)
	v := vec.GELUForward(f, f, th)
	geluForward32(f[v:], f[v:], th[v:])
	projShare(half, f, w[pFcProjW].F32[c0*D:], w[pFcProjB].F32, d.x2[:D], d.x[:D], r.fproj) // x = x2 + b + share₀
}

func (r *rowStep) logits(half int) {
	d := r.d
	D, V := d.cfg.NEmbd, d.cfg.VocabSize
	v0, v1 := 0, V/2
	if half == 1 {
		v0, v1 = V/2, V
	}
	lg, x, wte := d.lg[v0:v1], d.h[:D], d.p.List[0].F32[v0*D:]
	zero(lg)
	if v1 > v0 && !vec.DotAcc(x, wte, D, lg) {
		gemv(false, v1-v0, D, 1, wte, D, x, 0, lg)
	}
}

// addShare adds a projection's second share: y += s, in order.
func addShare(y, s []float32) {
	for j := vec.Scale(y, s, 1, true); j < len(y); j++ {
		y[j] += s[j]
	}
}

// refresh copies each half's q, k, v columns of c_attn into attnW.
func (r *rowStep) refresh() {
	d := r.d
	cfg := d.cfg
	D, H := cfg.NEmbd, cfg.NHead
	hs := D / H
	if r.attnW == nil {
		r.attnW = make([][2][]float32, cfg.NLayer)
		for half := range r.qkvHalf {
			r.qkvHalf[half] = make([]float32, 3*D)
		}
	}
	for l := range r.attnW {
		wa := d.p.List[2+l*perLayer+pAttnW].F32
		for half, hr := range [2][2]int{{0, H / 2}, {H / 2, H}} {
			width := (hr[1] - hr[0]) * hs
			if r.attnW[l][half] == nil {
				r.attnW[l][half] = make([]float32, D*3*width)
			}
			cp := r.attnW[l][half]
			for i := 0; i < D; i++ {
				for s := 0; s < 3; s++ {
					copy(cp[i*3*width+s*width:], wa[i*3*D+s*D+hr[0]*hs:i*3*D+s*D+hr[1]*hs])
				}
			}
		}
	}
	r.stale = false
}

// stepRow is step for one row, on team t (nil: on the caller).
func (d *Decoder) stepRow(t *spinTeam) {
	cfg, P := d.cfg, d.p.List
	D, V := cfg.NEmbd, cfg.VocabSize
	r := &d.row
	if r.stale || r.attnW == nil {
		r.refresh()
	}
	x, x2, h := d.x[:D], d.x2[:D], d.h[:D]
	d.emb.forward(d.tok[:1], d.pos[:1], P[0].F32, P[1].F32, x)
	for l := 0; l < cfg.NLayer; l++ {
		w := P[2+l*perLayer:]
		d.ln.forward(x, w[pLn1W].F32, w[pLn1B].F32, h)
		r.run(t, 0, l) // x2 = (x + b) + share₀
		addShare(x2, r.proj)
		d.ln.forward(x2, w[pLn2W].F32, w[pLn2B].F32, h)
		r.run(t, 1, l) // x = (x2 + b) + share₀
		addShare(x, r.fproj)
	}
	nl := len(P)
	d.ln.forward(x, P[nl-2].F32, P[nl-1].F32, h)
	r.run(t, 2, 0)
	s, p := d.rowSeq[0], int(d.pos[0])
	copy(d.logits[s][p*V:(p+1)*V], d.lg[:V])
}
