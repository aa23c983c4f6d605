package train

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"smtrain/data"
	"smtrain/decode"
)

// BkspcDiag accumulates the backspace diagnostics of decoded answers
// checked against their correct answers (tasks with a checker). For one
// answer the actions are replayed on a stack; a state is "on track" while
// the answer so far is a prefix of some correct answer.
//
//   - first divergence: the first pushed token after which the answer so
//     far is no longer a prefix of any correct answer (its position is the
//     0-based index of that token in the answer);
//   - ⌫ recall: first divergences immediately followed by <bkspc> / first
//     divergences;
//   - false-⌫ rate: <bkspc> taken in on-track states / actions taken in
//     on-track states;
//   - ⌫ precision: <bkspc> taken in diverged states / all <bkspc>;
//   - corrections: answers that diverged and still ended correct (a stop
//     token with the answer equal to a correct answer).
//
// A stop token taken on track but before the answer is complete is a wrong
// stop, not a divergence (nothing can follow it).
type BkspcDiag struct {
	Answers      int `json:"answers"`
	Correct      int `json:"correct"`
	Diverged     int `json:"diverged"`
	DivergedBk   int `json:"diverged_then_bkspc"`
	DivPosSum    int `json:"first_divergence_pos_sum"`
	OnTrack      int `json:"on_track_actions"`
	FalseBk      int `json:"false_bkspc"`
	Bk           int `json:"bkspc"`
	BkDiverged   int `json:"bkspc_on_diverged"`
	Corrections  int `json:"corrections"`
	WrongStop    int `json:"wrong_stops"`
	WithBk       int `json:"answers_with_bkspc"`
	NoStop       int `json:"no_stop"`
	ActionsTotal int `json:"actions"`
}

// isPrefixOfAny reports whether p is a prefix of some ref; full reports
// whether it equals one.
func isPrefixOfAny(p []int32, refs [][]int32) (prefix, full bool) {
	for _, r := range refs {
		if len(p) <= len(r) && slices.Equal(p, r[:len(p)]) {
			prefix = true
			if len(p) == len(r) {
				full = true
			}
		}
	}
	return prefix, full
}

