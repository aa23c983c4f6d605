// Package tasks generates small built-in MLE-Dojo-style competitions from
// a seed: synthetic tabular data, descriptions and leaderboards, written in
// MLE-Dojo's prepared layout (<dir>/<name>/data/public, data/private,
// data/task.json) so the local environment serves them like real ones.
// Each task has a few hundred rows, so a pure-Python standard-library
// solution runs in well under a second.
package tasks

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Version changes whenever generated content changes, so cached copies are
// regenerated.
const Version = 1

// DefaultSeed is the seed the built-in registry uses.
const DefaultSeed = 2024

// Spec is a generated competition before it is written out.
type Spec struct {
	Name           string
	Metric         string // metrics registry name
	HigherIsBetter bool
	IDColumn       string
	Target         string
	Description    string
	TrainHeader    []string
	Train          [][]string
	TestHeader     []string
	Test           [][]string
	Answers        [][]string // id, target
	SampleValue    string     // target value of sample_submission.csv
	Public         []float64  // leaderboard scores, best first
	Private        []float64
	Oracle         float64 // score of the generating model on the test set
	Baseline       float64 // score of the trivial prediction
}

type generator struct {
	name string
	gen  func(r *rand.Rand) *Spec
}

var generators = []generator{
	{"loan-default", genLoan},
	{"house-prices-lite", genHouse},
	{"flower-species", genFlowers},
}

// Names lists the built-in task names.
func Names() []string {
	out := make([]string, len(generators))
	for i, g := range generators {
		out[i] = g.name
	}
	return out
}

// Generate builds task name from seed (deterministic).
func Generate(name string, seed uint64) (*Spec, error) {
	for i, g := range generators {
		if g.name == name {
			r := rand.New(rand.NewPCG(seed, uint64(i)+0x5eed))
			return g.gen(r), nil
		}
	}
	return nil, fmt.Errorf("unknown built-in task %q (have %s)", name, strings.Join(Names(), ", "))
}

// CacheDir is the default folder for materialised tasks:
// $XDG_CACHE_HOME/smtrain/tasks (or the OS temp dir when there is no cache
// dir).
func CacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "smtrain", "tasks")
	}
	return filepath.Join(os.TempDir(), "smtrain-tasks")
}

type stamp struct {
	Name    string `json:"name"`
	Seed    uint64 `json:"seed"`
	Version int    `json:"version"`
}

// Materialize writes task name generated from seed under root (root/name,
// MLE-Dojo layout) and returns the competition folder. An existing folder
// generated with the same name, seed and Version is reused; the folder is
// built in a temporary sibling and renamed into place, so concurrent
// callers never see a half-written task.
func Materialize(root, name string, seed uint64) (string, error) {
	dir := filepath.Join(root, fmt.Sprintf("%s", name))
	want := stamp{name, seed, Version}
	if ok, _ := stampMatches(dir, want); ok {
		return dir, nil
	}
	spec, err := Generate(name, seed)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("materialize %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(root, "."+name+".tmp-")
	if err != nil {
		return "", fmt.Errorf("materialize %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	if err := spec.write(tmp); err != nil {
		return "", fmt.Errorf("materialize %s: %w", name, err)
	}
	b, _ := json.Marshal(want)
	if err := os.WriteFile(filepath.Join(tmp, "data", ".smtrain-builtin.json"), b, 0o644); err != nil {
		return "", fmt.Errorf("materialize %s: %w", name, err)
	}
	// Replace a stale copy; a concurrent winner with the right stamp is fine.
	if ok, _ := stampMatches(dir, want); ok {
		return dir, nil
	}
	old := dir + fmt.Sprintf(".old-%d", os.Getpid())
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return "", fmt.Errorf("materialize %s: %w", name, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if ok, _ := stampMatches(dir, want); ok {
			return dir, nil
		}
		return "", fmt.Errorf("materialize %s: %w", name, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("materialize %s: %w", name, err)
	}
	return dir, nil
}

func stampMatches(dir string, want stamp) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "data", ".smtrain-builtin.json"))
	if err != nil {
		return false, err
	}
	var got stamp
	if err := json.Unmarshal(b, &got); err != nil {
		return false, err
	}
	return got == want, nil
}

// write lays the task out under dir/data.
func (s *Spec) write(dir string) error {
	pub := filepath.Join(dir, "data", "public")
	priv := filepath.Join(dir, "data", "private")
	for _, d := range []string{pub, priv} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(pub, "description.txt"), []byte(s.Description), 0o644); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(pub, "train.csv"), s.TrainHeader, s.Train); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(pub, "test.csv"), s.TestHeader, s.Test); err != nil {
		return err
	}
	sample := make([][]string, len(s.Answers))
	for i, a := range s.Answers {
		sample[i] = []string{a[0], s.SampleValue}
	}
	if err := writeCSV(filepath.Join(pub, "sample_submission.csv"), []string{s.IDColumn, s.Target}, sample); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(priv, "test_answer.csv"), []string{s.IDColumn, s.Target}, s.Answers); err != nil {
		return err
	}
	for _, b := range []struct {
		name   string
		scores []float64
	}{{"public_leaderboard.csv", s.Public}, {"private_leaderboard.csv", s.Private}} {
		rows := make([][]string, len(b.scores))
		for i, v := range b.scores {
			rows[i] = []string{strconv.Itoa(i + 1), strconv.FormatFloat(v, 'f', -1, 64)}
		}
		if err := writeCSV(filepath.Join(priv, b.name), []string{"rank", "score"}, rows); err != nil {
			return err
		}
	}
	meta := map[string]any{"metric": s.Metric, "higher_is_better": s.HigherIsBetter, "id_column": s.IDColumn, "target_columns": []string{s.Target}}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "data", "task.json"), append(b, '\n'), 0o644)
}

func writeCSV(path string, header []string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(header)
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// leaderboard draws n plausible scores between a trivial baseline and a
// little beyond the oracle: most entries are good, a long tail is weak and
// a few are worse than the baseline. Scores are rounded to 5 decimals and
// sorted best first.
func leaderboard(r *rand.Rand, n int, baseline, oracle float64, higherIsBetter bool, lo, hi float64) []float64 {
	gap := oracle - baseline
	out := make([]float64, n)
	for i := range out {
		u := r.Float64()
		q := 1.02 - 1.25*u*u
		v := baseline + gap*q + 0.015*math.Abs(gap)*r.NormFloat64()
		v = math.Min(math.Max(v, lo), hi)
		out[i] = math.Round(v*1e5) / 1e5
	}
	if higherIsBetter {
		sort.Sort(sort.Reverse(sort.Float64Slice(out)))
	} else {
		sort.Float64s(out)
	}
	return out
}

func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
