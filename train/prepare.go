package train

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"

	"smtrain/data"
	"smtrain/model"
)

// resolveTokenizer returns the tokenizer of a run: the one of the
// checkpoint ck being resumed, the one of cfg.Init (with the vocabulary
// grown by smtrain's special tokens; the loaded model is returned too, see
// LoadInit), cfg.Tokenizer's file, or in.Tokenizer. It returns nil when
// none applies: data.Prepare then trains a BPE on the training split.
func resolveTokenizer(cfg Config, in Inputs, ck string) (*data.Tokenizer, *InitModel, error) {
	var (
		tok      *data.Tokenizer
		initFrom *InitModel
		err      error
	)
	switch {
	case ck != "":
		tok, err = data.LoadTokenizer(filepath.Join(ck, TokenizerFile))
	case cfg.Init != "":
		if initFrom, err = LoadInit(cfg.Init, cfg.Tokenizer, cfg.Seed); err == nil {
			tok = initFrom.Tokenizer
		}
	case cfg.Tokenizer != "":
		tok, err = data.LoadTokenizerFile(cfg.Tokenizer)
	case in.Tokenizer != nil:
		tok = in.Tokenizer
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %w", err)
	}
	return tok, initFrom, nil
}

// resolveModel returns the parameters of a run: the checkpoint ck's when
// resuming, the -init model's (its shape wins: cfg's n_layer, n_head and
// n_embd are set from it, and console says which vocabulary rows were
// dropped or grown), or new ones for tok drawn from cfg.Seed. The model's
// context must hold cfg.NPositions.
func resolveModel(cfg *Config, tok *data.Tokenizer, ck string, initFrom *InitModel, console io.Writer) (*model.Params, error) {
	var (
		params *model.Params
		err    error
	)
	switch {
	case ck != "":
		params, err = model.Load(ck, model.F32)
	case initFrom != nil:
		params = initFrom.Params
		// The checkpoint's shape wins; the written config says so.
		cfg.NLayer, cfg.NHead, cfg.NEmbd = params.Cfg.NLayer, params.Cfg.NHead, params.Cfg.NEmbd
		if initFrom.Padding > 0 {
			fmt.Fprintf(console, "init: %s, %d padding rows of the vocabulary dropped (%d -> %d: rows past the tokenizer's tokens)\n", initFrom.Dir, initFrom.Padding, initFrom.OldVocab+initFrom.Padding, initFrom.OldVocab)
		}
		if n := params.Cfg.NPositions; cfg.NPositions < n {
			fmt.Fprintf(console, "init: %s has a %d-token context; training sequences are cut to n_positions %d (set -n_positions %d to train on whole windows)\n", initFrom.Dir, n, cfg.NPositions, n)
		}
		if g := initFrom.Grown(); g > 0 {
			fmt.Fprintf(console, "init: %s, vocabulary grown %d -> %d (new rows: mean of the old ones + noise)\n", initFrom.Dir, initFrom.OldVocab, params.Cfg.VocabSize)
		} else {
			fmt.Fprintf(console, "init: %s\n", initFrom.Dir)
		}
	default:
		mcfg := model.Config{NLayer: cfg.NLayer, NHead: cfg.NHead, NEmbd: cfg.NEmbd, NPositions: cfg.NPositions,
			VocabSize: tok.VocabSize(), LayerNormEpsilon: 1e-5,
			BkspcTokenID: int(tok.BkspcID()), EOSTokenID: int(tok.EOSID())}
		params, err = model.NewParams(mcfg, model.F32, rand.New(rand.NewPCG(uint64(cfg.Seed), 0x1417)))
	}
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if params.Cfg.NPositions < cfg.NPositions {
		return nil, fmt.Errorf("model context %d is shorter than n_positions %d", params.Cfg.NPositions, cfg.NPositions)
	}
	return params, nil
}
