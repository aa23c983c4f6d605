package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"smtrain/data"
)

var cmdTokenizerTrain = &Command{
	Name:      "tokenizer train",
	UsageLine: "smtrain tokenizer train [-data PATH ...] [-text FILE ...] -vocab N -out tokenizer.json [-trainer native|sugarme] [-skip_bad]",
	Short:     "train a byte-level BPE tokenizer with the special tokens",
	Long: `Tokenizer train learns a byte-level BPE tokenizer (GPT-2 style) from the
message contents of trajectories (-data, as for data stats) and/or plain
UTF-8 text files (-text), and writes it as a Hugging Face tokenizer.json.

The vocabulary always starts with the special tokens <pad>=0, <eos>=1,
<bkspc>=2, <|system|>=3, <|user|>=4, <|assistant|>=5, <|end|>=6, then the
256 bytes (ids 7..262), then one token per merge, up to -vocab tokens
(minimum 263).

-trainer native (default) is this project's deterministic trainer (most
frequent pair first, ties by token ids). -trainer sugarme uses
github.com/sugarme/tokenizer v0.3.0's BpeTrainer (output silenced); it is
NOT deterministic (equal counts are ordered by heap and wall-clock time) and
sees only the 9,999 most frequent distinct words (its parallel pair counter
drops the rest).`,
}

func init() { cmdTokenizerTrain.Run = runTokenizerTrain }

func runTokenizerTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdTokenizerTrain.NewFlagSet(stderr)
	var paths, textFiles dataPaths
	fs.Var(&paths, "data", "trajectory file or folder (repeatable, comma-separated)")
	fs.Var(&textFiles, "text", "plain UTF-8 text file (repeatable, comma-separated)")
	vocab := fs.Int("vocab", 0, "vocabulary size (>= 263)")
	out := fs.String("out", "", "output tokenizer.json")
	trainer := fs.String("trainer", "native", "native (deterministic) or sugarme")
	skipBad := fs.Bool("skip_bad", false, "report and skip malformed files/lines instead of failing")
	strictUTF8 := fs.Bool("strict_utf8", false, strictUTF8Usage)
	if err := cmdTokenizerTrain.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	switch {
	case *out == "":
		return usagef("-out is required")
	case *vocab < data.MinVocab:
		return usagef("-vocab %d: need at least %d (7 special tokens + 256 bytes)", *vocab, data.MinVocab)
	case *trainer != "native" && *trainer != "sugarme":
		return usagef("-trainer %q: want native or sugarme", *trainer)
	case len(paths) == 0 && len(textFiles) == 0:
		return usagef("no training text (use -data or -text)")
	}
	var texts []string
	nEp := 0
	if len(paths) > 0 {
		res, err := loadForCommand(paths, data.LoadOptions{SkipBad: *skipBad, StrictUTF8: *strictUTF8}, stderr)
		if err != nil {
			return err
		}
		nEp = len(res.Episodes)
		for _, e := range res.Episodes {
			for _, m := range e.Messages {
				texts = append(texts, m.Content)
			}
		}
	}
	for _, f := range textFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			return fmt.Errorf("%s: not valid UTF-8", f)
		}
		texts = append(texts, string(b))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	var tok *data.Tokenizer
	var err error
	if *trainer == "sugarme" {
		tok, err = data.TrainSugarme(texts, *vocab)
	} else {
		tok, err = data.BuildTokenizer(texts, *vocab)
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if err := tok.Save(*out); err != nil {
		return err
	}
	nBytes, nTok := 0, 0
	for _, t := range texts {
		nBytes += len(t)
		nTok += len(tok.EncodeOrdinary(t))
	}
	ratio := 0.0
	if nTok > 0 {
		ratio = float64(nBytes) / float64(nTok)
	}
	fmt.Fprintf(stdout, "trained %s tokenizer in %.1fs on %d texts (%d episodes, %d files): vocab %d, %d merges, %.2f bytes/token on the training text\nwrote %s\n",
		*trainer, elapsed.Seconds(), len(texts), nEp, len(textFiles), tok.VocabSize(), tok.NumMerges(), ratio, *out)
	return nil
}
