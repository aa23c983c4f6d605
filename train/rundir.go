package train

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SkippedFile lists, one per line, the inputs a run left out as malformed
// (skip_bad).
const SkippedFile = "skipped.txt"

// ErrRunExists is returned by New when its output folder already holds a
// run and neither resume nor ClearRun was asked for.
var ErrRunExists = errors.New("holds a run")

// runFiles lists the files of a run folder that are a run's record: a
// metrics.jsonl with content, the latest marker, checkpoint folders.
func runFiles(out string) ([]string, error) {
	ents, err := os.ReadDir(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var found []string
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == MetricsFile:
			if info, err := e.Info(); err == nil && info.Size() > 0 {
				found = append(found, name)
			}
		case name == LatestFile:
			found = append(found, name)
		case e.IsDir() && strings.HasPrefix(name, ckptPrefix):
			found = append(found, name)
		}
	}
	return found, nil
}

// checkFreshOut refuses to start a new run in a folder that holds one: a
// new run would cut its metrics.jsonl, overwrite its config.json and move
// its latest marker back while its checkpoints stay beside the new ones.
func checkFreshOut(out string) error {
	found, err := runFiles(out)
	if err != nil {
		return err
	}
	if len(found) > 0 {
		return fmt.Errorf("%s %w (%s); nothing was changed: continue it with -resume, start over with -overwrite (deletes that run's files), or choose another -out",
			out, ErrRunExists, strings.Join(found, ", "))
	}
	return nil
}

// ClearRun deletes everything a training run writes into out: config.json,
// metrics.jsonl, the latest marker, every checkpoint folder and the
// temporary folders of interrupted checkpoint writes. Other files (a user's
// notes, a rollout folder) are left alone. A missing out is not an error.
func ClearRun(out string) error {
	ents, err := os.ReadDir(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		ours := name == MetricsFile || name == LatestFile || name == ConfigOutFile || name == SkippedFile ||
			(e.IsDir() && strings.HasPrefix(name, ckptPrefix)) ||
			(e.IsDir() && strings.HasPrefix(name, "."+ckptPrefix) && strings.Contains(name, ".tmp-"))
		if !ours {
			continue
		}
		if err := os.RemoveAll(filepath.Join(out, name)); err != nil {
			return err
		}
	}
	return nil
}
