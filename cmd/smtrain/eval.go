package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"smtrain/data"
	"smtrain/internal/atomicfile"
	"smtrain/train"
	"smtrain/train/compare"
)

var cmdEval = &Command{
	Name:      "eval",
	UsageLine: "smtrain eval -ckpt DIR [-data PATH ... | -task arith|dojo] [-split auto|all|val|train] [-objectives LIST] [-config FILE] [-json FILE] [flags for config keys]",
	Short:     "print held-out metrics (NLL, perplexity, the objective's loss components) of a checkpoint as JSON",
	Long: `Eval scores a checkpoint on held-out episodes, forward only, and prints one
JSON object: nll (token-mean negative log-likelihood of the clean expert
actions), perplexity, the objective's loss and its components (linear,
square, value, bc, ... as logged by fit; noise-augmented with a fixed seed
for objectives that use noise), the numbers of episodes, sequences and
tokens, and the checkpoint's step.

-ckpt takes a run folder (its 'latest' checkpoint is used) or a checkpoint
folder (smtrain's, or HF GPT-2 weights: model.safetensors + config.json +
tokenizer.json; a vocabulary without smtrain's special tokens is grown as
in 'fit -init').

The configuration (objective, eta, seed, n_positions, seq_mode, the data
and the arithmetic task settings) is the run's own config.json when the
checkpoint lives in a run folder, else the defaults (or -config FILE);
flags for config keys override it, as in fit.

Data: -data PATH ... (MLE-Dojo run folders, AIDE journals, JSONL chats) or
-task arith|dojo; without either, the run's own data. -split picks the
episodes: all, val (the validation split fit held out: the arithmetic test
questions, or the val_fraction split by seed), or train; auto (default)
means all for -data given here and val otherwise. -objectives mle,bc,chi2,...
adds the loss and components of each listed objective under "by_objective"
(same sequences, same λ). -eval_batches N limits
the batches of batch_size sequences (default all). -json FILE also writes
the JSON to FILE.`,
}

func init() { cmdEval.Run = runEval }

// evalReport is what eval prints.
type evalReport struct {
	Checkpoint string         `json:"checkpoint"`
	Step       *int           `json:"step"`
	Data       string         `json:"data"`
	Split      string         `json:"split"`
	Episodes   int            `json:"episodes"`
	Sequences  int            `json:"sequences"`
	Truncated  int            `json:"truncated_sequences"`
	SeqMode    string         `json:"seq_mode"`
	NPositions int            `json:"n_positions"`
	Objective  string         `json:"objective"`
	Lambda     float64        `json:"lambda"`
	NLL        any            `json:"nll"`
	Perplexity any            `json:"perplexity"`
	NLLTokens  int            `json:"nll_tokens"`
	Loss       any            `json:"loss"`
	Components map[string]any `json:"components"`
	Tokens     int            `json:"tokens"`
	VocabGrown int            `json:"vocab_grown,omitempty"`
	// Note explains figures that look odd (λ 0 during the warm start).
	Note string `json:"note,omitempty"`
	// ByObjective holds the loss of each objective named by -objectives.
	ByObjective map[string]objectiveReport `json:"by_objective,omitempty"`
	// Backspace holds the diagnostics of -decode: exact match against the
	// episodes' own last assistant messages, ⌫ recall, false-⌫ rate, ⌫
	// precision, corrections, P(⌫ | previous token probability) bins.
	Backspace map[string]any `json:"backspace,omitempty"`
	ElapsedS  float64        `json:"elapsed_s"`
}

// objectiveReport is one objective's loss on the held-out sequences.
type objectiveReport struct {
	Loss       any            `json:"loss"`
	Components map[string]any `json:"components"`
	Tokens     int            `json:"tokens"`
}

func componentsJSON(c map[string]float64) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		if k != "nll" { // the top-level nll is the clean one, as in fit's val rows
			out[k] = jsonNum(v)
		}
	}
	return out
}

// jsonNum is x, or the string "NaN"/"+Inf"/"-Inf" (JSON has no such numbers).
func jsonNum(x float64) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return fmt.Sprint(x)
	}
	return x
}

var ckptName = regexp.MustCompile(`^ckpt-\d{8}$`)

