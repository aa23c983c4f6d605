package model

import (
	"runtime"
	"sync/atomic"

	"smtrain/model/internal/vec"
)

// rowStep is the decoder's one-row step (batch-1 decoding), cut in two
// fixed halves the way two-way tensor parallelism cuts a transformer:
// half 0 takes the first ⌊H/2⌋ heads, the first 2D hidden units of the MLP
// and the first ⌊V/2⌋ logits, half 1 the rest. Each layer has two phases,
// each a half's share of a projection: (1) the heads' q, k, v columns,
// their cache entries, their attention and their rows of c_proj; (2) the
// hidden units' c_fc columns, GELU and their rows of mlp.c_proj. After a
// phase the residual stream takes both shares in a fixed order,
// x = ((x + b) + share₀) + share₁, and is layer-normed for the next phase.
//
// On the spin team the two halves run a whole token each, the caller half
// 0 and the helper half 1, like two tensor-parallel ranks: each core keeps
// its own copy of the residual stream, publishes its share, waits for the
// other's (one barrier per phase: a single cache-line round trip, where a
// loop per phase handed to the helper and back cost two plus the caller's
// serial merge), and does the merge and layer norm itself. The merge's
// arithmetic is the same on both cores and on one core running both halves
// in turn, so the logits are the same bit for bit whichever way a step ran.
type rowStep struct {
	d *Decoder
	// per core (0: the caller, 1: the helper): the residual stream x and
	// its layer norm h (D each, on cache lines of their own)
	x, h [2][]float32
	// share[k%2][half] is a half's share of phase k's projection (D);
	// two sets, so a core can write phase k+1's while the other still
	// reads phase k's
	share [2][2][]float32
	// progress[c] is tok<<16 | phases core c has finished of token tok
	progress [2]paddedCounter
	tok      uint64
	team     *spinTeam // the team the current token runs on (nil: the caller)
	stolen   int       // tokens whose second half the caller took (tests)
}

// paddedCounter is an atomic counter alone on its cache line(s).
type paddedCounter struct {
	_ [64]byte
	v atomic.Uint64
	_ [56]byte
}

// init sets up r for decoder d.
func (r *rowStep) init(d *Decoder) {
	D := d.cfg.NEmbd
	line := func() []float32 { return make([]float32, D, (D+15)&^15+16)[:D] }
	r.d = d
	for c := 0; c < 2; c++ {
		r.x[c], r.h[c] = line(), line()
		r.share[0][c], r.share[1][c] = line(), line()
	}
}

// stepRow runs row 0 (d.tok[0] at d.pos[0] of slot d.rowSeq[0]) on team t
// (nil or soloTeam: on the caller).
func (d *Decoder) stepRow(t *spinTeam) {
	r := &d.row
	r.team = t
	d.lazy[d.rowSeq[0]][d.pos[0]] = false // logits() writes them
	if t == nil || t.size == 1 {
		r.token(0, true)
		return
	}
	r.tok++
	t.parallelFor(2, 1, r) // chunk 0: the caller, half 0; chunk 1: the helper, half 1
}

func (r *rowStep) RunRange(_, lo, hi int) {
	r.token(lo, hi-lo == 2)
}

// token runs one token's step on core c: half c, or both halves in turn
// when both is set (then c is 0).
func (r *rowStep) token(c int, both bool) {
	d := r.d
	cfg, P := d.cfg, d.p.List
	D := cfg.NEmbd
	x, h := r.x[c], r.h[c]
	tok, pos := int(d.tok[0]), int(d.pos[0])
	te, pe := P[0].F32[tok*D:tok*D+D], P[1].F32[pos*D:pos*D+D]
	for j := range x {
		x[j] = te[j] + pe[j]
	}
	r.layerNorm(x, P[2+pLn1W].F32, P[2+pLn1B].F32, h)
	for l := 0; l < cfg.NLayer; l++ {
		w := P[2+l*perLayer:]
		for ph := 0; ph < 2; ph++ {
			k := 2*l + ph
			if both {
				r.phase(ph, l, 0, h)
				r.phase(ph, l, 1, h)
			} else {
				r.phase(ph, l, c, h)
				if !r.barrier(c, k) {
					// the helper never came: this core runs its half too,
					// from h (the same input the helper's h would hold)
					r.phase(ph, l, 1, h)
					both = true
				}
			}
			// x = ((x + b) + share₀) + share₁, then the next layer norm
			s0, s1 := r.share[k%2][0], r.share[k%2][1]
			var b, lnW, lnB []float32
			switch {
			case ph == 0:
				b, lnW, lnB = w[pProjB].F32, w[pLn2W].F32, w[pLn2B].F32
			case l+1 < cfg.NLayer:
				b, lnW, lnB = w[pFcProjB].F32, w[perLayer+pLn1W].F32, w[perLayer+pLn1B].F32
			default:
				b, lnW, lnB = w[pFcProjB].F32, P[len(P)-2].F32, P[len(P)-1].F32
			}
			for j := range x {
				x[j] = ((x[j] + b[j]) + s0[j]) + s1[j]
			}
			r.layerNorm(x, lnW, lnB, h)
		}
	}
	if both {
		r.logits(0, h)
		r.logits(1, h)
		return
	}
	r.logits(c, h)
}

