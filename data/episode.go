package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"smtrain/internal/atomicfile"
)

// Roles of chat messages.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Episode is one trajectory: a conversation whose assistant turns are the
// agent's actions.
type Episode struct {
	// Messages are the turns in order (roles system, user, assistant).
	Messages []Message
	// Reward is the episode's final score (MLE-Dojo: best position score);
	// NaN when unknown.
	Reward float64
	// StepRewards has one reward per assistant message (MLE-Dojo: the
	// position score of that step's submission, 0 without one); nil when
	// unknown.
	StepRewards []float64
	// StepScores has one raw score per assistant message (NaN where the
	// step produced none); nil when unknown.
	StepScores []float64
	// Source names the file (and line, for JSONL) the episode came from.
	Source string
	// Meta holds loader-specific extras (competition, node id, ...).
	Meta map[string]any
}

// Validate checks roles and alignment of the per-step arrays.
func (e *Episode) Validate() error {
	nA := 0
	for i, m := range e.Messages {
		switch m.Role {
		case RoleSystem, RoleUser:
		case RoleAssistant:
			nA++
		default:
			return fmt.Errorf("messages[%d]: unknown role %q (want system, user or assistant)", i, m.Role)
		}
	}
	if len(e.Messages) == 0 {
		return errors.New("no messages")
	}
	if e.StepRewards != nil && len(e.StepRewards) != nA {
		return fmt.Errorf("%d step rewards for %d assistant messages", len(e.StepRewards), nA)
	}
	if e.StepScores != nil && len(e.StepScores) != nA {
		return fmt.Errorf("%d step scores for %d assistant messages", len(e.StepScores), nA)
	}
	return nil
}

// NumAssistant counts the assistant messages.
func (e *Episode) NumAssistant() int {
	n := 0
	for _, m := range e.Messages {
		if m.Role == RoleAssistant {
			n++
		}
	}
	return n
}

// Skipped records an input that was left out and why.
type Skipped struct {
	Source string
	Err    error
}

// LoadResult is what the loaders return.
type LoadResult struct {
	Episodes []Episode
	Skipped  []Skipped
	Files    int // data files read
	// InvalidUTF8 lists the files holding bytes that are not UTF-8 (read
	// as U+FFFD), with their counts.
	InvalidUTF8 []InvalidUTF8
}

// SkipSummary groups skipped inputs by reason (the error text after the
// source), most common first, as "N × reason" lines.
func (r *LoadResult) SkipSummary() []string {
	count := map[string]int{}
	for _, s := range r.Skipped {
		msg := s.Err.Error()
		if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, s.Source) {
			msg = msg[i+2:]
		}
		// drop offsets so equal causes group together
		if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, "byte offset") {
			msg = msg[i+3:]
		}
		count[msg]++
	}
	keys := KeysByCount(count)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%d × %s", count[k], k)
	}
	return out
}

// Load reads episodes from files or directories (searched recursively):
// MLE-Dojo run folders (<comp>/agent_history/trajectory.json with
// <comp>/env_history/history.json; also a flat agent_trajectory.json beside
// env_history.json), AIDE journal.json files and JSONL files (*.jsonl).
// Files are read in sorted path order. With skipBad, a bad file or JSONL
// line is recorded in Skipped and loading goes on; otherwise the first
// error is returned (naming the file and place).
func Load(paths []string, skipBad bool) (*LoadResult, error) {
	return LoadWith(paths, LoadOptions{SkipBad: skipBad})
}

