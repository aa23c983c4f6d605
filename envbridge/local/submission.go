package local

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"smtrain/envbridge/metrics"
	"smtrain/envbridge/sandbox/safefs"
)

// mledojoError mirrors MLE-Dojo's error_to_dict: a failed component result.
func mledojoError(errType, msg, details, causes string) omap {
	var d, c any
	if details != "" {
		d = details
	}
	if causes != "" {
		c = causes
	}
	return omap{{"status", "FAILED"}, {"error_type", errType}, {"error", msg}, {"details", d}, {"potential_causes", c}}
}

// Potential causes as MLE-Dojo lists them (error.py docstrings).
const (
	causesNotFound = "- Code execution did not generate a submission file\n    - Submission file was saved to wrong location\n    - Submission file name does not match competition requirements"
	causesInvalid  = "- Submission format does not match requirements\n    - Missing required fields in submission\n    - Invalid values in submission"
	causesEval     = "- Metric calculation fails\n    - Invalid values prevent score computation\n    - Required evaluation data is missing"
)

// invalidSubmission is a submission validation failure.
type invalidSubmission struct{ msg, details string }

func (e *invalidSubmission) Error() string { return e.msg + ": " + e.details }

// DefaultMaxSubmissionBytes is the smallest submission size cap; a task
// with many rows gets SubmissionBytesPerRow bytes per expected row instead
// when that is more (see Task.submissionLimit).
const (
	DefaultMaxSubmissionBytes = 64 << 20
	SubmissionBytesPerRow     = 1 << 10
)

// submissionDeadline bounds the host's read and parse of one submission.
const submissionDeadline = 30 * time.Second

// submissionLimit is the size cap for this task's submissions:
// MaxSubmissionBytes when positive, else the larger of
// DefaultMaxSubmissionBytes and SubmissionBytesPerRow per expected row.
func (t *Task) submissionLimit() int64 {
	if t.MaxSubmissionBytes > 0 {
		return t.MaxSubmissionBytes
	}
	return max(DefaultMaxSubmissionBytes, int64(len(t.answers.rows)+1)*SubmissionBytesPerRow)
}

// scoreSubmission validates the submission CSV at path (a host path whose
// folder is trusted; the file itself is not) against the task's answers
// and returns the raw score. shown is the file's name as the agent sees
// it, used in messages.
func (t *Task) scoreSubmission(path, shown string) (float64, error) {
	dir, err := safefs.OpenDir(filepath.Dir(path))
	if err != nil {
		return 0, err
	}
	defer dir.Close()
	return t.scoreFile(dir, filepath.Base(path), shown)
}

// scoreFile scores the submission rel under dir, read through safefs: a
// regular file reached without links, at most limit bytes, parsed as a
// stream that stops at the first row past the expected count. Validation
// problems come back as *invalidSubmission with MLE-Dojo-style messages
// that name shown, never a host path.
func (t *Task) scoreFile(dir *safefs.Dir, rel, shown string) (float64, error) {
	limit := t.submissionLimit()
	f, size, err := dir.OpenRegular(rel)
	if err != nil {
		return 0, &invalidSubmission{"Failed to read submission file", shown + " " + refusal(err)}
	}
	defer f.Close()
	if size > limit {
		return 0, &invalidSubmission{"Failed to read submission file", tooLarge(shown, size, limit)}
	}
	sub, err := readCSV(safefs.LimitReader(f, limit, time.Now().Add(submissionDeadline)), "submission.csv", len(t.answers.rows))
	var le *safefs.LimitError
	switch {
	case errors.As(err, &le):
		return 0, &invalidSubmission{"Failed to read submission file", tooLarge(shown, -1, limit)}
	case errors.Is(err, errTooManyRows):
		return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("Number of rows in submission (more than %d) does not match ground truth (%d). Please ensure both have the same number of rows.", len(t.answers.rows), len(t.answers.rows))}
	case errors.Is(err, safefs.ErrLimit):
		return 0, &invalidSubmission{"Failed to read submission file", fmt.Sprintf("Reading %s took longer than %v; the host stopped.", shown, submissionDeadline)}
	case err != nil:
		return 0, &invalidSubmission{"Failed to read submission file", "Could not parse submission file as CSV: " + err.Error()}
	}
	ans := t.answers
	if len(sub.rows) != len(ans.rows) {
		return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("Number of rows in submission (%d) does not match ground truth (%d). Please ensure both have the same number of rows.", len(sub.rows), len(ans.rows))}
	}
	want := append([]string{t.IDColumn}, t.Targets...)
	var missing, extra []string
	for _, c := range want {
		if sub.col(c) < 0 {
			missing = append(missing, c)
		}
	}
	for _, h := range sub.header {
		found := false
		for _, c := range want {
			found = found || h == c
		}
		if !found {
			extra = append(extra, h)
		}
	}
	if len(missing) > 0 {
		return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("Missing required columns in submission: %s. Expected columns: %s; found: %s.", strings.Join(missing, ", "), strings.Join(want, ", "), strings.Join(sub.header, ", "))}
	}
	if len(extra) > 0 {
		return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("Extra unexpected columns found in submission: %s.", strings.Join(extra, ", "))}
	}
	for i, r := range sub.rows {
		if len(r) != len(sub.header) {
			return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("Row %d of the submission has %d fields, the header has %d.", i+2, len(r), len(sub.header))}
		}
	}
	subIdx, err := sub.index(t.IDColumn, "submission.csv")
	if err != nil {
		return 0, &invalidSubmission{"Submission validation failed", err.Error()}
	}
	ansIdx, _ := ans.index(t.IDColumn, "test_answer.csv")
	var unknown []string
	for k := range subIdx {
		if _, ok := ansIdx[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		ex := make([]string, 0, 3)
		for _, id := range unknown[:min(3, len(unknown))] {
			ex = append(ex, clipText(id, maxValueShown))
		}
		return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("The %s column values do not match between submission and ground truth (%d unknown ids, e.g. %s). Please ensure the id values are identical to the test set.", t.IDColumn, len(unknown), strings.Join(ex, ", "))}
	}
	// Align submission rows to the answer order.
	ord := make([]int, len(ans.rows))
	aid := ans.col(t.IDColumn)
	for i, r := range ans.rows {
		ord[i] = subIdx[normID(r[aid])]
	}
	var total float64
	for _, c := range t.Targets {
		sc, ac := sub.col(c), ans.col(c)
		truth := make([]string, len(ans.rows))
		pred := make([]string, len(ans.rows))
		for i, r := range ans.rows {
			truth[i] = r[ac]
			v := sub.rows[ord[i]][sc]
			if bad := badValue(v); bad != "" {
				return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("Column %s, row %d (%s %s): %s.", c, ord[i]+2, t.IDColumn, clipText(sub.rows[ord[i]][sub.col(t.IDColumn)], maxValueShown), bad)}
			}
			pred[i] = v
		}
		s, err := t.Metric.Eval(truth, pred)
		if err != nil {
			var ie *invalidSubmission
			if errors.As(err, &ie) {
				return 0, err
			}
			if strings.HasPrefix(err.Error(), "prediction") {
				return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("Column %s: %v", c, err)}
			}
			return 0, fmt.Errorf("column %s: %w", c, err)
		}
		total += s
	}
	score := total / float64(len(t.Targets))
	if math.IsNaN(score) || math.IsInf(score, 0) {
		return 0, fmt.Errorf("metric %s returned %v", t.Metric.Name, score)
	}
	return score, nil
}

