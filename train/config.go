package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"smtrain/data"
	"smtrain/envbridge/expert"
	"smtrain/objective"
)

// Config is the whole resolved configuration of a training run. Every field
// is a config key (its json tag), settable from a YAML/JSON file and from a
// command-line flag of the same name. Precedence: defaults < file < flags.
type Config struct {
	// Data.
	Data          []string `json:"data" help:"trajectory files or folders (MLE-Dojo runs, AIDE journals, JSONL); empty = built-in data"`
	Task          string   `json:"task" help:"built-in task: arith, copy, sort, reverse or dojo (used when data is empty)"`
	Tokenizer     string   `json:"tokenizer" help:"tokenizer.json (or GPT-2 vocab.json with merges.txt beside it) to use; empty = train a byte-level BPE on the training split"`
	VocabSize     int      `json:"vocab_size" help:"vocabulary size when training a tokenizer"`
	ValFraction   float64  `json:"val_fraction" help:"fraction of episodes held out for validation"`
	MinReward     OptFloat `json:"min_reward" help:"keep only episodes whose final score is at least this; episodes without a score are then dropped (unset: keep every episode)"`
	SkipBad       bool     `json:"skip_bad" help:"report and skip malformed episodes instead of failing"`
	StrictUTF8    bool     `json:"strict_utf8" help:"make bytes that are not UTF-8 in data files an error (default: read as U+FFFD and counted per file)"`
	Eta           float64  `json:"eta" help:"noise+backspace augmentation rate (objectives other than mle)"`
	NoiseKind     string   `json:"noise_kind" help:"noise kind: random (uniform over ordinary tokens), ground-truth (a token from elsewhere in the sequence), unigram (frequencies of the expert's action tokens) or policy (the current policy's next-token distribution)"`
	NoiseTemp     float64  `json:"noise_temperature" help:"temperature of policy noise"`
	NoiseAsAction bool     `json:"noise_as_action" help:"train the noise token as an action (DESIGN 3.2)"`
	SeqMode       string   `json:"seq_mode" help:"training sequences: auto (episode when it fits n_positions, else turn), episode (one per episode; a long one keeps only its last turns that fit n_positions) or turn (one per assistant turn with the earlier history as its prompt; every action is trained)"`

	// Built-in environments (task=dojo).
	DojoEpisodes int    `json:"dojo_episodes" help:"expert episodes collected on the built-in tasks (task=dojo)"`
	DojoStyle    string `json:"dojo_style" help:"expert episodes of task=dojo: varied (random models, bugs and fixes) or canonical (all information, then one fixed short program per problem kind; see smtrain collect -style)"`

	// Arithmetic task (task=arith).
	ArithDigits int    `json:"arith_digits" help:"operand digits of the arithmetic task"`
	ArithBase   int    `json:"arith_base" help:"number base of the arithmetic task"`
	ArithOps    string `json:"arith_ops" help:"arithmetic operations: add, sub or mixed"`
	ArithTrain  int    `json:"arith_train" help:"number of training questions"`
	ArithTest   int    `json:"arith_test" help:"number of held-out questions"`
	ArithRev    bool   `json:"arith_reversed" help:"write arithmetic answers least significant digit first"`

	// String tasks (compare -task copy, sort or reverse; question counts
	// from arith_train and arith_test).
	StrMinLen   int    `json:"str_min_len" help:"shortest input string of the copy/sort/reverse tasks"`
	StrMaxLen   int    `json:"str_max_len" help:"longest input string of the copy/sort/reverse tasks"`
	StrAlphabet string `json:"str_alphabet" help:"alphabet of the copy/sort/reverse tasks"`

	// Model.
	NLayer     int    `json:"n_layer" help:"transformer layers"`
	NHead      int    `json:"n_head" help:"attention heads"`
	NEmbd      int    `json:"n_embd" help:"embedding width"`
	NPositions int    `json:"n_positions" help:"maximum context (sequence length T of batches)"`
	Init       string `json:"init" help:"start from this checkpoint folder (smtrain or HF GPT-2 layout)"`

	// Objective.
	Objective string  `json:"objective" help:"objective: mle, bc, chi2mix, chi2, kl, js, hellinger, tv"`
	Gamma     float64 `json:"gamma" help:"discount γ"`
	C         float64 `json:"c" help:"χ² coefficient c"`
	Lambda    float64 `json:"lambda" help:"BC/SM mix λ after warm start"`
	WarmStart int     `json:"warm_start" help:"BC warm-start steps (λ = 0)"`
	Weighting string  `json:"weighting" help:"weighting of transitions: discounted or uniform"`
	ValueOn   string  `json:"value_on" help:"where the value term is estimated: mix or data"`

	// Optimisation.
	Steps        int     `json:"steps" help:"optimizer steps"`
	BatchSize    int     `json:"batch_size" help:"sequences per micro-batch"`
	GradAccum    int     `json:"grad_accum" help:"micro-batches per optimizer step (gradients normalised by token count)"`
	LR           float64 `json:"lr" help:"peak learning rate"`
	MinLR        float64 `json:"min_lr" help:"final learning rate of the cosine decay"`
	WarmupSteps  int     `json:"warmup_steps" help:"linear learning-rate warm-up steps"`
	WeightDecay  float64 `json:"weight_decay" help:"AdamW weight decay (not on biases and norms)"`
	Beta1        float64 `json:"beta1" help:"AdamW β1"`
	Beta2        float64 `json:"beta2" help:"AdamW β2"`
	Eps          float64 `json:"eps" help:"AdamW ε"`
	GradClip     float64 `json:"grad_clip" help:"global gradient-norm clip (0 = off)"`
	MaxNonFinite int     `json:"max_nonfinite" help:"stop after this many non-finite steps in a row"`
	Seed         int64   `json:"seed" help:"random seed (init, data order, noise, sampling)"`

	// Replay buffer (SequenceMatch objectives).
	ReplaySize    int      `json:"replay_size" help:"replay buffer capacity (generations)"`
	ReplayEvery   int      `json:"replay_every" help:"refresh the replay buffer every this many steps (0 = never)"`
	ReplaySamples int      `json:"replay_samples" help:"generations sampled per refresh"`
	ReplayBatch   int      `json:"replay_batch" help:"generations per micro-batch (G set)"`
	ReplayMaxNew  int      `json:"replay_max_new" help:"max new tokens per generation; with replay_env, per reply of an episode when set away from this default (else n_positions/2)"`
	ReplayTemp    float64  `json:"replay_temperature" help:"sampling temperature of generations"`
	ReplayEnv     []string `json:"replay_env" help:"fill the replay buffer with the policy's own multi-turn episodes in these environments (as rollout -env: builtin:TASK|builtin:all|dir:PATH/COMP|http://HOST:PORT[,...]#TASK; several are taken in turn), replay_samples episodes per refresh"`
	ReplayData    []string `json:"replay_data" help:"earlier rollout folders whose episodes go into the replay buffer at the start (offline policy episodes)"`

	// Evaluation, logging, checkpoints.
	EvalEvery    int    `json:"eval_every" help:"evaluate on the validation split every this many steps (0 = only at the end)"`
	EvalBatches  int    `json:"eval_batches" help:"validation micro-batches per evaluation (0 = all)"`
	EvalSamples  int    `json:"eval_samples" help:"sample generations written to the log at each evaluation"`
	LogEvery     int    `json:"log_every" help:"console line every this many steps (metrics.jsonl records every step)"`
	CkptEvery    int    `json:"ckpt_every" help:"checkpoint every this many steps (0 = only at the end)"`
	KeepLast     int    `json:"keep_last" help:"keep this many recent checkpoints (plus the best)"`
	EarlyStop    int    `json:"early_stop" help:"stop after this many evaluations without improvement (0 = off)"`
	Out          string `json:"out" help:"output folder"`
	Progress     string `json:"progress" help:"progress bar: auto (when stderr is a terminal), on, off"`
	ConfigSchema int    `json:"config_schema" help:"config schema version (do not set)"`
}

