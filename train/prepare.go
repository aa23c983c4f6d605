package train

import (
	"fmt"
	"path/filepath"

	"smtrain/data"
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
