package train

import (
	"fmt"

	"smtrain/data"
	"smtrain/model"
)

// noiseOptions are the augmentation options of cfg for an evaluator: the
// unigram distribution of unigram noise (the training data's action tokens,
// or those of the sequences being scored when there is no training data)
// and the evaluator's model as the policy of policy noise.
func (e *Evaluator) noiseOptions(scored []*data.ActionSeq) *data.AugmentOptions {
	o := &data.AugmentOptions{Eta: e.cfg.Eta, Kind: data.NoiseKind(e.cfg.NoiseKind), NoiseAsAction: e.cfg.NoiseAsAction,
		Vocab: e.tok.OrdinaryIDs(), Specials: e.tok.Specials(), Temperature: e.cfg.NoiseTemp}
	switch o.Kind {
	case data.NoiseUnigram:
		o.Unigram = e.unigram
		if o.Unigram == nil {
			o.Unigram = data.ActionUnigram(scored, e.tok.Specials())
		}
	case data.NoisePolicy:
		o.Policy = e.PolicyLogits
	}
	return o
}

// policyRows is the batch granularity of the policy-noise forward: the
// sequences are padded to a multiple of it so few graph shapes are
// compiled.
const policyRows = 8

// PolicyLogits is the data.PolicyLogits of the evaluator's model: one
// forward (no gradient) of the distinct queried sequences, clean, and the
// logits at the state of each queried action. A query whose sequence does
// not fit n_positions gets nil (no noise there). The returned rows alias
// the forward's logits buffer until the next forward of that shape.
func (e *Evaluator) PolicyLogits(seqs []*data.ActionSeq, qs []data.NoiseQuery) ([][]float32, error) {
	out := make([][]float32, len(qs))
	row := map[int]int{} // seqs index -> batch row
	var rows []*data.ActionSeq
	for _, q := range qs {
		if q.Seq < 0 || q.Seq >= len(seqs) {
			return nil, fmt.Errorf("policy logits: query of sequence %d of %d", q.Seq, len(seqs))
		}
		if _, ok := row[q.Seq]; ok {
			continue
		}
		s := seqs[q.Seq]
		if s.NumInputs() > e.cfg.NPositions {
			continue
		}
		row[q.Seq] = len(rows)
		rows = append(rows, s)
	}
	if len(rows) == 0 {
		return out, nil
	}
	b, logits, err := e.forwardRows(rows)
	if err != nil {
		return nil, fmt.Errorf("policy logits: %w", err)
	}
	V := e.params.Cfg.VocabSize
	// first transition of each row: the clean sequences' transitions are
	// their actions in order
	first := make([]int, b.B+1)
	for i := range first {
		first[i] = -1
	}
	for k, tr := range b.Trans {
		if first[tr.Seq] < 0 {
			first[tr.Seq] = k
		}
	}
	for k, q := range qs {
		r, ok := row[q.Seq]
		if !ok {
			continue
		}
		s := seqs[q.Seq]
		it := s.Items[q.Item]
		if it.Kind != data.KindAction {
			return nil, fmt.Errorf("policy logits: item %d of sequence %d is not an action", q.Item, q.Seq)
		}
		nth := 0 // index of the action among the row's transitions
		for j := 0; j < q.Item; j++ {
			if s.Items[j].Kind == data.KindAction || (s.Items[j].Kind == data.KindNoise && s.NoiseAsAction) {
				nth++
			}
		}
		t := first[r] + nth
		if first[r] < 0 || t >= len(b.Trans) || int(b.Trans[t].Seq) != r || b.Trans[t].Action != it.Tok {
			return nil, fmt.Errorf("policy logits: no transition for item %d of sequence %d", q.Item, q.Seq)
		}
		st := int(b.Trans[t].State)
		out[k] = logits[st*V : (st+1)*V]
	}
	return out, nil
}

// forwardRows runs the model forward (no gradient) on rows, padded with
// copies of rows[0] to a multiple of policyRows so few graph shapes are
// compiled, and returns the batch and its logits [B*T*V] (valid until the
// next forward of that shape). Every row must fit n_positions.
func (e *Evaluator) forwardRows(rows []*data.ActionSeq) (*data.Batch, []float32, error) {
	rows = append([]*data.ActionSeq(nil), rows...)
	for len(rows)%policyRows != 0 {
		rows = append(rows, rows[0])
	}
	b, err := compileSeqs(rows, e.cfg.NPositions)
	if err != nil {
		return nil, nil, err
	}
	fg, err := e.fwdGraphFor(b.B, b.T)
	if err != nil {
		return nil, nil, err
	}
	if err := fg.g.SetBatch(b.Inputs, b.Positions, b.Parents); err != nil {
		return nil, nil, err
	}
	if err := fg.m.Step(); err != nil {
		return nil, nil, err
	}
	return b, fg.g.Logits32(), nil
}

// Tokenizer is the evaluator's tokenizer.
func (e *Evaluator) Tokenizer() *data.Tokenizer { return e.tok }

// Params are the evaluator's model parameters.
func (e *Evaluator) Params() *model.Params { return e.params }
