package data

import (
	"errors"
	"fmt"
)

// SplitEpisodes returns the training and validation episodes of a run:
// val when given, else a by-episode split of train (Split with valFrac
// and seed). With fewer than two episodes or valFrac 0 nothing is split
// off. The trainer and `smtrain eval` split through it, so eval scores the
// same held-out episodes training left out.
func SplitEpisodes(train, val []Episode, valFrac float64, seed uint64) (trainEps, valEps []Episode, err error) {
	if len(val) > 0 || !(valFrac > 0) || len(train) < 2 {
		return train, val, nil
	}
	tr, va, err := Split(len(train), valFrac, seed)
	if err != nil {
		return nil, nil, err
	}
	for _, i := range tr {
		trainEps = append(trainEps, train[i])
	}
	for _, i := range va {
		valEps = append(valEps, train[i])
	}
	return trainEps, valEps, nil
}

// EpisodeTexts lists the message contents of eps: the text a BPE
// tokenizer for them is trained on.
func EpisodeTexts(eps []Episode) []string {
	var out []string
	for _, e := range eps {
		for _, m := range e.Messages {
			out = append(out, m.Content)
		}
	}
	return out
}

// PrepareOptions say how Prepare turns a run's episodes into sequences.
type PrepareOptions struct {
	// ValFraction and Seed split the validation episodes off the training
	// ones when none are given (SplitEpisodes).
	ValFraction float64
	Seed        uint64
	// Tokenizer, when set, tokenizes the episodes; otherwise a BPE of
	// VocabSize tokens is trained on the training split.
	Tokenizer *Tokenizer
	VocabSize int
	// T is the longest sequence in inputs (n_positions) and Mode how
	// episodes become sequences (BuildSeqs).
	T    int
	Mode SeqMode
}

// Prepared are a run's inputs ready for training: the split episodes,
// their tokenizer and their sequences.
type Prepared struct {
	TrainEps, ValEps []Episode
	Tokenizer        *Tokenizer
	Train, Val       []*ActionSeq
}

// Prepare splits a run's episodes into training and validation
// (SplitEpisodes), trains a tokenizer on the training split when
// o.Tokenizer is nil, and builds the sequences of both (BuildSeqs).
func Prepare(train, val []Episode, o PrepareOptions) (*Prepared, error) {
	if len(train) == 0 {
		return nil, errors.New("no training episodes")
	}
	p := &Prepared{Tokenizer: o.Tokenizer}
	var err error
	if p.TrainEps, p.ValEps, err = SplitEpisodes(train, val, o.ValFraction, o.Seed); err != nil {
		return nil, err
	}
	if p.Tokenizer == nil {
		if p.Tokenizer, err = BuildTokenizer(EpisodeTexts(p.TrainEps), o.VocabSize); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	if p.Train, _, err = BuildSeqs(p.Tokenizer, p.TrainEps, o.T, o.Mode); err != nil {
		return nil, fmt.Errorf("training data: %w", err)
	}
	if len(p.ValEps) > 0 {
		if p.Val, _, err = BuildSeqs(p.Tokenizer, p.ValEps, o.T, o.Mode); err != nil {
			return nil, fmt.Errorf("validation data: %w", err)
		}
	}
	return p, nil
}
