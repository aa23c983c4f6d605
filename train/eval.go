package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"smtrain/data"
	"smtrain/model"
	"smtrain/objective"
)

// Evaluator computes held-out metrics (Evaluate) for a model and tokenizer
// under a configuration (objective, eta, seed, batch_size, n_positions,
// seq_mode). A Trainer owns one; NewEvaluator builds one from a loaded
// checkpoint without the rest of a trainer (`smtrain eval`).
type Evaluator struct {
	cfg      Config
	tok      *data.Tokenizer
	params   *model.Params
	obj, mle objective.Objective
	graphs   map[[2]int]*fwdGraph
	// unigram is the training data's action-token distribution (unigram
	// noise); nil: that of the sequences being scored.
	unigram *data.TokenDist
}

// NewEvaluator checks that p and tok belong together and that cfg is
// valid, and returns an evaluator of p (float32) under cfg.
func NewEvaluator(cfg Config, p *model.Params, tok *data.Tokenizer) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if p == nil || tok == nil {
		return nil, errors.New("evaluator: nil model or tokenizer")
	}
	if p.DType != model.F32 {
		return nil, fmt.Errorf("evaluator: model parameters are %v, want F32", p.DType)
	}
	if p.Cfg.VocabSize != tok.VocabSize() {
		return nil, fmt.Errorf("evaluator: the model has vocab_size %d but the tokenizer has %d tokens", p.Cfg.VocabSize, tok.VocabSize())
	}
	if p.Cfg.NPositions < cfg.NPositions {
		return nil, fmt.Errorf("evaluator: model context %d is shorter than n_positions %d", p.Cfg.NPositions, cfg.NPositions)
	}
	obj, err := objective.New(cfg.Objective, cfg.ObjectiveConfig())
	if err != nil {
		return nil, err
	}
	mle, err := objective.New("mle", cfg.ObjectiveConfig())
	if err != nil {
		return nil, err
	}
	return newEvaluator(cfg, p, tok, obj, mle), nil
}

func newEvaluator(cfg Config, p *model.Params, tok *data.Tokenizer, obj, mle objective.Objective) *Evaluator {
	return &Evaluator{cfg: cfg, tok: tok, params: p, obj: obj, mle: mle, graphs: map[[2]int]*fwdGraph{}}
}

// Config returns the evaluator's configuration.
func (e *Evaluator) Config() Config { return e.cfg }

// Seqs turns episodes into the action sequences training would build from
// them (chat template, seq_mode, truncation to n_positions).
func (e *Evaluator) Seqs(eps []data.Episode) ([]*data.ActionSeq, data.SeqStats, error) {
	return data.BuildSeqs(e.tok, eps, e.cfg.NPositions, data.SeqMode(e.cfg.SeqMode))
}

// Close releases the compiled graphs (a later Evaluate compiles new ones).
func (e *Evaluator) Close() {
	for _, g := range e.graphs {
		g.m.Close()
	}
	clear(e.graphs)
}

// bucketLen rounds a row length up to the graph shape used for it.
func bucketLen(n, T int) int {
	b := 16
	for b < n {
		b *= 2
	}
	return min(b, T)
}

// compileSeqs truncates seqs to T (in place) and lays them out in a batch
// of the bucketed length.
func compileSeqs(seqs []*data.ActionSeq, T int) (*data.Batch, error) {
	longest := 0
	for i, s := range seqs {
		ts, _, err := data.Truncate(s, T)
		if err != nil {
			return nil, err
		}
		seqs[i] = ts
		longest = max(longest, ts.NumInputs())
	}
	return data.Compile(seqs, bucketLen(longest, T))
}

func (e *Evaluator) fwdGraphFor(B, T int) (*fwdGraph, error) {
	key := [2]int{B, T}
	if g, ok := e.graphs[key]; ok {
		return g, nil
	}
	g, err := model.NewGraph(e.params, B, T)
	if err != nil {
		return nil, err
	}
	m, err := g.CompileForward()
	if err != nil {
		return nil, err
	}
	fg := &fwdGraph{g: g, m: m}
	e.graphs[key] = fg
	return fg, nil
}