// badValue reports an empty or NaN cell.
func badValue(v string) string {
	s := strings.TrimSpace(v)
	switch strings.ToLower(s) {
	case "":
		return "empty value"
	case "nan", "na", "n/a", "null", "none", "inf", "-inf", "infinity", "-infinity":
		return fmt.Sprintf("value is %s", s)
	}
	return ""
}

// position returns MLE-Dojo's position_score dict and the average.
func (t *Task) position(score float64) (omap, float64, error) {
	ps, err := metrics.Score(score, t.PrivateBoard, t.PublicBoard, t.HigherIsBetter)
	if err != nil {
		return nil, 0, err
	}
	var o omap
	for _, b := range []struct {
		name string
		p    *metrics.BoardPosition
	}{{"private", ps.Private}, {"public", ps.Public}} {
		if b.p != nil {
			o = append(o, kv{b.name, omap{{"position", b.p.Position}, {"total", b.p.Total}, {"position_score", b.p.PositionScore}}})
		}
	}
	o = append(o, kv{"avg_score", ps.AvgScore})
	return o, ps.AvgScore, nil
}

// refusal words why a submission could not be opened, for the agent: the
// safefs refusals as they are, other errors without any path.
func refusal(err error) string {
	switch {
	case errors.Is(err, safefs.ErrSymlink):
		return "is a symbolic link; write a regular file"
	case errors.Is(err, safefs.ErrNotRegular):
		msg := err.Error()
		var e *safefs.Error
		if errors.As(err, &e) {
			msg = e.Err.Error()
		}
		return msg + "; write a regular file"
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist"
	}
	var e *safefs.Error
	if errors.As(err, &e) {
		return "could not be read: " + e.Err.Error()
	}
	return "could not be read"
}

// tooLarge is the message for a submission over the size cap (size < 0:
// found while reading).
func tooLarge(shown string, size, limit int64) string {
	if size >= 0 {
		return fmt.Sprintf("%s is %d bytes, larger than the submission size limit of %d bytes (%s); the host did not read it.", shown, size, limit, humanBytes(limit))
	}
	return fmt.Sprintf("%s is larger than the submission size limit of %d bytes (%s); the host stopped reading.", shown, limit, humanBytes(limit))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// errTooManyRows stops readCSV at the first row past its maximum.
var errTooManyRows = errors.New("more rows than expected")

// readCSV reads a CSV table from r as a stream (a leading UTF-8 BOM is
// skipped): the header is trimmed and must not repeat a column, and with
// maxRows >= 0 reading stops with errTooManyRows at the first data row
// past maxRows. name labels errors.
func readCSV(r io.Reader, name string, maxRows int) (*table, error) {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && string(b) == "\xef\xbb\xbf" {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	var recs [][]string
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if maxRows >= 0 && len(recs) > maxRows {
			return nil, errTooManyRows
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty file (no header)", name)
	}
	t := &table{header: recs[0], rows: recs[1:]}
	for i, h := range t.header {
		t.header[i] = strings.TrimSpace(h)
	}
	seen := map[string]bool{}
	for _, h := range t.header {
		if seen[h] {
			return nil, fmt.Errorf("%s: duplicate column %q in header", name, clipText(h, maxValueShown))
		}
		seen[h] = true
	}
	return t, nil
}

// Bounds on what a message to the agent quotes from its own files: a
// value (an id, a column name) and a whole details text.
const (
	maxValueShown   = 80
	maxDetailsShown = 2000
)

// clipText shortens s to at most n bytes (on a rune boundary), saying how
// much was cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... [%d more bytes]", s[:cut], len(s)-cut)
}
