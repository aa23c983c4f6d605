package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/term"

	"smtrain/data"
)

// dataPaths is a repeatable, comma-separated path flag.
type dataPaths []string

func (p *dataPaths) String() string { return strings.Join(*p, ",") }
func (p *dataPaths) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*p = append(*p, s)
		}
	}
	return nil
}

var cmdDataStats = &Command{
	Name:      "data stats",
	UsageLine: "smtrain data stats [-data PATH ...] [-skip_bad] [-tokenizer FILE] [-vocab N] [-context N] [-json] [PATH ...]",
	Short:     "summarise trajectory files: episodes, turns, tokens, rewards, skipped files",
	Long: `Data stats loads trajectories and prints what training would see.

Paths (-data, repeatable or comma-separated, or positional) may be MLE-Dojo
run folders (<comp>/agent_history/trajectory.json with
<comp>/env_history/history.json, searched recursively; a flat
agent_trajectory.json beside env_history.json also works), AIDE journal.json
files and JSONL files (one episode per line: {"messages":[{"role",
"content"}], "reward": x, "meta": {}}).

Tokens are counted after the chat template (role markers, <|end|>) with the
tokenizer given by -tokenizer, or else with a byte-level BPE tokenizer built
deterministically from the loaded texts (-vocab tokens, default 1024); the
output says which. The assistant share is the fraction of template tokens
that are trained actions (assistant content and <|end|>). With -context N it
also reports how many actions survive left truncation to N inputs, for whole
episodes and for one sequence per assistant turn (seq_mode turn).

A malformed file stops the command with an error naming the file and the
byte offset or JSON path; with -skip_bad it is reported and skipped, and a
summary of skipped inputs and reasons is printed.`,
}

var cmdDataConvert = &Command{
	Name:      "data convert",
	UsageLine: "smtrain data convert -data PATH ... -out FILE.jsonl [-skip_bad]",
	Short:     "convert trajectories (MLE-Dojo runs, AIDE journals, JSONL) to JSONL",
	Long: `Data convert loads trajectories from the same inputs as data stats and
writes them as JSONL, one episode per line:
{"messages":[{"role","content"}], "reward": x, "step_rewards": [...],
"step_scores": [...], "meta": {...}} (non-finite numbers as null). The output
is written atomically and is read back by every command taking -data.`,
}

func init() {
	cmdDataStats.Run = runDataStats
	cmdDataConvert.Run = runDataConvert
}

func loadForCommand(paths []string, o data.LoadOptions, stderr io.Writer) (*data.LoadResult, error) {
	if len(paths) == 0 {
		return nil, usagef("no data paths (use -data PATH)")
	}
	o.Progress = loadProgress(stderr)
	res, err := data.LoadWith(paths, o)
	if err != nil {
		return nil, err
	}
	reportSkipped(stderr, res, "")
	reportInvalidUTF8(stderr, res)
	return res, nil
}

// bigText is the text size above which data stats says it is training a
// tokenizer (seconds per 10 MB on 2 cores).
const bigText = 8 << 20

// strictUTF8Usage is the help of -strict_utf8 (a config key of fit too).
const strictUTF8Usage = "make bytes that are not UTF-8 in data files an error (default: read as U+FFFD and counted per file)"

// reportInvalidUTF8 names each file holding bytes that are not UTF-8.
func reportInvalidUTF8(w io.Writer, res *data.LoadResult) {
	for _, u := range res.InvalidUTF8 {
		fmt.Fprintf(w, "warning: %s (-strict_utf8 makes this an error)\n", u)
	}
}

// loadProgress returns a progress callback for data.LoadWith that shows
// files and megabytes read on stderr when it is a terminal and the load
// takes more than a second; nil otherwise.
func loadProgress(stderr io.Writer) func(done, total int, bytes int64) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	start, last, shown := time.Now(), time.Time{}, false
	return func(done, total int, bytes int64) {
		now := time.Now()
		if done == total {
			if shown {
				fmt.Fprintf(f, "\rloading data: %d/%d files, %.1f MB, %.1fs\n", done, total, float64(bytes)/1e6, now.Sub(start).Seconds())
			}
			return
		}
		if now.Sub(start) < time.Second || now.Sub(last) < 200*time.Millisecond {
			return
		}
		last, shown = now, true
		fmt.Fprintf(f, "\rloading data: %d/%d files, %.1f MB", done, total, float64(bytes)/1e6)
	}
}

