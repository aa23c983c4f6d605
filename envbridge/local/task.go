package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"smtrain/envbridge/metrics"
)

// TaskMeta is the optional <comp>/data/task.json.
type TaskMeta struct {
	Metric         string   `json:"metric"`
	HigherIsBetter *bool    `json:"higher_is_better,omitempty"`
	IDColumn       string   `json:"id_column,omitempty"`
	TargetColumns  []string `json:"target_columns,omitempty"`
}

// known lists competitions recognised by name when there is no task.json.
var known = map[string]TaskMeta{
	"titanic":                 {Metric: "accuracy", IDColumn: "PassengerId", TargetColumns: []string{"Survived"}},
	"spaceship-titanic":       {Metric: "accuracy", IDColumn: "PassengerId", TargetColumns: []string{"Transported"}},
	"digit-recognizer":        {Metric: "accuracy", IDColumn: "ImageId", TargetColumns: []string{"Label"}},
	"playground-series-s3e12": {Metric: "auc", IDColumn: "id", TargetColumns: []string{"target"}},
	"playground-series-s3e9":  {Metric: "rmse", IDColumn: "id", TargetColumns: []string{"Strength"}},
	"playground-series-s3e14": {Metric: "mae", IDColumn: "id", TargetColumns: []string{"yield"}},
	"random-acts-of-pizza":    {Metric: "auc", IDColumn: "request_id", TargetColumns: []string{"requester_received_pizza"}},
	"nlp-getting-started":     {Metric: "f1", IDColumn: "id", TargetColumns: []string{"target"}},
	"bike-sharing-demand":     {Metric: "rmsle", IDColumn: "datetime", TargetColumns: []string{"count"}},
}