// Values of Config.SeqMode: the modes of data.BuildSeqs, documented there
// (data.SeqEpisode, data.SeqTurn, data.SeqAuto).
const (
	SeqEpisode = string(data.SeqEpisode)
	SeqTurn    = string(data.SeqTurn)
	SeqAuto    = string(data.SeqAuto) // the default
)

// ConfigSchema is the current config schema version.
const ConfigSchema = 1

// DefaultConfig returns the defaults: a small model on the built-in data.
func DefaultConfig() Config {
	oc := objective.DefaultConfig()
	return Config{
		Task:        "",
		VocabSize:   512,
		ValFraction: 0.1,
		Eta:         0.05,
		NoiseKind:   "random",
		NoiseTemp:   1,
		SeqMode:     SeqAuto,

		DojoEpisodes: 24, DojoStyle: expert.StyleVaried,
		ArithDigits: 2, ArithBase: 10, ArithOps: "mixed", ArithTrain: 5000, ArithTest: 500,
		StrMinLen: 3, StrMaxLen: 6, StrAlphabet: "abcdefgh",

		NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 256,

		Objective: objective.DefaultName,
		// λ 0.1, not the objective package's 0.5: the validation sweep of
		// results/arith/sweep found 0.1 best of 0.05-0.5 (0.89 vs 0.23
		// for 0.5; MLE 0.74).
		Gamma: oc.Gamma, C: oc.C, Lambda: DefaultLambda, WarmStart: oc.WarmStart,
		Weighting: oc.Weighting, ValueOn: oc.ValueOn,

		Steps: 1000, BatchSize: 8, GradAccum: 1,
		LR: 1e-3, MinLR: 1e-4, WarmupSteps: 50, WeightDecay: 0.1,
		Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, GradClip: 1.0, MaxNonFinite: 5, Seed: 1,

		ReplaySize: 256, ReplayEvery: 50, ReplaySamples: 32, ReplayBatch: 4, ReplayMaxNew: 64, ReplayTemp: 1.0,

		EvalEvery: 100, EvalBatches: 8, EvalSamples: 2, LogEvery: 10,
		CkptEvery: 200, KeepLast: 2, EarlyStop: 0,
		Out: "runs/fit", Progress: "auto", ConfigSchema: ConfigSchema,
	}
}

