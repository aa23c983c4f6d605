package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// GrowOptions configure GrowVocab.
type GrowOptions struct {
	// NoiseScale is the standard deviation of the Gaussian noise added to
	// each new row, relative to the spread of the existing rows (the mean
	// over coordinates of the per-coordinate standard deviation of wte).
	// 0 means DefaultGrowNoise; a negative value adds no noise.
	NoiseScale float64
	// CopyFrom maps a new row (an id >= the old vocabulary size) to an
	// existing row it starts from instead of the mean, e.g. smtrain's new
	// <eos> from GPT-2's <|endoftext|>.
	CopyFrom map[int]int
	// Keep, when positive, keeps only the first Keep rows of wte and drops
	// the rest (padding rows without a token, as in checkpoints whose
	// vocabulary was rounded up): the new rows follow them, and the mean
	// and spread are those of the kept rows.
	Keep int
}

// DefaultGrowNoise is the default GrowOptions.NoiseScale.
const DefaultGrowNoise = 0.01

// GrowVocab returns a deep copy of p whose vocabulary has newV tokens: the
// token embedding wte (and so the tied LM head) gets newV - V new rows
// after the V existing ones; everything else, n_positions included, is
// unchanged. A new row starts as the mean of the existing rows (or the row
// named in o.CopyFrom) plus small Gaussian noise drawn from rng (scaled as
// described at GrowOptions.NoiseScale) so the new tokens are not
// identical. Because the LM head is the same matrix, the logits of the
// existing tokens are unchanged for every input made of existing tokens
// (their rows and the hidden states are the same); a new token's logit
// starts at about the average logit, so it takes some, not most,
// probability mass (Hewitt 2021, "Initializing new word embeddings for
// pretrained language models"). The config's special-token ids are kept;
// the caller sets them for the grown vocabulary.
func GrowVocab(p *Params, newV int, rng *rand.Rand, o GrowOptions) (*Params, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	V, D := p.Cfg.VocabSize, p.Cfg.NEmbd
	if o.Keep > V {
		return nil, fmt.Errorf("grow vocabulary: keep %d rows of %d", o.Keep, V)
	}
	if o.Keep > 0 {
		V = o.Keep
	}
	if newV < V {
		return nil, fmt.Errorf("grow vocabulary: new size %d is smaller than the current %d", newV, V)
	}
	if rng == nil {
		return nil, errors.New("grow vocabulary: nil random source")
	}
	for to, from := range o.CopyFrom {
		if to < V || to >= newV || from < 0 || from >= V {
			return nil, fmt.Errorf("grow vocabulary: copy row %d -> %d: want an existing row (< %d) into a new one (%d..%d)", from, to, V, V, newV-1)
		}
	}
	scale := o.NoiseScale
	if scale == 0 {
		scale = DefaultGrowNoise
	}
	scale = max(scale, 0)

	old := p.Get("wte.weight")
	row := func(i int) func(j int) float64 {
		if old.F32 != nil {
			r := old.F32[i*D : (i+1)*D]
			return func(j int) float64 { return float64(r[j]) }
		}
		r := old.F64[i*D : (i+1)*D]
		return func(j int) float64 { return r[j] }
	}
	// Mean and per-coordinate standard deviation of the existing rows
	// (two passes in float64).
	mean := make([]float64, D)
	for i := 0; i < V; i++ {
		r := row(i)
		for j := range mean {
			mean[j] += r(j)
		}
	}
	for j := range mean {
		mean[j] /= float64(V)
	}
	spread := 0.0
	if V > 1 {
		varj := make([]float64, D)
		for i := 0; i < V; i++ {
			r := row(i)
			for j := range varj {
				d := r(j) - mean[j]
				varj[j] += d * d
			}
		}
		for j := range varj {
			spread += math.Sqrt(varj[j] / float64(V-1))
		}
		spread /= float64(D)
	}
	sigma := scale * spread

	cfg := p.Cfg
	cfg.VocabSize = newV
	q, err := ZeroParams(cfg, p.DType)
	if err != nil {
		return nil, fmt.Errorf("grow vocabulary: %w", err)
	}
	for i, src := range p.List {
		dst := q.List[i]
		if src.Name == "wte.weight" {
			continue
		}
		copy(dst.F32, src.F32)
		copy(dst.F64, src.F64)
	}
	wte := q.Get("wte.weight") // (newV, D)
	if old.F32 != nil {
		copy(wte.F32, old.F32[:V*D])
	} else {
		copy(wte.F64, old.F64[:V*D])
	}
	for i := V; i < newV; i++ {
		base := func(j int) float64 { return mean[j] }
		if from, ok := o.CopyFrom[i]; ok {
			base = row(from)
		}
		for j := 0; j < D; j++ {
			v := base(j)
			if sigma > 0 {
				v += sigma * rng.NormFloat64()
			}
			if wte.F32 != nil {
				wte.F32[i*D+j] = float32(v)
			} else {
				wte.F64[i*D+j] = v
			}
		}
	}
	return q, nil
}