// maxSkipLines is how many skipped inputs are named on the console.
const maxSkipLines = 5

// reportSkipped names the first skipped inputs of res on w (source and
// reason), says how many more there are and where all of them are listed
// (all, when non-empty), and returns every one as a "SOURCE: reason" line.
func reportSkipped(w io.Writer, res *data.LoadResult, all string) []string {
	var lines []string
	for _, s := range res.Skipped {
		line := s.Err.Error()
		if !strings.HasPrefix(line, s.Source) {
			line = s.Source + ": " + line
		}
		lines = append(lines, line)
	}
	for i, l := range lines {
		if i == maxSkipLines {
			where := ""
			if all != "" {
				where = "; all in " + all
			}
			fmt.Fprintf(w, "skipped: ... and %d more (%d in all%s)\n", len(lines)-maxSkipLines, len(lines), where)
			break
		}
		fmt.Fprintf(w, "skipped: %s\n", l)
	}
	return lines
}

// skippedInput is one input data stats left out (-skip_bad).
type skippedInput struct {
	Source string `json:"source"`
	Error  string `json:"error"`
}

// dataStats is what data stats reports (also its -json output).
type dataStats struct {
	Files          int                `json:"files"`
	Episodes       int                `json:"episodes"`
	Skipped        int                `json:"skipped"`
	SkipReasons    []string           `json:"skip_reasons,omitempty"`
	SkippedInputs  []skippedInput     `json:"skipped_inputs,omitempty"`
	InvalidUTF8    []data.InvalidUTF8 `json:"invalid_utf8,omitempty"`
	Formats        map[string]int     `json:"formats"`
	Messages       int                `json:"messages"`
	AssistantTurns int                `json:"assistant_turns"`
	NoAssistant    int                `json:"episodes_without_assistant"`
	Tokenizer      string             `json:"tokenizer"`
	Tokens         int                `json:"tokens"`
	ActionTokens   int                `json:"assistant_tokens"`
	AssistantShare float64            `json:"assistant_share"`
	TokensPerEp    quantiles          `json:"tokens_per_episode"`
	Rewards        quantiles          `json:"rewards"`
	RewardsNaN     int                `json:"rewards_unknown"`
	Context        *contextStats      `json:"context,omitempty"`
}

// contextStats says what left truncation to a context keeps.
type contextStats struct {
	T              int `json:"t"`
	Truncated      int `json:"episodes_truncated"`
	KeptActions    int `json:"actions_kept"`
	PerTurnSeqs    int `json:"per_turn_sequences"`
	PerTurnTrunc   int `json:"per_turn_truncated"`
	PerTurnActions int `json:"per_turn_actions_kept"`
}

type quantiles struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"`
	Min    float64 `json:"min"`
	P25    float64 `json:"p25"`
	Median float64 `json:"median"`
	P75    float64 `json:"p75"`
	Max    float64 `json:"max"`
}

