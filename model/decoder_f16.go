package model

import (
	"errors"
	"fmt"

	"smtrain/internal/parallel"
	"smtrain/model/internal/vec"
)

// The weight formats a Decoder multiplies with (DecoderWeights).
const (
	// WeightsF32 multiplies with the float32 parameters themselves.
	WeightsF32 = "f32"
	// WeightsF16 multiplies with an IEEE half-precision copy of the
	// weight matrices and the LM head, widened to float32 on the fly
	// (float32 activations and sums).
	WeightsF16 = "f16"
)

// DecoderWeights are the weights a Decoder multiplies with: float32
// parameters p as they are (WeightsF32), or with WeightsF16 a copy of
// every layer's four weight matrices and of the tied LM head (wteᵀ) in
// IEEE half precision, made once by NewDecoderWeights and shared
// read-only by every decoder built on it. Everything else (embeddings,
// biases, layer norms, the KV cache, activations and sums) stays float32.
//
// Why f16: a batch-1 decoder step reads every weight once and little
// else, so its speed is the memory bandwidth over the bytes of the
// weights; half precision halves them. The cost is the rounding of each
// weight to 11 significant bits (relative error ≤ 2^-11), which moves
// logits by far less than their margins on a trained model
// (TestDecoderF16Logits states the measured bound). IEEE half rather than
// bfloat16: the same two bytes with 3 more significand bits (measured at
// GPT-2 small's shape as in that test, weights rounded to bfloat16 moved
// the logits by up to 0.051, to half 0.0059), and one instruction
// widens 16 of them (VCVTPH2PS).
//
// A DecoderWeights does not follow later changes to p's values: build a
// new one (and Reset the decoders' slots) after changing them.
type DecoderWeights struct {
	p      *Params
	format string
	// half (WeightsF16) holds, per entry of p.List, its weight matrix
	// packed by vec.PackHalf: the (D, 3D), (D, D), (D, 4D) and (4D, D)
	// matrices of each layer, and at index 0 the LM head wteᵀ (D, V); nil
	// for the other parameters.
	half [][]uint16
}

// NewDecoderWeights returns the weights decoders of float32 params p
// multiply with in format (WeightsF32 or WeightsF16). For WeightsF16 it
// converts the matrices (2 bytes per weight of p, besides p itself).
func NewDecoderWeights(p *Params, format string) (*DecoderWeights, error) {
	if p == nil {
		return nil, errors.New("decoder weights: nil params")
	}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("decoder weights: %w", err)
	}
	if p.DType != F32 {
		return nil, fmt.Errorf("decoder weights: needs float32 params, got %v", p.DType)
	}
	w := &DecoderWeights{p: p, format: format}
	switch format {
	case WeightsF32:
		return w, nil
	case WeightsF16:
	default:
		return nil, fmt.Errorf("decoder weights: unknown format %q (%s or %s)", format, WeightsF32, WeightsF16)
	}
	cfg := p.Cfg
	D, V := cfg.NEmbd, cfg.VocabSize
	type mat struct{ idx, k, n int }
	mats := []mat{{0, D, V}} // the LM head: wte (V, D) as wteᵀ
	for l := 0; l < cfg.NLayer; l++ {
		b := 2 + l*perLayer
		mats = append(mats, mat{b + pAttnW, D, 3 * D}, mat{b + pProjW, D, D}, mat{b + pFcW, D, 4 * D}, mat{b + pFcProjW, 4 * D, D})
	}
	w.half = make([][]uint16, len(p.List))
	for _, m := range mats {
		w.half[m.idx] = make([]uint16, vec.HalfPackedLen(m.k, m.n))
	}
	// the conversion on every core, a chunk of matrices each
	parallel.For(len(mats), 1, parallel.Func(func(_, lo, hi int) {
		for _, m := range mats[lo:hi] {
			vec.PackHalf(w.half[m.idx], p.List[m.idx].F32, m.k, m.n, m.idx == 0)
		}
	}))
	return w, nil
}

// Params are the float32 parameters the weights were made from.
func (w *DecoderWeights) Params() *Params { return w.p }

// Format is WeightsF32 or WeightsF16.
func (w *DecoderWeights) Format() string { return w.format }

// halfLinear is the decoder's product with a half-precision matrix (HF
// Conv1D layout, packed by vec.PackHalf): y (n, oc) = x (n, c) @ W + b
// (+ r), split across cores by column panels like linColsTask. One serves
// every product of a decoder, the shapes set per call.
type halfLinear struct {
	tune *tuning // nil: defaultTuning
	// per call
	c, oc, n   int
	x, b, r, y []float32
	w          []uint16
}

var _ parallel.Task = (*halfLinear)(nil)

// forward: y = x @ W + b + r for W (c, oc) packed in w; b and r may be nil.
func (k *halfLinear) forward(c, oc int, x []float32, w []uint16, b, r, y []float32) {
	k.c, k.oc, k.n = c, oc, len(x)/c
	k.x, k.w, k.b, k.r, k.y = x, w, b, r, y
	np := (oc + vec.HalfPanel - 1) / vec.HalfPanel
	parallel.For(np, max(1, tuned(k.tune).colGrainMACs/(k.n*c*vec.HalfPanel+1)), k)
}

// RunRange computes panels [lo, hi) (vec.HalfPanel columns each) of every
// row of y: y = b (+ r), then += x @ W.
func (k *halfLinear) RunRange(_, lo, hi int) {
	c, oc := k.c, k.oc
	c0, c1 := lo*vec.HalfPanel, min(hi*vec.HalfPanel, oc)
	for i := 0; i < k.n; i++ {
		y := k.y[i*oc+c0 : i*oc+c1]
		switch {
		case k.r != nil:
			copy(y, k.r[i*oc+c0:i*oc+c1])
		default:
			clear(y)
		}
		if k.b != nil {
			for j, v := range k.b[c0:c1] {
				y[j] += v
			}
		}
	}
	w, y := k.w[c0*c:], k.y[c0:]
	d := vec.GemmHalf(k.n, c, k.x, c, w, y, oc, c1-c0)
	vec.GemmHalfGo(k.n, c, k.x, c, w, y, oc, d, c1-c0)
}
