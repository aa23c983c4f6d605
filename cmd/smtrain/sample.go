package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/model"
	"smtrain/train"
)

var cmdSample = &Command{
	Name:      "sample",
	UsageLine: "smtrain sample -ckpt DIR [-prompt TEXT | -prompt_file F] [-n N] [-max_new N] [-temperature T] [-top_k K] [-top_p P] [-greedy] [-seed S] [-constrain action|none] [-show_actions] [-json]",
	Short:     "sample completions with backspace from a checkpoint",
	Long: `Sample loads a checkpoint folder (config.json, model.safetensors,
tokenizer.json; or a training output folder with a 'latest' marker), puts
the prompt through the chat template as a user turn followed by the
assistant marker, and decodes N samples with the KV-cache decoder. A
prompt longer than the context minus -max_new (but at least half the
context) is left-truncated the way training truncates, with a note on
stderr.

At every step the policy chooses among all tokens, <bkspc> included
(softmax of logits / temperature, then top-k and top-p). A token is one
incremental forward step; <bkspc> deletes the last generated token without
a forward pass (it can never delete the prompt). Top-k/top-p never remove
<bkspc> unless -bkspc_filter is given. A sample stops at <eos> or <|end|>,
when its text contains a -stop string (the text keeps it), when its completion reaches -max_new tokens, or after -max_actions actions
in all (default 4 x max-new; reported as hitting the cap). -greedy takes
the most likely action; with it, the retry block is on by default: a token
just deleted is masked once at the state it was deleted from, which breaks
x, <bkspc>, x, <bkspc> loops (-retry_block on|off|auto).

-constrain action decodes under a grammar of MLE-Dojo's reply format (prose,
then a ` + "```" + `json action block that parses and validates): only tokens that
keep the text a prefix of such a reply, completable within -max_new tokens
and -max_actions actions, may be sampled, renormalised over them.

Samples are decoded in batches (one batched forward step over the live
samples of a batch) on several cores; sample i draws from its own random
stream derived from (seed, i), so output is reproducible.

Text output prints each sample's final text; -show_actions also prints the
action sequence with deleted tokens struck through as ~~deleted~~. -json
prints one JSON object per sample: index, text, tokens, actions (with
<bkspc>), actions_text (the actions with deletions as ~~x~~, always),
num_bkspc, num_actions, hit_cap, stop_reason, tokens_per_sec, ...
A summary goes to stderr.`,
}

func init() { cmdSample.Run = runSample }

// sampleJSON is one -json output line.
type sampleJSON struct {
	decode.Result
	PromptText  string `json:"prompt_text"`
	ActionsText string `json:"actions_text"`
	BkspcID     int32  `json:"bkspc_id"`
}