// KnownCompetitions lists the competition names recognised without a
// task.json.
func KnownCompetitions() []string {
	out := make([]string, 0, len(known))
	for k := range known {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Task is a competition folder in MLE-Dojo's prepared layout.
type Task struct {
	Name           string // folder name
	Dir            string // <comp>
	PublicDir      string // <comp>/data/public
	PrivateDir     string // <comp>/data/private
	Metric         metrics.Spec
	HigherIsBetter bool
	IDColumn       string
	Targets        []string
	// Leaderboards (nil when the file is absent; at least one is present).
	PublicBoard, PrivateBoard []float64
	// MaxSubmissionBytes caps the size of a submission.csv the host reads
	// (0: the larger of DefaultMaxSubmissionBytes and SubmissionBytesPerRow
	// per expected row). Set it before serving the task.
	MaxSubmissionBytes int64
	answers            *table
}

// LoadTask reads the competition folder dir (holding data/public and
// data/private). The metric comes from data/task.json, else from the list of
// known competitions; the id column defaults to the first column of
// test_answer.csv and the targets to the others.
func LoadTask(dir string) (*Task, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	t := &Task{Name: filepath.Base(abs), Dir: abs,
		PublicDir: filepath.Join(abs, "data", "public"), PrivateDir: filepath.Join(abs, "data", "private")}
	for _, p := range []string{t.PublicDir, t.PrivateDir, filepath.Join(t.PublicDir, "description.txt"),
		filepath.Join(t.PublicDir, "sample_submission.csv"), filepath.Join(t.PrivateDir, "test_answer.csv")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("task %s: required path missing: %s (MLE-Dojo layout: <comp>/data/public/{description.txt,sample_submission.csv,...}, <comp>/data/private/test_answer.csv)", t.Name, p)
		}
	}
	meta, hasMeta := known[t.Name]
	metaPath := filepath.Join(abs, "data", "task.json")
	if b, err := os.ReadFile(metaPath); err == nil {
		var m TaskMeta
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("%s: %w", metaPath, err)
		}
		if m.Metric == "" && !hasMeta {
			return nil, fmt.Errorf("%s: \"metric\" is required", metaPath)
		}
		if m.Metric != "" {
			meta.Metric = m.Metric
		}
		if m.HigherIsBetter != nil {
			meta.HigherIsBetter = m.HigherIsBetter
		}
		if m.IDColumn != "" {
			meta.IDColumn = m.IDColumn
		}
		if len(m.TargetColumns) > 0 {
			meta.TargetColumns = m.TargetColumns
		}
		hasMeta = true
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	if !hasMeta {
		return nil, fmt.Errorf("task %s: unknown competition and no %s; write {\"metric\": one of %s, \"higher_is_better\": ..., \"id_column\": ..., \"target_columns\": [...]}",
			t.Name, metaPath, strings.Join(metrics.Names(), ", "))
	}
	spec, ok := metrics.Lookup(meta.Metric)
	if !ok {
		return nil, fmt.Errorf("task %s: unknown metric %q (have %s)", t.Name, meta.Metric, strings.Join(metrics.Names(), ", "))
	}
	t.Metric = spec
	t.HigherIsBetter = spec.HigherIsBetter
	if meta.HigherIsBetter != nil {
		t.HigherIsBetter = *meta.HigherIsBetter
	}
	ansPath := filepath.Join(t.PrivateDir, "test_answer.csv")
	ans, err := readTable(ansPath)
	if err != nil {
		return nil, err
	}
	if len(ans.header) < 2 {
		return nil, fmt.Errorf("%s: needs an id column and at least one target column", ansPath)
	}
	t.IDColumn = meta.IDColumn
	if t.IDColumn == "" {
		t.IDColumn = ans.header[0]
	}
	if ans.col(t.IDColumn) < 0 {
		return nil, fmt.Errorf("%s: id column %q not found (columns: %s)", ansPath, t.IDColumn, strings.Join(ans.header, ", "))
	}
	t.Targets = meta.TargetColumns
	if len(t.Targets) == 0 {
		for _, h := range ans.header {
			if h != t.IDColumn {
				t.Targets = append(t.Targets, h)
			}
		}
	}
	for _, c := range t.Targets {
		if ans.col(c) < 0 {
			return nil, fmt.Errorf("%s: target column %q not found (columns: %s)", ansPath, c, strings.Join(ans.header, ", "))
		}
	}
	if _, err := ans.index(t.IDColumn, ansPath); err != nil {
		return nil, err
	}
	t.answers = ans
	for _, b := range []struct {
		file string
		dst  *[]float64
	}{{"public_leaderboard.csv", &t.PublicBoard}, {"private_leaderboard.csv", &t.PrivateBoard}} {
		p := filepath.Join(t.PrivateDir, b.file)
		if _, err := os.Stat(p); os.IsNotExist(err) {
			continue
		}
		s, err := metrics.ReadLeaderboard(p)
		if err != nil {
			return nil, err
		}
		*b.dst = s
	}
	if t.PublicBoard == nil && t.PrivateBoard == nil {
		return nil, fmt.Errorf("task %s: no leaderboard in %s (public_leaderboard.csv / private_leaderboard.csv, rank,score)", t.Name, t.PrivateDir)
	}
	return t, nil
}

// table is a CSV file read into memory.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) col(name string) int {
	for i, h := range t.header {
		if h == name {
			return i
		}
	}
	return -1
}

// index maps normalised ids to row numbers; duplicate ids are an error.
func (t *table) index(idCol, path string) (map[string]int, error) {
	c := t.col(idCol)
	m := make(map[string]int, len(t.rows))
	for i, r := range t.rows {
		k := normID(r[c])
		if j, dup := m[k]; dup {
			return nil, fmt.Errorf("%s: duplicate %s %q in rows %d and %d", path, idCol, clipText(r[c], maxValueShown), j+2, i+2)
		}
		m[k] = i
	}
	return m, nil
}

func readTable(path string) (*table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseTable(b, path)
}

func parseTable(b []byte, path string) (*table, error) {
	return readCSV(bytes.NewReader(b), path, -1)
}

// normID canonicalises an id: trimmed, and integral numbers written
// without a fractional part ("12.0" -> "12").
func normID(s string) string {
	s = strings.TrimSpace(s)
	if n := len(s); n > 2 && strings.HasSuffix(s, ".0") {
		if strings.Trim(s[:n-2], "0123456789-") == "" {
			return s[:n-2]
		}
	}
	return s
}