// DefaultLambda is fit's default BC/SM mix λ, the best value of the
// validation sweep in results/arith/sweep.
const DefaultLambda = 0.1

// OptFloat is an optional number: a config key that may be unset (JSON
// null or absent; an empty flag value). It replaces the -1e308 "no
// minimum" sentinel older config.json files hold (read back as unset).
type OptFloat struct {
	V   float64
	Set bool
}

// Some returns a set OptFloat.
func Some(v float64) OptFloat { return OptFloat{V: v, Set: true} }

// String is the flag form: the number, or "" when unset.
func (o OptFloat) String() string {
	if !o.Set {
		return ""
	}
	return strconv.FormatFloat(o.V, 'g', -1, 64)
}

// MarshalJSON writes the number, or null when unset.
func (o OptFloat) MarshalJSON() ([]byte, error) {
	if !o.Set {
		return []byte("null"), nil
	}
	return json.Marshal(o.V)
}

// UnmarshalJSON reads a number or null.
func (o *OptFloat) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*o = OptFloat{}
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*o = optFrom(v)
	return nil
}

// optFrom maps the old sentinel (<= -1e300, written by earlier versions)
// to unset.
func optFrom(v float64) OptFloat {
	if v <= -1e300 {
		return OptFloat{}
	}
	return Some(v)
}

// removedKeys are keys of earlier versions that no longer do anything;
// config files (an old run's config.json) may still hold them.
var removedKeys = map[string]bool{
	"threads": true, // was read by nothing
}

// KeyError is an invalid config value. Source says where it came from:
// "FILE:LINE" for a config file, "flag -KEY" for a flag, "" for a default.
type KeyError struct {
	Key, Msg, Source string
	// Flag is true when the value came from a command-line flag.
	Flag bool
}

func (e *KeyError) Error() string {
	switch {
	case e.Flag:
		return fmt.Sprintf("flag -%s: %s", e.Key, e.Msg)
	case e.Source != "":
		return fmt.Sprintf("%s: key %s: %s", e.Source, e.Key, e.Msg)
	}
	return fmt.Sprintf("config key %s: %s", e.Key, e.Msg)
}

