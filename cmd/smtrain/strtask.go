package main

import (
	"fmt"

	"smtrain/data"
	"smtrain/train"
)

// stringInputs are the episodes of the copy, sort or reverse task (as
// arithInputs: arith_train training and arith_test validation questions,
// split by the run's seed).
func stringInputs(cfg train.Config) (train.Inputs, error) {
	sc := data.StringTaskConfig{Kind: cfg.Task, MinLen: cfg.StrMinLen, MaxLen: cfg.StrMaxLen, Alphabet: cfg.StrAlphabet,
		NTrain: cfg.ArithTrain, NTest: cfg.ArithTest, Seed: uint64(cfg.Seed)}
	tr, te, err := data.StringTaskSplits(sc)
	if err != nil {
		return train.Inputs{}, err
	}
	in := train.Inputs{Tokenizer: data.ArithTokenizer(),
		Describe: fmt.Sprintf("%s %d-%d symbols over %q", cfg.Task, cfg.StrMinLen, cfg.StrMaxLen, cfg.StrAlphabet)}
	for _, p := range tr {
		in.Train = append(in.Train, p.Episode())
	}
	for _, p := range te {
		in.Val = append(in.Val, p.Episode())
	}
	return in, nil
}