// Add replays one decoded answer (its actions, <bkspc> included, ending
// with a stop token unless the decode was cut) against refs, the correct
// answers as token sequences without the stop token, and reports whether
// it ended correct.
func (d *BkspcDiag) Add(actions []int32, refs [][]int32, bkspc int32, stop []int32) bool {
	d.Answers++
	d.ActionsTotal += len(actions)
	var stack []int32
	diverged, usedBk, correct, stopped := false, false, false, false
	for i, a := range actions {
		onTrack, full := isPrefixOfAny(stack, refs)
		if onTrack {
			d.OnTrack++
		}
		if a == bkspc {
			d.Bk++
			usedBk = true
			if onTrack {
				d.FalseBk++
			} else {
				d.BkDiverged++
			}
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if slices.Contains(stop, a) {
			stopped = true
			correct = full
			if onTrack && !full {
				d.WrongStop++
			}
			break
		}
		stack = append(stack, a)
		if onTrack && !diverged {
			if now, _ := isPrefixOfAny(stack, refs); !now {
				diverged = true
				d.Diverged++
				d.DivPosSum += len(stack) - 1
				if i+1 < len(actions) && actions[i+1] == bkspc {
					d.DivergedBk++
				}
			}
		}
	}
	if !stopped {
		d.NoStop++
	}
	if usedBk {
		d.WithBk++
	}
	if correct {
		d.Correct++
		if diverged {
			d.Corrections++
		}
	}
	return correct
}

// Merge adds o's counts to d.
func (d *BkspcDiag) Merge(o BkspcDiag) {
	d.Answers += o.Answers
	d.Correct += o.Correct
	d.Diverged += o.Diverged
	d.DivergedBk += o.DivergedBk
	d.DivPosSum += o.DivPosSum
	d.OnTrack += o.OnTrack
	d.FalseBk += o.FalseBk
	d.Bk += o.Bk
	d.BkDiverged += o.BkDiverged
	d.Corrections += o.Corrections
	d.WrongStop += o.WrongStop
	d.WithBk += o.WithBk
	d.NoStop += o.NoStop
	d.ActionsTotal += o.ActionsTotal
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// Recall is first divergences followed by <bkspc> / first divergences
// (NaN when nothing diverged).
func (d BkspcDiag) Recall() float64 { return ratio(d.DivergedBk, d.Diverged) }

// FalseRate is <bkspc> in on-track states / actions in on-track states.
func (d BkspcDiag) FalseRate() float64 { return ratio(d.FalseBk, d.OnTrack) }

// Precision is <bkspc> on diverged prefixes / all <bkspc> (NaN without any).
func (d BkspcDiag) Precision() float64 { return ratio(d.BkDiverged, d.Bk) }

// Metrics returns the diagnostics as named metrics with suffix appended to
// each key: bk_recall, false_bk_rate, bk_precision, corrections (per
// answer), corrected_share (of diverged answers), diverged (share of
// answers), first_div_pos (mean), bk_answers (share of answers with a
// <bkspc>). Undefined ratios are NaN.
func (d BkspcDiag) Metrics(suffix string) map[string]float64 {
	return map[string]float64{
		"bk_recall" + suffix:       d.Recall(),
		"false_bk_rate" + suffix:   d.FalseRate(),
		"bk_precision" + suffix:    d.Precision(),
		"corrections" + suffix:     ratio(d.Corrections, d.Answers),
		"corrected_share" + suffix: ratio(d.Corrections, d.Diverged),
		"diverged" + suffix:        ratio(d.Diverged, d.Answers),
		"first_div_pos" + suffix:   ratio(d.DivPosSum, d.Diverged),
		"bk_answers" + suffix:      ratio(d.WithBk, d.Answers),
	}
}

// String is the one-line console form.
func (d BkspcDiag) String() string {
	f := func(x float64) string {
		if math.IsNaN(x) {
			return "—"
		}
		return strconv.FormatFloat(x, 'f', 3, 64)
	}
	var b strings.Builder
	b.WriteString("⌫ recall " + f(d.Recall()) + " (" + strconv.Itoa(d.DivergedBk) + "/" + strconv.Itoa(d.Diverged) + ")")
	b.WriteString(" | false-⌫ " + f(d.FalseRate()))
	b.WriteString(" | ⌫ precision " + f(d.Precision()))
	b.WriteString(" | corrections " + strconv.Itoa(d.Corrections) + "/" + strconv.Itoa(d.Answers))
	b.WriteString(" | first divergence at " + f(ratio(d.DivPosSum, d.Diverged)))
	return b.String()
}

// refIndex maps a prompt to the expert answers seen for it (action tokens
// before the terminal action): the checker of replay generations, for
// tasks whose prompts have a fixed set of correct answers.
type refIndex map[string][][]int32

func promptKey(p []int32) string {
	var b strings.Builder
	for _, t := range p {
		b.WriteString(strconv.Itoa(int(t)))
		b.WriteByte(',')
	}
	return b.String()
}

// newRefIndex indexes the clean single-turn sequences of seqs (sequences
// with observations, noise or <bkspc> are left out).
func newRefIndex(seqs []*data.ActionSeq) refIndex {
	idx := refIndex{}
	for _, s := range seqs {
		var ans []int32
		ok := s.Done
		for _, it := range s.Items {
			if it.Kind != data.KindAction || it.Tok == s.Bkspc {
				ok = false
				break
			}
			ans = append(ans, it.Tok)
		}
		if !ok || len(ans) == 0 {
			continue
		}
		ans = ans[:len(ans)-1] // the terminal action
		k := promptKey(s.Prompt)
		idx[k] = AddRef(idx[k], ans)
	}
	return idx
}

// AddRef appends the reference answer ref to refs unless refs holds it.
func AddRef(refs [][]int32, ref []int32) [][]int32 {
	for _, r := range refs {
		if slices.Equal(r, ref) {
			return refs
		}
	}
	return append(refs, ref)
}

// replayDiag are the backspace metrics of one replay refresh: the share of
// generations with a <bkspc> and, for generations whose prompt has expert
// answers in the training data, the share of first divergences followed by
// <bkspc> (with its counts).
func (t *Trainer) replayDiag(res []decode.Result) map[string]any {
	if t.refs == nil {
		t.refs = newRefIndex(t.trainSq)
	}
	var d BkspcDiag
	withBk := 0
	stop := []int32{t.tok.EOSID(), t.tok.EndID()}
	for _, r := range res {
		if r.NumBkspc > 0 {
			withBk++
		}
		if refs := t.refs[promptKey(r.Prompt)]; len(refs) > 0 {
			d.Add(r.Actions, refs, t.tok.BkspcID(), stop)
		}
	}
	out := map[string]any{}
	if len(res) > 0 {
		out["with_bkspc_share"] = ratio(withBk, len(res))
	}
	if d.Answers > 0 {
		out["checked"] = d.Answers
		out["diverged"] = d.Diverged
		out["bkspc_after_divergence"] = d.DivergedBk
		if d.Diverged > 0 {
			out["bkspc_after_divergence_share"] = d.Recall()
		}
	}
	return out
}

// ProbBinEdges are the upper edges of the probability bins of
// BkspcByProb: p < 0.01, 0.01 <= p < 0.1, 0.1 <= p < 0.5, p >= 0.5.
var ProbBinEdges = []float64{0.01, 0.1, 0.5}

// ProbBins counts, per bin of the model's probability of a pushed token,
// the pushed tokens and those followed by <bkspc>: P(⌫ | the previous
// token had probability in the bin), the diagnostic for data without a
// checker.
type ProbBins struct {
	Pushed []int `json:"pushed"`
	Bk     []int `json:"bkspc_after"`
}

// BinKeys are the metric key suffixes of the bins.
func BinKeys() []string {
	return []string{"p_lt_0.01", "p_0.01_0.1", "p_0.1_0.5", "p_ge_0.5"}
}

// Metrics are bk_after_<bin> (P(⌫ | bin), absent when the bin is empty)
// and pushed_<bin> (the bin's share of pushed tokens).
func (pb ProbBins) Metrics() map[string]float64 {
	m := map[string]float64{}
	total := 0
	for _, n := range pb.Pushed {
		total += n
	}
	for i, k := range BinKeys() {
		if pb.Pushed[i] > 0 {
			m["bk_after_"+k] = ratio(pb.Bk[i], pb.Pushed[i])
		}
		if total > 0 {
			m["pushed_"+k] = ratio(pb.Pushed[i], total)
		}
	}
	return m
}

// BkspcByProb scores decoded results with the evaluator's model: for
// every pushed token (not <bkspc>, not the stop action) its probability
// under the model at the state where it was chosen (temperature 1, full
// vocabulary), binned by ProbBinEdges, and whether the next action is
// <bkspc>. Results whose prompt and actions do not fit n_positions are
// left out.
func (e *Evaluator) BkspcByProb(rs []decode.Result) (ProbBins, error) {
	nb := len(ProbBinEdges) + 1
	pb := ProbBins{Pushed: make([]int, nb), Bk: make([]int, nb)}
	sp := e.tok.Specials()
	V := e.params.Cfg.VocabSize
	var rows []*data.ActionSeq
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		b, logits, err := e.forwardRows(rows)
		if err != nil {
			return err
		}
		k := 0 // transitions of row r are its actions in order
		for r := range rows {
			acts := rows[r].Items
			for i, it := range acts {
				tr := b.Trans[k]
				k++
				if it.Tok == sp.Bkspc || i == len(acts)-1 && rows[r].Done {
					continue
				}
				row := logits[int(tr.State)*V : (int(tr.State)+1)*V]
				mx := float32(math.Inf(-1))
				for _, l := range row {
					mx = max(mx, l)
				}
				z := 0.0
				for _, l := range row {
					z += math.Exp(float64(l - mx))
				}
				p := math.Exp(float64(row[it.Tok]-mx)) / z
				bin := len(ProbBinEdges)
				for j, edge := range ProbBinEdges {
					if p < edge {
						bin = j
						break
					}
				}
				pb.Pushed[bin]++
				if i+1 < len(acts) && acts[i+1].Tok == sp.Bkspc {
					pb.Bk[bin]++
				}
			}
		}
		rows = rows[:0]
		return nil
	}
	for _, r := range rs {
		if len(r.Actions) == 0 {
			continue
		}
		done := r.Stop == decode.StopToken
		s := data.GenSeq(r.Prompt, r.Actions, done, sp)
		s.Set = data.SetD
		if s.Validate() != nil || s.NumInputs() > e.cfg.NPositions {
			continue
		}
		rows = append(rows, s)
		if len(rows) == policyRows*4 {
			if err := flush(); err != nil {
				return pb, err
			}
		}
	}
	return pb, flush()
}