// EvalResult is the outcome of one evaluation on a set of sequences.
type EvalResult struct {
	NLL        float64            `json:"nll"`
	Perplexity float64            `json:"perplexity"`
	Loss       float64            `json:"loss"`
	Components map[string]float64 `json:"components"`
	// Tokens is the number of actions the objective's loss averages over
	// (augmented sequences when the objective adds noise).
	Tokens int `json:"tokens"`
	// NLLTokens is the number of actions of the clean sequences the NLL
	// averages over.
	NLLTokens int `json:"nll_tokens"`
	Sequences int `json:"sequences"`
}

// Evaluate computes the token-mean NLL (clean sequences, MLE) and the
// objective's loss and components (augmented with a fixed seed when the
// objective wants noise) over seqs, forward only, with λ = lambda. At most
// maxBatches batches of batch_size sequences are used (0 = all).
func (e *Evaluator) Evaluate(seqs []*data.ActionSeq, maxBatches int, lambda float64) (EvalResult, error) {
	res := EvalResult{Components: map[string]float64{}, Sequences: len(seqs)}
	if len(seqs) == 0 {
		return res, nil
	}
	B := e.cfg.BatchSize
	var nllSum, lossSum float64
	nll := 0
	nb := 0
	work := &objective.Workspace{}
	// the noise options are the same for every batch (unigram noise
	// without training data counts the tokens of all of seqs)
	var noise *data.AugmentOptions
	if e.obj.Augmented() && e.cfg.Eta > 0 {
		noise = e.noiseOptions(seqs)
	}
	for s := 0; s < len(seqs); s += B {
		if maxBatches > 0 && nb >= maxBatches {
			break
		}
		nb++
		part := seqs[s:min(len(seqs), s+B)]
		for pass := 0; pass < 2; pass++ {
			cur := make([]*data.ActionSeq, len(part))
			copy(cur, part)
			obj := e.mle
			if pass == 1 {
				if e.obj.Name() == "mle" {
					break
				}
				obj = e.obj
				if noise != nil {
					rng := rand.New(rand.NewPCG(uint64(e.cfg.Seed), uint64(0xe7a1+s)))
					a, err := data.AugmentBatch(cur, *noise, rng)
					if err != nil {
						return res, err
					}
					cur = a
				}
			}
			b, err := compileSeqs(cur, e.cfg.NPositions)
			if err != nil {
				return res, err
			}
			fg, err := e.fwdGraphFor(b.B, b.T)
			if err != nil {
				return res, err
			}
			if err := fg.g.SetBatch(b.Inputs, b.Positions, b.Parents); err != nil {
				return res, err
			}
			if err := fg.m.Step(); err != nil {
				return res, err
			}
			r, err := obj.Loss32(fg.g.Logits32(), e.params.Cfg.VocabSize, b,
				objective.Params{BkspcID: int(e.tok.BkspcID()), Lambda: lambda, Work: work}, nil)
			if err != nil {
				return res, err
			}
			n := b.NumTokens()
			if pass == 0 {
				nllSum += r.Loss * float64(n)
				nll += n
			} else {
				lossSum += r.Loss * float64(n)
				for k, v := range r.Components {
					res.Components[k] += v * float64(n)
				}
				res.Tokens += n
			}
		}
	}
	res.NLLTokens = nll
	if nll > 0 {
		res.NLL = nllSum / float64(nll)
		res.Perplexity = math.Exp(res.NLL)
	}
	if e.obj.Name() == "mle" {
		res.Loss, res.Tokens = res.NLL, nll
	} else if res.Tokens > 0 {
		res.Loss = lossSum / float64(res.Tokens)
		for k := range res.Components {
			res.Components[k] /= float64(res.Tokens)
		}
	}
	return res, nil
}

// Evaluate evaluates the trainer's current model on seqs (see
// Evaluator.Evaluate).
func Evaluate(t *Trainer, seqs []*data.ActionSeq, maxBatches int, lambda float64) (EvalResult, error) {
	return t.ev.Evaluate(seqs, maxBatches, lambda)
}

// Evaluator returns the trainer's evaluator (its model, tokenizer and
// configuration).
func (t *Trainer) Evaluator() *Evaluator { return t.ev }

// ReadCheckpointState reads trainer_state.json of a checkpoint folder.
func ReadCheckpointState(dir string) (*State, error) { return readState(dir) }