// LoadWith is Load with options: invalid UTF-8 counted per file or an
// error, and progress reports for long loads.
func LoadWith(paths []string, o LoadOptions) (*LoadResult, error) {
	skipBad := o.SkipBad
	res := &LoadResult{}
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if skipBad && path != p {
					res.Skipped = append(res.Skipped, Skipped{Source: path, Err: fmt.Errorf("%s: %w", path, err)})
					if d != nil && d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			if k := kindOf(path); k != "" && k != "metrics" { // a run's training log is no data
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", p, err)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	var read int64
	for i, f := range files {
		if o.Progress != nil {
			o.Progress(i, len(files), read)
		}
		if st, err := os.Stat(f); err == nil {
			read += st.Size()
		}
		res.Files++
		if u, err := countInvalidUTF8(f); err == nil && u.Count > 0 {
			if o.StrictUTF8 {
				err := fmt.Errorf("%s: byte %d: not UTF-8 (%d invalid sequences in the file; without -strict_utf8 they are read as U+FFFD)", f, u.First, u.Count)
				if !skipBad {
					return nil, err
				}
				res.Skipped = append(res.Skipped, Skipped{Source: f, Err: err})
				continue
			}
			res.InvalidUTF8 = append(res.InvalidUTF8, u)
		}
		if m := partialMarker(f); m != "" {
			// an interrupted rollout episode: never training data, no
			// flag needed; the rollout redoes it when rerun
			res.Skipped = append(res.Skipped, Skipped{Source: f, Err: fmt.Errorf("%s: partial episode (%s present: its rollout was interrupted; rerun the rollout to finish it)", f, m)})
			continue
		}
		eps, skipped, err := loadFile(f, skipBad)
		if err != nil {
			if !skipBad {
				return nil, err
			}
			res.Skipped = append(res.Skipped, Skipped{Source: f, Err: err})
			continue
		}
		res.Episodes = append(res.Episodes, eps...)
		res.Skipped = append(res.Skipped, skipped...)
	}
	if o.Progress != nil {
		o.Progress(len(files), len(files), read)
	}
	return res, nil
}

// PartialMarker is the file a rollout keeps in an episode's run folder
// (beside agent_history/ and env_history/) while the episode is not
// finished; Load skips such folders with a note.
const PartialMarker = "PARTIAL"

// partialMarker returns the marker's path when the MLE-Dojo trajectory f
// belongs to a run folder holding one, else "".
func partialMarker(f string) string {
	if kindOf(f) != "mledojo" {
		return ""
	}
	dir := filepath.Dir(f)
	if filepath.Base(dir) == "agent_history" {
		dir = filepath.Dir(dir)
	}
	m := filepath.Join(dir, PartialMarker)
	if _, err := os.Lstat(m); err == nil {
		return m
	}
	return ""
}

// kindOf names the loader for a path ("" when it is not a data file).
func kindOf(path string) string {
	base := filepath.Base(path)
	switch {
	case base == "metrics.jsonl":
		return "metrics"
	case strings.HasSuffix(base, ".jsonl"):
		return "jsonl"
	case base == "journal.json":
		return "aide"
	case base == "trajectory.json" && filepath.Base(filepath.Dir(path)) == "agent_history":
		return "mledojo"
	case base == "agent_trajectory.json":
		return "mledojo"
	}
	return ""
}

func loadFile(path string, skipBad bool) ([]Episode, []Skipped, error) {
	switch kindOf(path) {
	case "metrics":
		return nil, nil, fmt.Errorf("%s is a training log (metrics.jsonl of a run folder), not trajectories: pass episode files or folders (a folder's metrics.jsonl is skipped)", path)
	case "jsonl":
		return LoadJSONL(path, skipBad)
	case "aide":
		eps, err := LoadAIDEJournal(path)
		return eps, nil, err
	case "mledojo":
		ep, err := LoadMLEDojoRun(path, "")
		if err != nil {
			return nil, nil, err
		}
		return []Episode{*ep}, nil, nil
	}
	// Unknown name given explicitly: guess from the content.
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := notEpisodeFile(path, raw); err != nil {
		return nil, nil, err
	}
	t := bytes.TrimLeft(raw, " \t\r\n")
	switch {
	case bytes.HasPrefix(t, []byte("[")):
		ep, err := LoadMLEDojoRun(path, "")
		if err != nil {
			return nil, nil, err
		}
		return []Episode{*ep}, nil, nil
	case bytes.Contains(raw, []byte(`"nodes"`)):
		eps, err := LoadAIDEJournal(path)
		return eps, nil, err
	}
	return LoadJSONL(path, skipBad)
}

// ---- JSONL ----

// jsonlEpisode is one line of the JSONL format.
type jsonlEpisode struct {
	Messages    *[]Message     `json:"messages"`
	Reward      *Float         `json:"reward"`
	StepRewards []Float        `json:"step_rewards,omitempty"`
	StepScores  []Float        `json:"step_scores,omitempty"`
	Meta        map[string]any `json:"meta,omitempty"`
}

// maxLineBytes bounds one JSONL line.
const maxLineBytes = 256 << 20

// LoadJSONL reads one episode per line: {"messages":[{"role","content"}],
// "reward": x, "meta": {...}} (optional "step_rewards", "step_scores";
// reward may be null/NaN; unknown keys are errors). Blank lines are skipped.
// Errors name the file, the line and the byte offset within the file.
func LoadJSONL(path string, skipBad bool) ([]Episode, []Skipped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	return parseJSONL(bufio.NewReaderSize(f, 1<<16), path, skipBad)
}

// ParseJSONL parses JSONL data (see LoadJSONL); name is used in messages.
func ParseJSONL(data []byte, name string, skipBad bool) ([]Episode, []Skipped, error) {
	return parseJSONL(bufio.NewReader(bytes.NewReader(data)), name, skipBad)
}

func parseJSONL(r *bufio.Reader, name string, skipBad bool) ([]Episode, []Skipped, error) {
	var eps []Episode
	var skipped []Skipped
	var off int64
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(r)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%s:%d: %w", name, lineNo, err)
		}
		if len(line) == 0 && err != nil {
			break
		}
		start := off
		off += int64(len(line))
		if len(line) > maxLineBytes {
			return nil, nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, lineNo, maxLineBytes)
		}
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 {
			continue
		}
		src := fmt.Sprintf("%s:%d", name, lineNo)
		ep, perr := parseJSONLLine(trimmed)
		if perr != nil {
			// make offsets file-relative
			perr = fmt.Errorf("%s (line starts at byte offset %d): %w", src, start, perr)
			if !skipBad {
				return nil, nil, perr
			}
			skipped = append(skipped, Skipped{Source: src, Err: perr})
			continue
		}
		ep.Source = src
		eps = append(eps, *ep)
		if err != nil {
			break
		}
	}
	return eps, skipped, nil
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := r.ReadSlice('\n')
		out = append(out, chunk...)
		if err == bufio.ErrBufferFull {
			if len(out) > maxLineBytes {
				return out, nil
			}
			continue
		}
		return out, err
	}
}

