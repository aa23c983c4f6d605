package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Cursor is a position in the data stream: the epoch and the index of the
// next batch within that epoch. It is saved in checkpoints (JSON) and
// restoring it reproduces the following batches exactly.
type Cursor struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`
}

// ParseCursor decodes a cursor saved with json.Marshal.
func ParseCursor(b []byte) (Cursor, error) {
	var c Cursor
	if err := decodeStrict(b, &c, true); err != nil {
		return c, fmt.Errorf("cursor: %w", err)
	}
	if c.Epoch < 0 || c.Index < 0 {
		return c, fmt.Errorf("cursor: negative epoch or index (%d, %d)", c.Epoch, c.Index)
	}
	return c, nil
}

// Loader turns a fixed list of sequences into batches: per epoch a shuffle
// seeded by (Seed, epoch), length bucketing, optional noise augmentation
// seeded by (Seed, epoch, batch index) and truncation to T. NextSeqs walks
// them; the caller compiles each batch (adding sequences of its own first,
// such as replay-buffer generations).
type Loader struct {
	// Seqs are the (clean) sequences of the split.
	Seqs []*ActionSeq
	// BatchSize is the number of sequences per batch.
	BatchSize int
	// T is the maximum number of inputs per row (the model's context).
	T int
	// Seed seeds shuffles and augmentation.
	Seed uint64
	// BucketBatches groups the shuffled sequences into chunks of
	// BucketBatches*BatchSize, sorts each chunk by length and cuts it into
	// batches (whose order is shuffled again); 0 or 1 disables bucketing.
	BucketBatches int
	// DropLast drops the last, smaller batch of an epoch.
	DropLast bool
	// Augment, when non-nil, applies noise+backspace augmentation.
	Augment *AugmentOptions
	// Shuffle off keeps the sequence order (evaluation).
	NoShuffle bool

	lengths []int
	cache   map[int][][]int // epoch -> batches of indices
}

// rngFor returns the generator for (seed, a, b).
func rngFor(seed uint64, a, b uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, a<<32^b^0xd1b54a32d192ed03))
}

func (l *Loader) init() error {
	if l.BatchSize <= 0 {
		return fmt.Errorf("loader: batch size %d", l.BatchSize)
	}
	if l.T < 2 {
		return fmt.Errorf("loader: context %d", l.T)
	}
	if len(l.Seqs) == 0 {
		return errors.New("loader: no sequences")
	}
	if l.lengths == nil {
		l.lengths = make([]int, len(l.Seqs))
		for i, s := range l.Seqs {
			l.lengths[i] = min(s.NumInputs(), l.T)
		}
		l.cache = map[int][][]int{}
	}
	return nil
}

// BatchesPerEpoch is the number of batches in one epoch.
func (l *Loader) BatchesPerEpoch() int {
	n := len(l.Seqs)
	if l.BatchSize <= 0 {
		return 0
	}
	if l.DropLast {
		return n / l.BatchSize
	}
	return (n + l.BatchSize - 1) / l.BatchSize
}

// EpochOrder returns the batches of epoch as lists of sequence indices.
func (l *Loader) EpochOrder(epoch int) ([][]int, error) {
	if err := l.init(); err != nil {
		return nil, err
	}
	if b, ok := l.cache[epoch]; ok {
		return b, nil
	}
	n := len(l.Seqs)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	rng := rngFor(l.Seed, uint64(epoch), 0)
	if !l.NoShuffle {
		rng.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	var batches [][]int
	if l.BucketBatches > 1 {
		chunk := l.BucketBatches * l.BatchSize
		for s := 0; s < n; s += chunk {
			part := idx[s:min(n, s+chunk)]
			sort.SliceStable(part, func(i, j int) bool { return l.lengths[part[i]] < l.lengths[part[j]] })
		}
	}
	for s := 0; s < n; s += l.BatchSize {
		e := min(n, s+l.BatchSize)
		if l.DropLast && e-s < l.BatchSize {
			break
		}
		batches = append(batches, slices.Clone(idx[s:e]))
	}
	if l.BucketBatches > 1 && !l.NoShuffle {
		rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
	}
	if len(l.cache) > 4 {
		clear(l.cache)
	}
	l.cache[epoch] = batches
	return batches, nil
}

// batchSeqs returns the augmented, truncated sequences of batch index of
// epoch (whose batches are order).
func (l *Loader) batchSeqs(epoch, index int, order [][]int) ([]*ActionSeq, error) {
	if index < 0 || index >= len(order) {
		return nil, fmt.Errorf("loader: batch %d of epoch %d out of range (%d batches)", index, epoch, len(order))
	}
	ids := order[index]
	rng := rngFor(l.Seed, uint64(epoch), uint64(index)+1)
	seqs := make([]*ActionSeq, len(ids))
	for k, i := range ids {
		seqs[k] = l.Seqs[i]
	}
	var err error
	if l.Augment != nil {
		// one stream in batch order (AugmentBatch is Augment per sequence
		// for every kind but policy noise)
		if seqs, err = AugmentBatch(seqs, *l.Augment, rng); err != nil {
			return nil, fmt.Errorf("loader: batch %d of epoch %d: %w", index, epoch, err)
		}
	}
	for k, i := range ids {
		s, _, err := Truncate(seqs[k], l.T)
		if err != nil {
			return nil, fmt.Errorf("loader: sequence %d: %w", i, err)
		}
		seqs[k] = s
	}
	return seqs, nil
}

var errNoBatches = errors.New("loader: an epoch has no batches (fewer sequences than the batch size with DropLast)")

// NextSeqs returns the (augmented, truncated) sequences of the batch at c
// and advances c, to the next epoch after its last batch. A cursor restored
// at or past the end of its epoch continues with the next epoch's first
// batch.
func (l *Loader) NextSeqs(c *Cursor) ([]*ActionSeq, error) {
	if err := l.init(); err != nil {
		return nil, err
	}
	order, err := l.EpochOrder(c.Epoch)
	if err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return nil, errNoBatches
	}
	if c.Index >= len(order) {
		c.Epoch++
		c.Index = 0
		if order, err = l.EpochOrder(c.Epoch); err != nil {
			return nil, err
		}
	}
	seqs, err := l.batchSeqs(c.Epoch, c.Index, order)
	if err != nil {
		return nil, err
	}
	c.Index++
	if c.Index >= len(order) {
		c.Epoch++
		c.Index = 0
	}
	return seqs, nil
}

// Split divides n episodes into train and validation index lists: a
// fraction valFrac (rounded, at least one when valFrac > 0 and n >= 2) goes
// to validation, chosen by a shuffle seeded by seed. Both lists are sorted.
func Split(n int, valFrac float64, seed uint64) (train, val []int, err error) {
	if valFrac < 0 || valFrac >= 1 || math.IsNaN(valFrac) {
		return nil, nil, fmt.Errorf("validation fraction %g not in [0, 1)", valFrac)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	rng := rngFor(seed, 0x5911, 0)
	rng.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	nv := int(math.Round(valFrac * float64(n)))
	if valFrac > 0 && nv == 0 && n >= 2 {
		nv = 1
	}
	val = slices.Clone(idx[:nv])
	train = slices.Clone(idx[nv:])
	slices.Sort(val)
	slices.Sort(train)
	return train, val, nil
}

// SeqStats summarises building sequences from episodes.
type SeqStats struct {
	Episodes, Seqs, Skipped, Truncated int
	Inputs, Actions                    int // after truncation
	Reasons                            map[string]int
}

// SeqMode says how BuildSeqs turns episodes into sequences (the seq_mode
// config key).
type SeqMode string

// Values of SeqMode.
const (
	// SeqEpisode makes one sequence per episode, left-truncated to T
	// inputs by whole turns (Truncate).
	SeqEpisode SeqMode = "episode"
	// SeqTurn splits every multi-turn episode into one sequence per
	// assistant turn (SplitTurns) before truncation: the earlier history
	// is its non-deletable prompt, so long episodes contribute all their
	// turns.
	SeqTurn SeqMode = "turn"
	// SeqAuto keeps an episode whole when it fits in T inputs (so the
	// value term links its turns) and splits it per assistant turn when
	// it does not (so truncation loses no actions), with its first turns
	// kept together in one sequence as far as they fit
	// (mergeLeadingTurns). T <= 0 never splits.
	SeqAuto SeqMode = "auto"
)

// BuildSeqs applies the chat template to episodes, splits them as mode
// says and truncates each sequence to T inputs (T <= 0 disables
// truncation). Episodes that cannot be templated (no assistant turn) are
// skipped and counted in the stats. It is the one place sequences are
// built from episodes (training, validation, evaluation, replay).
func BuildSeqs(tok *Tokenizer, eps []Episode, T int, mode SeqMode) ([]*ActionSeq, SeqStats, error) {
	switch mode {
	case SeqEpisode:
		return buildSeqs(tok, eps, T, splitNever)
	case SeqTurn:
		return buildSeqs(tok, eps, T, splitAlways)
	case SeqAuto:
		return buildSeqs(tok, eps, T, splitWhenLong)
	}
	return nil, SeqStats{}, fmt.Errorf("sequence mode %q: must be %s, %s or %s", mode, SeqAuto, SeqEpisode, SeqTurn)
}

type splitMode int

const (
	splitNever splitMode = iota
	splitAlways
	splitWhenLong
)

// mergeLeadingTurns joins the first turns of a split episode (SplitTurns
// parts) back into one sequence, as many as fit in T inputs together, so
// the shared history of those turns is computed once instead of once per
// turn (an MLE-Dojo episode's first turns, short request_info actions
// after a long prompt, otherwise each repeat the prompt). The later parts
// are returned unchanged. Every action stays in exactly one sequence.
func mergeLeadingTurns(parts []*ActionSeq, T int) []*ActionSeq {
	if len(parts) < 2 {
		return parts
	}
	var best *ActionSeq
	k := 0
	merged := parts[0].Clone()
	for j := 1; j < len(parts); j++ {
		merged.Items = append(merged.Items, parts[j].Items...)
		merged.Done = parts[j].Done
		if merged.NumInputs() > T {
			break
		}
		best, k = merged.Clone(), j
	}
	if best == nil {
		return parts
	}
	return append([]*ActionSeq{best}, parts[k+1:]...)
}

func buildSeqs(tok *Tokenizer, eps []Episode, T int, mode splitMode) ([]*ActionSeq, SeqStats, error) {
	st := SeqStats{Episodes: len(eps), Reasons: map[string]int{}}
	var out []*ActionSeq
	for i := range eps {
		s, err := ChatSeq(tok, eps[i].Messages)
		if err != nil {
			st.Skipped++
			st.Reasons[err.Error()]++
			continue
		}
		parts := []*ActionSeq{s}
		if mode == splitAlways || (mode == splitWhenLong && T > 0 && s.NumInputs() > T) {
			if parts, err = SplitTurns(s); err != nil {
				return nil, st, fmt.Errorf("episode %s: %w", eps[i].Source, err)
			}
			if mode == splitWhenLong {
				parts = mergeLeadingTurns(parts, T)
			}
		}
		for _, s := range parts {
			if T > 0 {
				var info TruncInfo
				s, info, err = Truncate(s, T)
				if err != nil {
					return nil, st, fmt.Errorf("episode %s: %w", eps[i].Source, err)
				}
				if info.Truncated() {
					st.Truncated++
				}
			}
			st.Inputs += s.NumInputs()
			st.Actions += s.NumActions()
			out = append(out, s)
		}
	}
	st.Seqs = len(out)
	return out, st, nil
}
