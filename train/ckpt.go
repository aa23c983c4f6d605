package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"smtrain/data"
	"smtrain/internal/atomicfile"
	"smtrain/model"
)

// Files of a training checkpoint folder OUT/ckpt-%08d/ beside the model
// files written by model.Save.
const (
	TokenizerFile    = "tokenizer.json"
	OptimizerFile    = "optimizer.safetensors"
	StateFile        = "trainer_state.json"
	ReplayFile       = "replay.json"
	LatestFile       = "latest"
	ConfigOutFile    = "config.json"
	MetricsFile      = "metrics.jsonl"
	StateSchema      = 1
	ckptPrefix       = "ckpt-"
	ckptNameTemplate = "ckpt-%08d"
)

// State is trainer_state.json: everything besides weights, optimizer
// moments, tokenizer and replay buffer needed to resume bit-exactly.
// Every random draw of the trainer is derived from (seed, step, purpose),
// so the RNG state at a step boundary is the seed and the step.
type State struct {
	Schema int `json:"schema"`
	// Step is the number of optimizer steps completed.
	Step int `json:"step"`
	// Seed and RNG describe how random streams are derived.
	Seed int64  `json:"seed"`
	RNG  string `json:"rng"`
	// Cursor is the training data position.
	Cursor Cursor `json:"cursor"`
	// BestMetric is the best validation NLL so far (and its step).
	BestMetric *float64 `json:"best_metric,omitempty"`
	BestStep   int      `json:"best_step"`
	// EvalsSinceBest counts evaluations without improvement (early stop).
	EvalsSinceBest int `json:"evals_since_best"`
	// NonFinite counts consecutive skipped (non-finite) steps.
	NonFinite int `json:"nonfinite"`
	// MetricsOffset is the size of metrics.jsonl when the checkpoint was
	// written; a resume cuts the file back to it.
	MetricsOffset int64 `json:"metrics_offset"`
	// ElapsedS is the training wall time so far.
	ElapsedS float64 `json:"elapsed_s"`
	// Tokens is the number of trained tokens so far.
	Tokens int64 `json:"tokens"`
}

// Cursor is the position in the training data: epoch and index into that
// epoch's shuffled order.
type Cursor struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`
}

func ckptDir(out string, step int) string {
	return filepath.Join(out, fmt.Sprintf(ckptNameTemplate, step))
}

// saveCheckpoint writes OUT/ckpt-%08d/ atomically (model.Save writes to a
// temporary folder and renames it), then the latest marker.
func saveCheckpoint(out string, st *State, p *model.Params, tok *data.Tokenizer, opt func(io.Writer) error, replay []byte) (string, error) {
	stb, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	tokb, err := tok.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("tokenizer: %w", err)
	}
	extra := map[string][]byte{
		TokenizerFile: tokb,
		StateFile:     append(stb, '\n'),
	}
	if replay != nil {
		extra[ReplayFile] = replay
	}
	dir := ckptDir(out, st.Step)
	if testHookCheckpoint != nil {
		testHookCheckpoint("begin", st.Step)
	}
	if err := model.SaveWith(dir, p, extra, map[string]func(io.Writer) error{OptimizerFile: opt}); err != nil {
		return "", err
	}
	if testHookCheckpoint != nil {
		testHookCheckpoint("model-written", st.Step)
	}
	if err := atomicfile.WriteFile(filepath.Join(out, LatestFile), []byte(filepath.Base(dir)+"\n")); err != nil {
		return "", err
	}
	return dir, nil
}

// testHookCheckpoint, set only by tests, is called at two points of every
// checkpoint write: "begin" (nothing written yet) and "model-written" (the
// new folder is in place, the latest marker not yet updated). The
// exact-resume test kills the process there.
var testHookCheckpoint func(point string, step int)

// removeStaleTemps deletes the temporary checkpoint folders a killed run
// left in out (model.Save's ".ckpt-%08d.tmp-*" siblings, which are never
// checkpoints: the rename into place is the last step of a write).
func removeStaleTemps(out string) error {
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "."+ckptPrefix) && strings.Contains(e.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(out, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// latestCheckpoint returns the folder named by OUT/latest.
func latestCheckpoint(out string) (string, error) {
	b, err := os.ReadFile(filepath.Join(out, LatestFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s: no checkpoint to resume from (no %s marker)", out, LatestFile)
		}
		return "", err
	}
	name := strings.TrimSpace(string(b))
	if !strings.HasPrefix(name, ckptPrefix) || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("%s: malformed marker %q", filepath.Join(out, LatestFile), name)
	}
	return filepath.Join(out, name), nil
}

// resumeCheckpoint returns the checkpoint a resumed run of out starts
// from: the one named by the latest marker; without a marker (a run killed
// before its first marker write, or between a checkpoint folder's rename
// into place and the marker's update) the newest checkpoint folder (a
// folder is in place only once complete: the rename is a write's last
// step), or "" when the run wrote none yet (it starts again from step 0).
// A folder that holds no run is an error: there is nothing to resume.
func resumeCheckpoint(out string) (string, error) {
	if fileExists(filepath.Join(out, LatestFile)) {
		return latestCheckpoint(out)
	}
	found, err := runFiles(out)
	if err != nil {
		return "", err
	}
	if len(found) == 0 {
		return "", fmt.Errorf("%s: no run to resume (no %s marker, checkpoint or metrics)", out, LatestFile)
	}
	if steps := listCheckpoints(out); len(steps) > 0 {
		return ckptDir(out, steps[len(steps)-1]), nil
	}
	return "", nil
}

func readState(dir string) (*State, error) {
	path := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Schema != StateSchema {
		return nil, fmt.Errorf("%s: schema %d, this smtrain reads %d", path, st.Schema, StateSchema)
	}
	return &st, nil
}

// listCheckpoints returns the steps of the checkpoint folders in out.
func listCheckpoints(out string) []int {
	ents, _ := os.ReadDir(out)
	var steps []int
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), ckptPrefix) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), ckptPrefix))
		if err == nil && fmt.Sprintf(ckptNameTemplate, n) == e.Name() {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps
}

// pruneCheckpoints keeps the last keepLast checkpoints, the best one and the
// one named by latest; it removes the others.
func pruneCheckpoints(out string, keepLast, best, latest int) error {
	steps := listCheckpoints(out)
	keep := map[int]bool{best: true, latest: true}
	for i := len(steps) - 1; i >= 0 && i >= len(steps)-keepLast; i-- {
		keep[steps[i]] = true
	}
	for _, s := range steps {
		if !keep[s] {
			if err := os.RemoveAll(ckptDir(out, s)); err != nil {
				return err
			}
		}
	}
	return nil
}