// Sources records where config keys were set, so that a validation error
// names the file and line or the flag (see ValidateFrom).
type Sources struct {
	File  string         // config file, if any
	Lines map[string]int // key -> line in File
	Flags *FlagBinding   // flags, if any
}

// ValidateFrom is Validate with errors naming where the bad value came
// from: a flag (a *KeyError with Flag set: a usage error) or a file line.
func (c Config) ValidateFrom(src Sources) error {
	err := c.Validate()
	var ke *KeyError
	if errors.As(err, &ke) {
		switch {
		case src.Flags != nil && src.Flags.IsSet(ke.Key):
			ke.Flag = true
		case src.Lines[ke.Key] > 0:
			ke.Source = fmt.Sprintf("%s:%d", src.File, src.Lines[ke.Key])
		}
	}
	return err
}

// ObjectiveConfig returns the objective hyperparameters of c.
func (c Config) ObjectiveConfig() objective.Config {
	oc := objective.DefaultConfig()
	oc.Gamma, oc.C, oc.Lambda, oc.WarmStart = c.Gamma, c.C, c.Lambda, c.WarmStart
	oc.Weighting, oc.ValueOn = c.Weighting, c.ValueOn
	return oc
}

// Validate reports the first invalid key.
func (c Config) Validate() error {
	bad := func(key string, format string, args ...any) error {
		return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	// Every number must be finite (NaN passes no range check below).
	v := reflect.ValueOf(c)
	for _, f := range configFields() {
		x := v.FieldByIndex(f.Index)
		if x.Kind() == reflect.Float64 && (math.IsNaN(x.Float()) || math.IsInf(x.Float(), 0)) {
			return bad(keyOf(f), "must be a finite number, got %v", x.Float())
		}
	}
	if c.MinReward.Set && (math.IsNaN(c.MinReward.V) || math.IsInf(c.MinReward.V, 0)) {
		return bad("min_reward", "must be a finite number, got %v (leave it unset to keep every episode)", c.MinReward.V)
	}
	switch {
	case c.Steps <= 0:
		return bad("steps", "must be positive, got %d", c.Steps)
	case c.BatchSize <= 0:
		return bad("batch_size", "must be positive, got %d", c.BatchSize)
	case c.GradAccum <= 0:
		return bad("grad_accum", "must be positive, got %d", c.GradAccum)
	case !(c.LR >= 0):
		return bad("lr", "must be >= 0, got %g", c.LR)
	case !(c.MinLR >= 0 && c.MinLR <= c.LR):
		return bad("min_lr", "must be in [0, lr], got %g", c.MinLR)
	case c.WarmupSteps < 0:
		return bad("warmup_steps", "must be >= 0, got %d", c.WarmupSteps)
	case !(c.ValFraction >= 0 && c.ValFraction < 1):
		return bad("val_fraction", "must be in [0, 1), got %g", c.ValFraction)
	case !(c.Eta >= 0 && c.Eta < 1):
		return bad("eta", "must be in [0, 1), got %g", c.Eta)
	case c.NoiseKind != "random" && c.NoiseKind != "ground-truth" && c.NoiseKind != "unigram" && c.NoiseKind != "policy":
		return bad("noise_kind", "must be random, ground-truth, unigram or policy, got %q", c.NoiseKind)
	case !(c.NoiseTemp > 0) || c.NoiseTemp > 1e6:
		return bad("noise_temperature", "must be positive, got %g", c.NoiseTemp)
	case c.StrMinLen < 1 || c.StrMaxLen < c.StrMinLen || c.StrMaxLen > 64:
		return bad("str_min_len", "string task lengths must satisfy 1 <= str_min_len <= str_max_len <= 64, got %d, %d", c.StrMinLen, c.StrMaxLen)
	case c.SeqMode != SeqEpisode && c.SeqMode != SeqTurn && c.SeqMode != SeqAuto:
		return bad("seq_mode", "must be %s, %s or %s, got %q", SeqAuto, SeqEpisode, SeqTurn, c.SeqMode)
	case c.NLayer <= 0 || c.NHead <= 0 || c.NEmbd <= 0 || c.NEmbd%c.NHead != 0:
		return bad("n_embd", "model shape n_layer=%d n_head=%d n_embd=%d is invalid (n_embd must be a multiple of n_head)", c.NLayer, c.NHead, c.NEmbd)
	case c.NPositions < 8:
		return bad("n_positions", "must be at least 8, got %d", c.NPositions)
	case c.VocabSize < 300:
		return bad("vocab_size", "must be at least 300 (256 bytes + specials), got %d", c.VocabSize)
	case c.GradClip < 0:
		return bad("grad_clip", "must be >= 0, got %g", c.GradClip)
	case c.MaxNonFinite <= 0:
		return bad("max_nonfinite", "must be positive, got %d", c.MaxNonFinite)
	case c.LogEvery <= 0:
		return bad("log_every", "must be positive, got %d", c.LogEvery)
	case c.EvalEvery < 0 || c.CkptEvery < 0 || c.ReplayEvery < 0:
		return bad("eval_every", "eval_every, ckpt_every and replay_every must be >= 0")
	case c.KeepLast < 1:
		return bad("keep_last", "must be at least 1, got %d", c.KeepLast)
	case c.ReplaySize < 0 || c.ReplaySamples < 0 || c.ReplayBatch < 0 || c.ReplayMaxNew < 0:
		return bad("replay_size", "replay keys must be >= 0")
	case !(c.ReplayTemp > 0):
		return bad("replay_temperature", "must be positive, got %g", c.ReplayTemp)
	case c.Progress != "auto" && c.Progress != "on" && c.Progress != "off":
		return bad("progress", "must be auto, on or off, got %q", c.Progress)
	case c.Out == "":
		return bad("out", "must not be empty")
	case c.DojoEpisodes <= 0:
		return bad("dojo_episodes", "must be positive, got %d", c.DojoEpisodes)
	case !slices.Contains(expert.Styles, c.DojoStyle):
		return bad("dojo_style", "must be %s, got %q", strings.Join(expert.Styles, " or "), c.DojoStyle)
	case c.Task != "" && c.Task != "arith" && c.Task != "dojo" && c.Task != "copy" && c.Task != "sort" && c.Task != "reverse":
		return bad("task", "must be arith, dojo, copy, sort or reverse, got %q", c.Task)
	case c.ConfigSchema != ConfigSchema:
		return bad("config_schema", "unsupported version %d (this smtrain writes %d)", c.ConfigSchema, ConfigSchema)
	}
	if _, err := objective.New(c.Objective, c.ObjectiveConfig()); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// configFields returns Config's fields (each key's json tag is its name)
// in declaration order.
func configFields() []reflect.StructField {
	t := reflect.TypeOf(Config{})
	out := make([]reflect.StructField, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		out = append(out, t.Field(i))
	}
	return out
}

func keyOf(f reflect.StructField) string {
	return strings.Split(f.Tag.Get("json"), ",")[0]
}

// LoadConfigFile merges the YAML or JSON file at path into c. Unknown keys
// are an error naming the file and the key.
func LoadConfigFile(path string, c *Config) error {
	_, err := LoadConfigFileLines(path, c)
	return err
}

// LoadConfigFileLines is LoadConfigFile that also returns the line of each
// key it set (for ValidateFrom). Values must have the key's type exactly:
// an integer key takes no 5.7, a string key no number; a list key (data)
// takes a list or one string (comma-separated, as its flag).
func LoadConfigFileLines(path string, c *Config) (map[string]int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if strings.ToLower(filepath.Ext(path)) == ".json" {
		// JSON syntax errors with their byte offset; the values are then
		// read like YAML's (JSON is YAML), with line numbers.
		var top any
		if err := json.Unmarshal(raw, &top); err != nil {
			return nil, fmt.Errorf("%s: %w", path, jsonErr(raw, err))
		}
		if _, ok := top.(map[string]any); !ok {
			return nil, fmt.Errorf("%s: expected a JSON object of config keys", path)
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	lines := map[string]int{}
	if len(doc.Content) == 0 {
		return lines, nil // empty file
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: expected a mapping of config keys", path, m.Line)
	}
	fields := map[string]reflect.StructField{}
	for _, f := range configFields() {
		fields[keyOf(f)] = f
	}
	v := reflect.ValueOf(c).Elem()
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, n := m.Content[i], m.Content[i+1]
		k := kn.Value
		f, ok := fields[k]
		if !ok {
			if removedKeys[k] {
				continue
			}
			return nil, fmt.Errorf("%s:%d: unknown config key %q (see smtrain help fit)", path, kn.Line, k)
		}
		if err := setFromNode(v.FieldByIndex(f.Index), n); err != nil {
			return nil, fmt.Errorf("%s:%d: key %s: %v", path, n.Line, k, err)
		}
		lines[k] = n.Line
	}
	return lines, nil
}

// setFromNode sets a config field from a YAML/JSON value of its exact type.
func setFromNode(fv reflect.Value, n *yaml.Node) error {
	got := func() string {
		if n.Kind != yaml.ScalarNode {
			return map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[n.Kind]
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	scalar := func(tags ...string) bool {
		return n.Kind == yaml.ScalarNode && slices.Contains(tags, n.Tag)
	}
	switch {
	case fv.Type() == reflect.TypeOf(OptFloat{}):
		if scalar("!!null") {
			fv.Set(reflect.ValueOf(OptFloat{}))
			return nil
		}
		var x float64
		if !scalar("!!int", "!!float") || n.Decode(&x) != nil {
			return fmt.Errorf("expected a number or null, got %s", got())
		}
		fv.Set(reflect.ValueOf(optFrom(x)))
	case fv.Kind() == reflect.String:
		if !scalar("!!str") {
			return fmt.Errorf("expected a string, got %s", got())
		}
		fv.SetString(n.Value)
	case fv.Kind() == reflect.Int || fv.Kind() == reflect.Int64:
		var x int64
		if !scalar("!!int") || n.Decode(&x) != nil {
			return fmt.Errorf("expected an integer, got %s", got())
		}
		fv.SetInt(x)
	case fv.Kind() == reflect.Float64:
		var x float64
		if !scalar("!!int", "!!float") || n.Decode(&x) != nil {
			return fmt.Errorf("expected a number, got %s", got())
		}
		fv.SetFloat(x)
	case fv.Kind() == reflect.Bool:
		var x bool
		if !scalar("!!bool") || n.Decode(&x) != nil {
			return fmt.Errorf("expected true or false, got %s", got())
		}
		fv.SetBool(x)
	case fv.Kind() == reflect.Slice:
		if scalar("!!null") {
			fv.Set(reflect.Zero(fv.Type())) // config.json writes an empty list as null
			return nil
		}
		if scalar("!!str") {
			return setField(fv, n.Value) // one string, comma-separated like the flag
		}
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("expected a list of strings or a string, got %s", got())
		}
		out := []string{}
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode || e.Tag != "!!str" {
				return fmt.Errorf("line %d: expected a string in the list", e.Line)
			}
			out = append(out, e.Value)
		}
		fv.Set(reflect.ValueOf(out))
	default:
		return fmt.Errorf("unsupported type %s", fv.Type())
	}
	return nil
}

func jsonErr(raw []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		return fmt.Errorf("byte %d: key %s: %v", te.Offset, te.Field, err)
	}
	return err
}

// FlagBinding registers one flag per config key on a FlagSet and applies
// the flags that were set, after defaults and the file, to a Config.
type FlagBinding struct {
	fs  *flag.FlagSet
	set map[string]string
}

// BindFlags registers a flag for every config key on fs (named like the
// key: -lr, -batch_size, ...). Flags already defined on fs are skipped.
// The flag values are recorded as strings and applied by Apply.
func BindFlags(fs *flag.FlagSet) *FlagBinding { return bindFlags(fs, nil) }

// trainingOnlyKeys are the config keys only training reads (optimizer,
// schedule, replay, logging, checkpoints, output); eval has no flags for
// them (they would be accepted and ignored).
var trainingOnlyKeys = map[string]bool{
	"steps": true, "grad_accum": true, "lr": true, "min_lr": true, "warmup_steps": true,
	"weight_decay": true, "beta1": true, "beta2": true, "eps": true, "grad_clip": true,
	"max_nonfinite": true, "replay_size": true, "replay_every": true, "replay_samples": true,
	"replay_batch": true, "replay_max_new": true, "replay_temperature": true, "replay_env": true, "replay_data": true, "eval_every": true,
	"eval_samples": true, "log_every": true, "ckpt_every": true, "keep_last": true,
	"early_stop": true, "out": true, "progress": true, "init": true,
}

// BindEvalFlags is BindFlags for the keys evaluation reads (every key but
// trainingOnlyKeys).
func BindEvalFlags(fs *flag.FlagSet) *FlagBinding {
	return bindFlags(fs, func(k string) bool { return !trainingOnlyKeys[k] })
}

func bindFlags(fs *flag.FlagSet, keep func(string) bool) *FlagBinding {
	b := &FlagBinding{fs: fs, set: map[string]string{}}
	def := DefaultConfig()
	dv := reflect.ValueOf(def)
	for _, f := range configFields() {
		key := keyOf(f)
		if key == "config_schema" || fs.Lookup(key) != nil || (keep != nil && !keep(key)) {
			continue
		}
		k := key
		usage := f.Tag.Get("help")
		defStr := fmt.Sprint(dv.FieldByIndex(f.Index).Interface())
		if f.Type.Kind() == reflect.Slice {
			usage += " (repeatable)"
			defStr = ""
		}
		if f.Type.Kind() == reflect.Bool {
			fs.Var(&boolFlag{b: b, key: k, def: defStr}, k, usage)
			continue
		}
		fs.Var(&strFlag{b: b, key: k, def: defStr, repeat: f.Type.Kind() == reflect.Slice}, k, usage)
	}
	return b
}

type strFlag struct {
	b      *FlagBinding
	key    string
	def    string
	repeat bool
}

func (s *strFlag) String() string {
	if s == nil || s.b == nil {
		return ""
	}
	if v, ok := s.b.set[s.key]; ok {
		return v
	}
	return s.def
}

func (s *strFlag) Set(v string) error {
	if old, ok := s.b.set[s.key]; ok && s.repeat {
		s.b.set[s.key] = old + "\x00" + v
		return nil
	}
	s.b.set[s.key] = v
	return nil
}

type boolFlag struct {
	b   *FlagBinding
	key string
	def string
}

func (f *boolFlag) String() string {
	if f == nil || f.b == nil {
		return "false"
	}
	if v, ok := f.b.set[f.key]; ok {
		return v
	}
	return f.def
}
func (f *boolFlag) Set(v string) error {
	if _, err := strconv.ParseBool(v); err != nil {
		return fmt.Errorf("invalid boolean %q", v)
	}
	f.b.set[f.key] = v
	return nil
}
func (f *boolFlag) IsBoolFlag() bool { return true }

// Set records key=value as if given on the command line (used by commands
// whose own flags map onto config keys).
func (b *FlagBinding) Set(key, value string) { b.set[key] = value }

// IsSet reports whether the flag for key was given.
func (b *FlagBinding) IsSet(key string) bool { _, ok := b.set[key]; return ok }

// Apply writes the flags that were set into c.
func (b *FlagBinding) Apply(c *Config) error {
	v := reflect.ValueOf(c).Elem()
	for _, f := range configFields() {
		key := keyOf(f)
		s, ok := b.set[key]
		if !ok {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		if err := setField(fv, s); err != nil {
			return fmt.Errorf("flag -%s: %v", key, err)
		}
	}
	return nil
}

func setField(fv reflect.Value, s string) error {
	if fv.Type() == reflect.TypeOf(OptFloat{}) {
		if strings.TrimSpace(s) == "" {
			fv.Set(reflect.ValueOf(OptFloat{}))
			return nil
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		fv.Set(reflect.ValueOf(Some(x)))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		fv.SetInt(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		fv.SetFloat(x)
	case reflect.Bool:
		x, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", s)
		}
		fv.SetBool(x)
	case reflect.Slice:
		parts := strings.Split(s, "\x00")
		out := []string{}
		for _, p := range parts {
			for _, q := range strings.Split(p, ",") {
				if q = strings.TrimSpace(q); q != "" {
					out = append(out, q)
				}
			}
		}
		fv.Set(reflect.ValueOf(out))
	default:
		return fmt.Errorf("unsupported kind %s", fv.Kind())
	}
	return nil
}

// MarshalConfig returns the indented JSON of c (written to OUT/config.json).
func MarshalConfig(c Config) ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