func parseJSONLLine(line []byte) (*Episode, error) {
	var je jsonlEpisode
	if err := decodeStrict(line, &je, true); err != nil {
		return nil, err
	}
	if je.Messages == nil {
		return nil, errors.New(`no "messages" array`)
	}
	ep := &Episode{Messages: *je.Messages, Reward: math.NaN(), Meta: je.Meta}
	if je.Reward != nil {
		ep.Reward = float64(*je.Reward)
	}
	if je.StepRewards != nil {
		ep.StepRewards = floats(je.StepRewards)
	}
	if je.StepScores != nil {
		ep.StepScores = floats(je.StepScores)
	}
	for i, m := range ep.Messages {
		if m.Role == "" {
			return nil, fmt.Errorf("messages[%d]: missing role", i)
		}
	}
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	return ep, nil
}

func floats(f []Float) []float64 {
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

func toFloats(f []float64) []Float {
	if f == nil {
		return nil
	}
	out := make([]Float, len(f))
	for i, v := range f {
		out[i] = Float(v)
	}
	return out
}

// MarshalJSONL encodes one episode as a JSONL line (with trailing newline)
// that LoadJSONL reads back. Non-finite rewards are written as null.
func (e *Episode) MarshalJSONL() ([]byte, error) {
	msgs := e.Messages
	if msgs == nil {
		msgs = []Message{}
	}
	r := Float(e.Reward)
	meta, _ := cleanJSONValue(e.Meta).(map[string]any)
	je := jsonlEpisode{Messages: &msgs, Reward: &r, StepRewards: toFloats(e.StepRewards), StepScores: toFloats(e.StepScores), Meta: meta}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(je); err != nil {
		return nil, fmt.Errorf("episode %s: %w", e.Source, err)
	}
	return buf.Bytes(), nil
}

// WriteJSONL writes episodes to path (atomically) in the JSONL format.
func WriteJSONL(path string, eps []Episode) error {
	var buf bytes.Buffer
	for i := range eps {
		b, err := eps[i].MarshalJSONL()
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// cleanJSONValue replaces non-finite floats (which encoding/json rejects)
// by nil inside maps and slices.
func cleanJSONValue(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case float32:
		return cleanJSONValue(float64(x))
	case map[string]any:
		if x == nil {
			return x
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cleanJSONValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cleanJSONValue(e)
		}
		return out
	}
	return v
}
