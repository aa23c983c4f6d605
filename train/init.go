package train

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"smtrain/data"
	"smtrain/model"
)

// InitModel is a starting point loaded by LoadInit: a checkpoint's weights
// and the tokenizer that goes with them, with the vocabulary grown to hold
// smtrain's special tokens.
type InitModel struct {
	// Dir is the checkpoint folder the weights came from.
	Dir string
	// Params are the weights (float32), with Cfg.BkspcTokenID and
	// Cfg.EOSTokenID set to the tokenizer's <bkspc> and <eos>.
	Params *model.Params
	// Tokenizer is the checkpoint's tokenizer (or the one given), with
	// any special tokens it lacked appended (data.LoadTokenizer).
	Tokenizer *data.Tokenizer
	// OldVocab is the number of the checkpoint's wte rows kept (its
	// vocab_size less any padding); rows OldVocab..V-1 of wte were added
	// (none when it equals Params.Cfg.VocabSize).
	OldVocab int
	// Padding is the number of the checkpoint's rows dropped: rows past
	// the tokenizer's vocabulary in a checkpoint whose vocab_size was
	// rounded up (e.g. 50,257 tokens in 50,304 rows).
	Padding int
}

// Grown is the number of vocabulary rows added to the checkpoint.
func (m *InitModel) Grown() int { return m.Params.Cfg.VocabSize - m.OldVocab }

// ResolveCheckpoint returns the checkpoint folder named by path: a run's
// output folder (its latest marker is followed) or a checkpoint folder
// itself (smtrain's or HF GPT-2's: model.safetensors + config.json).
func ResolveCheckpoint(path string) (string, error) {
	if fileExists(filepath.Join(path, LatestFile)) {
		return latestCheckpoint(path)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("checkpoint %s: no such folder", path)
	}
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("checkpoint %s: not a folder", path)
	}
	if !fileExists(filepath.Join(path, model.ModelFile)) {
		return "", fmt.Errorf("checkpoint %s: neither a checkpoint folder (no %s) nor a run folder (no %s marker)", path, model.ModelFile, LatestFile)
	}
	return path, nil
}

// LoadInit loads the weights of the checkpoint at path (see
// ResolveCheckpoint) and its tokenizer: tokenizerPath when given, else the
// folder's tokenizer.json (HF format; GPT-2's byte-level BPE works), or
// without one its GPT-2 vocab.json and merges.txt. When
// the tokenizer lacks smtrain's special tokens (<pad>, <eos>, <bkspc>, the
// role markers and <|end|>), data.LoadTokenizer appends them after the
// largest id, and the model's vocabulary grows to match with
// model.GrowVocab: new rows of wte (the tied LM head) start at the mean of
// the existing rows plus noise of 1% of their spread, drawn from a stream
// seeded by seed; the new <eos> starts from the checkpoint's own
// eos_token_id row when that is an old token (GPT-2's <|endoftext|>), so
// the model keeps its sense of where text ends. n_positions and all other
// weights are kept, and the logits of the old tokens are unchanged. A
// checkpoint whose vocab_size is a multiple of 64 with fewer than 128 rows
// past the tokenizer file's vocabulary has those rows as padding: they are
// dropped (InitModel.Padding) before the special tokens are added.
func LoadInit(path, tokenizerPath string, seed int64) (*InitModel, error) {
	dir, err := ResolveCheckpoint(path)
	if err != nil {
		return nil, err
	}
	if tokenizerPath == "" {
		tokenizerPath = filepath.Join(dir, TokenizerFile)
		if !fileExists(tokenizerPath) {
			v, m := filepath.Join(dir, data.GPT2VocabFile), filepath.Join(dir, data.GPT2MergesFile)
			if !fileExists(v) || !fileExists(m) {
				return nil, fmt.Errorf("checkpoint %s has no %s (nor %s and %s): give the tokenizer its weights were trained with (-tokenizer FILE)", dir, TokenizerFile, data.GPT2VocabFile, data.GPT2MergesFile)
			}
			tokenizerPath = v
		}
	}
	tok, err := data.LoadTokenizerFile(tokenizerPath)
	if err != nil {
		return nil, err
	}
	p, err := model.Load(dir, model.F32)
	if err != nil {
		return nil, err
	}
	rows, fileV, newV := p.Cfg.VocabSize, tok.FileVocabSize(), tok.VocabSize()
	// Rows past the tokenizer file's vocabulary are padding when the
	// checkpoint rounded its vocab_size up to a multiple of 64 (nanoGPT:
	// 50,257 -> 50,304); smtrain's appended special tokens then take new
	// rows, not padding ones.
	keep := rows
	if fileV < rows && rows%64 == 0 && rows-fileV < maxPadding {
		keep = fileV
	}
	switch {
	case newV < keep:
		return nil, fmt.Errorf("checkpoint %s has vocab_size %d but the tokenizer %s has only %d tokens (with smtrain's specials): not the tokenizer of these weights", dir, rows, tokenizerPath, newV)
	case newV > keep || keep < rows:
		o := model.GrowOptions{CopyFrom: map[int]int{}, Keep: keep}
		if e := p.Cfg.EOSTokenID; e >= 0 && e < keep && int(tok.EOSID()) >= keep {
			o.CopyFrom[int(tok.EOSID())] = e
		}
		rng := rand.New(rand.NewPCG(uint64(seed), 0x67726f77)) // "grow"
		if p, err = model.GrowVocab(p, newV, rng, o); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
	}
	p.Cfg.BkspcTokenID, p.Cfg.EOSTokenID = int(tok.BkspcID()), int(tok.EOSID())
	if err := p.Cfg.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint %s with tokenizer %s: %w", dir, tokenizerPath, err)
	}
	return &InitModel{Dir: dir, Params: p, Tokenizer: tok, OldVocab: keep, Padding: rows - keep}, nil
}

// maxPadding bounds the padding rows LoadInit assumes (vocabularies are
// rounded up to multiples of 64 or 128).
const maxPadding = 128