func runSample(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdSample.NewFlagSet(stderr)
	ckpt := fs.String("ckpt", "", "checkpoint folder (required)")
	prompt := fs.String("prompt", "", "prompt text (a user turn)")
	promptFile := fs.String("prompt_file", "", "file holding the prompt text")
	n := fs.Int("n", 1, "number of samples")
	maxNew := fs.Int("max_new", 256, "maximum tokens in a completion")
	maxActions := fs.Int("max_actions", 0, "cap on all actions incl. <bkspc> (0: 4 x max-new)")
	temp := fs.Float64("temperature", 1, "softmax temperature (> 0)")
	topK := fs.Int("top_k", 0, "keep the K most likely actions (0: off)")
	topP := fs.Float64("top_p", 0, "keep the most likely actions up to probability P (0 or 1: off)")
	greedy := fs.Bool("greedy", false, "take the most likely action")
	seed := fs.Uint64("seed", 1, "random seed")
	retry := fs.String("retry_block", "auto", "retry block: auto (on for greedy), on, off")
	bkFilter := fs.Bool("bkspc_filter", false, "let top-k/top-p remove <bkspc>")
	noBkspc := fs.Bool("no_bkspc", false, "never choose <bkspc>")
	workers := fs.Int("workers", 0, "batches decoded in parallel (0: all cores)")
	batch := fs.Int("batch", 0, "samples per batched decoder (0: min(8, n))")
	var stops []string
	fs.Func("stop", "stop when the completion contains this string (repeatable)", func(v string) error {
		if v == "" {
			return errors.New("empty stop string")
		}
		stops = append(stops, v)
		return nil
	})
	constrain := addConstrainFlag(fs, "constrain completions")
	weights := addWeightsFlag(fs)
	showActions := fs.Bool("show_actions", false, "also print the action sequence with deletions")
	asJSON := fs.Bool("json", false, "print one JSON object per sample")
	if err := cmdSample.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case *ckpt == "":
		return usagef("-ckpt is required")
	case set["prompt"] && set["prompt_file"]:
		return usagef("give -prompt or -prompt_file, not both")
	case *n <= 0:
		return usagef("-n must be positive, got %d", *n)
	case *maxNew <= 0:
		return usagef("-max_new must be positive, got %d", *maxNew)
	case *maxActions < 0:
		return usagef("-max_actions must be >= 0, got %d", *maxActions)
	case *workers < 0 || *batch < 0:
		return usagef("-workers and -batch must be >= 0")
	}
	o := decode.DefaultOptions()
	o.Temperature, o.TopK, o.TopP, o.Greedy, o.Seed = *temp, *topK, *topP, *greedy, *seed
	o.MaxNewTokens, o.MaxActions, o.Workers, o.BatchSize = *maxNew, *maxActions, *workers, *batch
	o.BkspcInTopK, o.BkspcInTopP = *bkFilter, *bkFilter
	o.StopStrings = stops
	switch *retry {
	case "auto":
		o.RetryBlock = decode.RetryAuto
	case "on":
		o.RetryBlock = decode.RetryOn
	case "off":
		o.RetryBlock = decode.RetryOff
	default:
		return usagef("-retry_block must be auto, on or off, got %q", *retry)
	}
	// Check the flags before loading the model (the byte tokenizer stands
	// in for the checkpoint's; only the flag values are checked).
	check := decode.OptionsFor(data.ByteTokenizer(), decode.Settings{Base: o})
	if err := check.Validate(); err != nil {
		return usagef("%v", err)
	}
	text := *prompt
	if set["prompt_file"] {
		b, err := os.ReadFile(*promptFile)
		if err != nil {
			return fmt.Errorf("prompt file: %w", err)
		}
		text = string(b)
	}

	dir, p, tok, err := loadPolicy(*ckpt)
	if err != nil {
		return err
	}
	cfg := p.Cfg
	if tok.VocabSize() > cfg.VocabSize {
		return fmt.Errorf("%s: tokenizer has %d tokens but the model's vocabulary is %d", dir, tok.VocabSize(), cfg.VocabSize)
	}
	sp := tok.Specials()
	if cfg.BkspcTokenID >= 0 && int32(cfg.BkspcTokenID) != sp.Bkspc {
		return fmt.Errorf("%s: config bkspc_token_id %d but the tokenizer's <bkspc> is %d", dir, cfg.BkspcTokenID, sp.Bkspc)
	}
	o.AllowBkspc = cfg.BkspcTokenID >= 0 && !*noBkspc
	o.Grammar = constrain.grammar()
	o = decode.OptionsFor(tok, decode.Settings{Base: o, ModelVocab: cfg.VocabSize, ContextLen: cfg.NPositions})

	// A prompt too long for the context is left-truncated the way training
	// truncates, leaving room for -max_new tokens (at least half the
	// context is kept for the prompt).
	msgs := []data.Message{{Role: data.RoleUser, Content: text}}
	full, err := decode.ChatPrompt(tok, msgs, math.MaxInt)
	if err != nil {
		return fmt.Errorf("chat template: %w", err)
	}
	room := max(cfg.NPositions-*maxNew, cfg.NPositions/2)
	ptoks := full
	if len(full) > room {
		if ptoks, err = decode.ChatPrompt(tok, msgs, room); err != nil {
			return fmt.Errorf("chat template: %w", err)
		}
		fmt.Fprintf(stderr, "sample: prompt of %d tokens left-truncated to its last %d (context %d, -max_new %d)\n", len(full), len(ptoks), cfg.NPositions, *maxNew)
	}
	prompts := make([][]int32, *n)
	for i := range prompts {
		prompts[i] = ptoks
	}
	w, err := weights.load(p)
	if err != nil {
		return err
	}
	res, st, err := decode.Generate(ctx, decode.WeightsFactory(w), prompts, o)
	if err != nil {
		return err
	}
	render := func(r *decode.Result) string {
		return decode.RenderActions(r.Actions, o.BkspcID, tok.Decode)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for i := range res {
			out := sampleJSON{Result: res[i], PromptText: text, BkspcID: o.BkspcID, ActionsText: render(&res[i])}
			if err := enc.Encode(out); err != nil {
				return err
			}
		}
	} else {
		for i := range res {
			r := &res[i]
			stop := string(r.Stop)
			if r.StopTokenID >= 0 {
				stop += " " + tok.Decode([]int32{r.StopTokenID})
			} else if r.StopText != "" {
				stop += fmt.Sprintf(" %q", r.StopText)
			}
			fmt.Fprintf(stdout, "=== sample %d | stop %s | %d tokens, %d actions, %d backspaces | %.0f tok/s\n",
				r.Index, stop, len(r.Tokens), r.NumActions, r.NumBkspc, r.TokensPerSec)
			fmt.Fprintln(stdout, r.Text)
			if *showActions {
				fmt.Fprintf(stdout, "--- actions (deleted as ~~x~~)\n%s\n", render(r))
			}
		}
	}
	retryUsed := "off"
	if len(res) > 0 && res[0].RetryBlock {
		retryUsed = "on"
	}
	mode := fmt.Sprintf("temperature %g", o.Temperature)
	if o.Greedy {
		mode = "greedy"
	}
	capN := o.MaxActions
	if capN == 0 {
		capN = 4 * o.MaxNewTokens
	}
	fmt.Fprintf(stderr, "sample: %d samples | %s | retry block %s | %d hit the action cap (%d) | %d backspaces | %.0f tok/s (%s, %s weights)\n",
		st.Samples, mode, retryUsed, st.HitCap, capN, st.Pops, st.TokensPerSec, blasName(), w.Format())
	return nil
}

// loadPolicy loads the model and tokenizer of a checkpoint folder or of a
// training output folder's latest checkpoint (train.ResolveCheckpoint);
// it returns the resolved folder too.
func loadPolicy(ckpt string) (string, *model.Params, *data.Tokenizer, error) {
	dir, err := train.ResolveCheckpoint(ckpt)
	if err != nil {
		return "", nil, nil, err
	}
	p, err := model.Load(dir, model.F32)
	if err != nil {
		return "", nil, nil, err
	}
	tok, err := data.LoadTokenizer(filepath.Join(dir, train.TokenizerFile))
	if err != nil {
		return "", nil, nil, err
	}
	return dir, p, tok, nil
}