// barrier marks phase k of the current token done on core c and waits
// until the other core has done it too. It reports false when instead
// the caller took the helper's half itself: at the first phase, when the
// helper has not yet claimed it (parked or descheduled).
func (r *rowStep) barrier(c, k int) bool {
	mark := r.tok<<16 | uint64(k+1)
	r.progress[c].v.Store(mark)
	other := &r.progress[1-c].v
	for spins := 0; other.Load() < mark; spins++ {
		if c == 0 && k == 0 && r.team.stealRest() {
			r.stolen++
			return false
		}
		if spins&(1<<16-1) == 1<<16-1 {
			runtime.Gosched() // as in spinTeam.parallelFor
		}
	}
	return true
}

// layerNorm normalises one row with the layer-norm kernel's arithmetic.
func (r *rowStep) layerNorm(x, w, b, y []float32) {
	lnForwardRow(x, w, b, y, r.d.cfg.LayerNormEpsilon)
}

// phase does half's part of phase ph (0: attention, 1: MLP) of layer l
// from the layer-normed row h: its share of the phase's projection.
func (r *rowStep) phase(ph, l, half int, h []float32) {
	if ph == 0 {
		r.attention(l, half, h)
	} else {
		r.mlp(l, half, h)
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

func (r *rowStep) attention(l, half int, h []float32) {
	d := r.d
	cfg := d.cfg
	D, H := cfg.NEmbd, cfg.NHead
	hs := D / H
	h0, h1 := 0, H/2
	if half == 1 {
		h0, h1 = H/2, H
	}
	w := d.p.List[2+l*perLayer:]
	wa, ba := w[pAttnW].F32, w[pAttnB].F32
	qkv := d.qkv[:3*D]
	// this half's q, k and v columns, in one pass over c_attn's rows
	c0, c1 := h0*hs, h1*hs
	q, k, v := qkv[c0:c1], qkv[D+c0:D+c1], qkv[2*D+c0:2*D+c1]
	copy(q, ba[c0:c1])
	copy(k, ba[D+c0:D+c1])
	copy(v, ba[2*D+c0:2*D+c1])
	done := vec.Gemv3(h, wa[c0:], wa[D+c0:], wa[2*D+c0:], 3*D, q, k, v)
	for s := 0; s < 3; s++ {
		addCols(h, wa, 3*D, s*D+c0+done, s*D+c1, qkv[s*D+c0+done:s*D+c1])
	}
	d.cacheKV(qkv, d.rowSeq[0], l, int(d.pos[0]), h0, h1)
	d.attn.rows(half, l, h0, h1) // att[h0·hs, h1·hs)
	// this half's rows of c_proj
	k0, k1 := h0*hs, h1*hs
	share := r.share[0][half]
	zero(share)
	addCols(d.att[k0:k1], w[pProjW].F32[k0*D:], D, 0, D, share)
}

func (r *rowStep) mlp(l, half int, h []float32) {
	d := r.d
	D := d.cfg.NEmbd
	w := d.p.List[2+l*perLayer:]
	c0, c1 := half*2*D, (half+1)*2*D
	f, th := d.f[c0:c1], d.gelu.th[c0:c1]
	copy(f, w[pFcB].F32[c0:c1])
	addCols(h, w[pFcW].F32, 4*D, c0, c1, f)
	v := vec.GELUForward(f, f, th)
	geluForward32(f[v:], f[v:], th[v:])
	share := r.share[1][half]
	zero(share)
	addCols(f, w[pFcProjW].F32[c0*D:], D, 0, D, share)
}

// logits writes half's logits from the final layer norm h into the slot's
// logits row.
func (r *rowStep) logits(half int, h []float32) {
	d := r.d
	D, V := d.cfg.NEmbd, d.cfg.VocabSize
	v0, v1 := 0, V/2
	if half == 1 {
		v0, v1 = V/2, V
	}
	s, p := d.rowSeq[0], int(d.pos[0])
	headRows(h, d.p.List[0].F32[v0*D:], d.logits[s][p*V+v0:p*V+v1])
}