// runDirOf returns the run folder of a -ckpt argument (it, when it has a
// latest marker; the parent of a ckpt-%08d folder that has config.json),
// or "".
func runDirOf(arg, ck string) string {
	if _, err := os.Stat(filepath.Join(arg, train.LatestFile)); err == nil {
		return arg
	}
	parent := filepath.Dir(filepath.Clean(ck))
	if ckptName.MatchString(filepath.Base(filepath.Clean(ck))) {
		if _, err := os.Stat(filepath.Join(parent, train.ConfigOutFile)); err == nil {
			return parent
		}
	}
	return ""
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdEval.NewFlagSet(stderr)
	ckArg := fs.String("ckpt", "", "run folder or checkpoint folder (required)")
	configPath := fs.String("config", "", "YAML or JSON config file (default: the run's config.json)")
	split := fs.String("split", "auto", "episodes to score: auto, all, val or train")
	jsonOut := fs.String("json", "", "also write the JSON report to this file")
	objectives := fs.String("objectives", "", "comma-separated objectives whose losses are reported too (by_objective)")
	decodeN := fs.Int("decode", 0, "also sample replies to this many of the scored episodes' prompts (temperature 1, <bkspc> allowed) and report the backspace diagnostics (0 = off)")
	decodeMax := fs.Int("decode_max_new", 64, "with -decode: most tokens per reply")
	bind := train.BindEvalFlags(fs)
	if err := cmdEval.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	if *ckArg == "" {
		return usagef("-ckpt is required")
	}
	if *decodeN < 0 || *decodeMax < 1 {
		return usagef("-decode must be >= 0 and -decode_max_new >= 1")
	}
	switch *split {
	case "auto", "all", "val", "train":
	default:
		return usagef("-split must be auto, all, val or train, got %q", *split)
	}
	start := time.Now()
	ck, err := train.ResolveCheckpoint(*ckArg)
	if err != nil {
		return err
	}
	runDir := runDirOf(*ckArg, ck)

	// Configuration: defaults < run config or -config < flags.
	cfg := train.DefaultConfig()
	cfgFile := *configPath
	if cfgFile == "" && runDir != "" {
		cfgFile = filepath.Join(runDir, train.ConfigOutFile)
	}
	if cfgFile != "" {
		if err := train.LoadConfigFile(cfgFile, &cfg); err != nil {
			return err
		}
	}
	if err := bind.Apply(&cfg); err != nil {
		return &UsageError{Err: err}
	}
	if bind.IsSet("task") && !bind.IsSet("data") {
		cfg.Data = nil
	}
	if len(cfg.Data) == 0 && cfg.Task == "" {
		return usagef("no data: give -data PATH or -task arith|dojo (or a checkpoint inside a run folder)")
	}
	if runDir != "" {
		cfg.Out = runDir // the built-in dojo data of the run lives there
	} else if len(cfg.Data) == 0 && cfg.Task == "dojo" {
		return usagef("-task dojo needs a checkpoint inside a run folder (its builtin-data)")
	}
	sp := *split
	if sp == "auto" {
		sp = "val"
		if bind.IsSet("data") {
			sp = "all"
		}
	}

	// Model and tokenizer.
	tokPath := ""
	if bind.IsSet("tokenizer") || (!fileExists(filepath.Join(ck, train.TokenizerFile)) && cfg.Tokenizer != "") {
		tokPath = cfg.Tokenizer
	}
	im, err := train.LoadInit(ck, tokPath, cfg.Seed)
	if err != nil {
		return err
	}
	mc := im.Params.Cfg
	cfg.NLayer, cfg.NHead, cfg.NEmbd = mc.NLayer, mc.NHead, mc.NEmbd
	if cfg.NPositions > mc.NPositions {
		if bind.IsSet("n_positions") {
			return usagef("-n_positions %d exceeds the model's context %d", cfg.NPositions, mc.NPositions)
		}
		cfg.NPositions = mc.NPositions
	}
	if err := cfg.Validate(); err != nil {
		return &UsageError{Err: err}
	}
	ev, err := train.NewEvaluator(cfg, im.Params, im.Tokenizer)
	if err != nil {
		return err
	}
	defer ev.Close()

	// Episodes.
	in, err := fitInputs(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	var eps []data.Episode
	switch sp {
	case "all":
		eps = append(append(eps, in.Train...), in.Val...)
	case "val", "train":
		tr, va, err := data.SplitEpisodes(in.Train, in.Val, cfg.ValFraction, uint64(cfg.Seed))
		if err != nil {
			return err
		}
		eps = va
		if sp == "train" {
			eps = tr
		}
	}
	describe := in.Describe
	if describe == "" {
		describe = fmt.Sprint(cfg.Data)
	}
	if len(eps) == 0 {
		if sp == "val" {
			return fmt.Errorf("no val episodes in %s (val_fraction %g held none out): pass -split all, or -data PATH with held-out episodes", describe, cfg.ValFraction)
		}
		return fmt.Errorf("no %s episodes in %s (val_fraction %g)", sp, describe, cfg.ValFraction)
	}
	seqs, st, err := ev.Seqs(eps)
	if err != nil {
		return err
	}
	if len(seqs) == 0 {
		return fmt.Errorf("none of the %d %s episodes makes a sequence (%v)", len(eps), sp, st.Reasons)
	}

	// λ: the one training used at the checkpoint's step.
	rep := evalReport{Checkpoint: ck, Data: describe, Split: sp, Episodes: len(eps), Sequences: len(seqs),
		Truncated: st.Truncated, SeqMode: cfg.SeqMode, NPositions: cfg.NPositions, Objective: cfg.Objective, VocabGrown: im.Grown()}
	oc := cfg.ObjectiveConfig()
	rep.Lambda = oc.Lambda
	if s, err := train.ReadCheckpointState(ck); err == nil {
		step := s.Step
		rep.Step = &step
		rep.Lambda = oc.LambdaAt(max(step-1, 0))
		if rep.Lambda == 0 && oc.Lambda != 0 {
			rep.Note = fmt.Sprintf("step %d is within warm_start %d: λ is 0, so the loss is the BC term alone and a SequenceMatch objective's components equal bc's", step, oc.WarmStart)
		}
	}
	maxBatches := 0
	if bind.IsSet("eval_batches") {
		maxBatches = cfg.EvalBatches
	}
	r, err := ev.Evaluate(seqs, maxBatches, rep.Lambda)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	rep.NLL, rep.Perplexity, rep.Loss = jsonNum(r.NLL), jsonNum(r.Perplexity), jsonNum(r.Loss)
	rep.NLLTokens, rep.Tokens = r.NLLTokens, r.Tokens
	rep.Components = componentsJSON(r.Components)
	for _, name := range strings.Split(*objectives, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		oc := cfg
		oc.Objective = name
		if err := oc.Validate(); err != nil {
			return &UsageError{Err: fmt.Errorf("-objectives: %w", err)}
		}
		oe, err := train.NewEvaluator(oc, im.Params, im.Tokenizer)
		if err != nil {
			return err
		}
		or, err := oe.Evaluate(seqs, maxBatches, rep.Lambda)
		oe.Close()
		if err != nil {
			return fmt.Errorf("eval %s: %w", name, err)
		}
		if rep.ByObjective == nil {
			rep.ByObjective = map[string]objectiveReport{}
		}
		rep.ByObjective[name] = objectiveReport{Loss: jsonNum(or.Loss), Components: componentsJSON(or.Components), Tokens: or.Tokens}
	}
	if *decodeN > 0 {
		dd, err := compare.DecodeDiagnostics(ctx, ev, eps, *decodeN, *decodeMax, uint64(cfg.Seed))
		if err != nil {
			return fmt.Errorf("eval -decode: %w", err)
		}
		m := map[string]any{"replies": len(dd.Results), "counts": dd.Diag, "bins": dd.Bins}
		for k, v := range dd.Metrics() {
			m[k] = jsonNum(v)
		}
		rep.Backspace = m
		fmt.Fprintf(stderr, "eval: %d replies at T=1 | exact match %.3f | %s\n", len(dd.Results), dd.Metrics()["exact_match"], dd.Diag)
	}
	rep.ElapsedS = math.Round(time.Since(start).Seconds()*1000) / 1000
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *jsonOut != "" {
		if err := atomicfile.WriteFile(*jsonOut, b); err != nil {
			return err
		}
	}
	_, err = stdout.Write(b)
	return err
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