func summarize(xs []float64) quantiles {
	q := quantiles{N: len(xs)}
	if len(xs) == 0 {
		return q
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	q.Mean = sum / float64(len(s))
	v := 0.0
	for _, x := range s {
		v += (x - q.Mean) * (x - q.Mean)
	}
	q.Std = math.Sqrt(v / float64(len(s)))
	at := func(p float64) float64 {
		pos := p * float64(len(s)-1)
		lo := int(math.Floor(pos))
		hi := int(math.Ceil(pos))
		return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
	}
	q.Min, q.P25, q.Median, q.P75, q.Max = s[0], at(0.25), at(0.5), at(0.75), s[len(s)-1]
	return q
}

func runDataStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdDataStats.NewFlagSet(stderr)
	var paths dataPaths
	fs.Var(&paths, "data", "trajectory file or folder (repeatable, comma-separated)")
	skipBad := fs.Bool("skip_bad", false, "report and skip malformed files/lines instead of failing")
	strictUTF8 := fs.Bool("strict_utf8", false, strictUTF8Usage)
	tokPath := fs.String("tokenizer", "", "tokenizer.json (or GPT-2 vocab.json with merges.txt beside it) to count tokens with (default: build one from the data)")
	vocab := fs.Int("vocab", 1024, "vocabulary size of the tokenizer built when -tokenizer is not given")
	asJSON := fs.Bool("json", false, "print the statistics as one JSON object")
	context := fs.Int("context", 0, "also report what left truncation to this many inputs keeps (whole episodes and one sequence per turn)")
	if err := cmdDataStats.Parse(fs, args, stderr, true); err != nil {
		return err
	}
	paths = append(paths, fs.Args()...)
	if *context != 0 && *context < 2 {
		return usagef("-context %d: need at least 2", *context)
	}
	if *tokPath == "" && *vocab < data.MinVocab {
		return usagef("-vocab %d is below the minimum %d", *vocab, data.MinVocab)
	}
	res, err := loadForCommand(paths, data.LoadOptions{SkipBad: *skipBad, StrictUTF8: *strictUTF8}, stderr)
	if err != nil {
		return err
	}
	st := dataStats{Files: res.Files, Episodes: len(res.Episodes), Skipped: len(res.Skipped), SkipReasons: res.SkipSummary(), Formats: map[string]int{}}
	for _, s := range res.Skipped {
		st.SkippedInputs = append(st.SkippedInputs, skippedInput{Source: s.Source, Error: s.Err.Error()})
	}
	st.InvalidUTF8 = res.InvalidUTF8
	var texts []string
	var rewards []float64
	for _, e := range res.Episodes {
		f, _ := e.Meta["format"].(string)
		if f == "" {
			f = "jsonl"
		}
		st.Formats[f]++
		st.Messages += len(e.Messages)
		st.AssistantTurns += e.NumAssistant()
		if math.IsNaN(e.Reward) {
			st.RewardsNaN++
		} else {
			rewards = append(rewards, e.Reward)
		}
		for _, m := range e.Messages {
			texts = append(texts, m.Content)
		}
	}
	var tok *data.Tokenizer
	if *tokPath != "" {
		if tok, err = data.LoadTokenizerFile(*tokPath); err != nil {
			return err
		}
		st.Tokenizer = fmt.Sprintf("%s (vocab %d)", *tokPath, tok.VocabSize())
	} else {
		start := time.Now()
		size := 0
		for _, t := range texts {
			size += len(t)
		}
		if size > bigText {
			// This takes a while: say what is happening and how to avoid it.
			fmt.Fprintf(stderr, "data stats: training a %d-token BPE on %.0f MB of text (pass -tokenizer FILE to count with an existing one)\n", *vocab, float64(size)/1e6)
		}
		if tok, err = data.BuildTokenizer(texts, *vocab); err != nil {
			return err
		}
		st.Tokenizer = fmt.Sprintf("built from the data: byte-level BPE, vocab %d, %d merges (%.1fs)", tok.VocabSize(), tok.NumMerges(), time.Since(start).Seconds())
	}
	var perEp []float64
	if *context > 0 {
		st.Context = &contextStats{T: *context}
	}
	for i := range res.Episodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := data.ChatSeq(tok, res.Episodes[i].Messages)
		if err != nil {
			st.NoAssistant++
			continue
		}
		n := s.NumInputs() + 1 // + the terminal action, which takes no input slot
		st.Tokens += n
		st.ActionTokens += s.NumActions()
		perEp = append(perEp, float64(n))
		if c := st.Context; c != nil {
			tr, info, err := data.Truncate(s, c.T)
			if err != nil {
				return fmt.Errorf("%s: %w", res.Episodes[i].Source, err)
			}
			if info.Truncated() {
				c.Truncated++
			}
			c.KeptActions += tr.NumActions()
			parts, err := data.SplitTurns(s)
			if err != nil {
				return fmt.Errorf("%s: %w", res.Episodes[i].Source, err)
			}
			for _, p := range parts {
				tr, info, err := data.Truncate(p, c.T)
				if err != nil {
					return fmt.Errorf("%s: %w", res.Episodes[i].Source, err)
				}
				c.PerTurnSeqs++
				if info.Truncated() {
					c.PerTurnTrunc++
				}
				c.PerTurnActions += tr.NumActions()
			}
		}
	}
	if st.Tokens > 0 {
		st.AssistantShare = float64(st.ActionTokens) / float64(st.Tokens)
	}
	st.TokensPerEp = summarize(perEp)
	st.Rewards = summarize(rewards)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "files            %d\n", st.Files)
	fmt.Fprintf(stdout, "episodes         %d", st.Episodes)
	var fk []string
	for k := range st.Formats {
		fk = append(fk, k)
	}
	sort.Strings(fk)
	for _, k := range fk {
		fmt.Fprintf(stdout, "  %s=%d", k, st.Formats[k])
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "skipped          %d\n", st.Skipped)
	for _, r := range st.SkipReasons {
		fmt.Fprintf(stdout, "  %s\n", r)
	}
	fmt.Fprintf(stdout, "turns            %d messages, %d assistant turns", st.Messages, st.AssistantTurns)
	if st.NoAssistant > 0 {
		fmt.Fprintf(stdout, " (%d episodes without an assistant turn: nothing to train)", st.NoAssistant)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "tokenizer        %s\n", st.Tokenizer)
	fmt.Fprintf(stdout, "tokens           %d (chat template), assistant %d = %.1f%%\n", st.Tokens, st.ActionTokens, 100*st.AssistantShare)
	q := st.TokensPerEp
	if q.N > 0 {
		fmt.Fprintf(stdout, "tokens/episode   min %.0f  p25 %.0f  median %.0f  p75 %.0f  max %.0f  mean %.1f\n", q.Min, q.P25, q.Median, q.P75, q.Max, q.Mean)
	}
	if c := st.Context; c != nil && st.ActionTokens > 0 {
		fmt.Fprintf(stdout, "context %-8d whole episodes: %d truncated, %d of %d actions kept (%.1f%%)\n", c.T, c.Truncated, c.KeptActions, st.ActionTokens, 100*float64(c.KeptActions)/float64(st.ActionTokens))
		fmt.Fprintf(stdout, "                 one sequence per turn: %d sequences, %d truncated, %d actions kept (%.1f%%)\n", c.PerTurnSeqs, c.PerTurnTrunc, c.PerTurnActions, 100*float64(c.PerTurnActions)/float64(st.ActionTokens))
	}
	q = st.Rewards
	if q.N > 0 {
		fmt.Fprintf(stdout, "reward           n %d  mean %.4g  std %.4g  min %.4g  p25 %.4g  median %.4g  p75 %.4g  max %.4g", q.N, q.Mean, q.Std, q.Min, q.P25, q.Median, q.P75, q.Max)
	} else {
		fmt.Fprintf(stdout, "reward           none known")
	}
	if st.RewardsNaN > 0 {
		fmt.Fprintf(stdout, "  (%d unknown)", st.RewardsNaN)
	}
	fmt.Fprintln(stdout)
	return nil
}

func runDataConvert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdDataConvert.NewFlagSet(stderr)
	var paths dataPaths
	fs.Var(&paths, "data", "trajectory file or folder (repeatable, comma-separated)")
	out := fs.String("out", "", "output JSONL file")
	skipBad := fs.Bool("skip_bad", false, "report and skip malformed files/lines instead of failing")
	strictUTF8 := fs.Bool("strict_utf8", false, strictUTF8Usage)
	if err := cmdDataConvert.Parse(fs, args, stderr, true); err != nil {
		return err
	}
	paths = append(paths, fs.Args()...)
	if *out == "" {
		return usagef("-out is required")
	}
	res, err := loadForCommand(paths, data.LoadOptions{SkipBad: *skipBad, StrictUTF8: *strictUTF8}, stderr)
	if err != nil {
		return err
	}
	if err := data.WriteJSONL(*out, res.Episodes); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d episodes to %s (%d skipped)\n", len(res.Episodes), *out, len(res.Skipped))
	return nil
}
