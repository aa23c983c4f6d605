package local

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"smtrain/envbridge/metrics"
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

// scoreSubmission validates the submission CSV at path against the task's
// answers and returns the raw score. Validation problems come back as
// *invalidSubmission with MLE-Dojo-style messages.
func (t *Task) scoreSubmission(path, shownPath string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sub, err := parseTable(b, "submission.csv")
	if err != nil {
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
		ex := unknown
		if len(ex) > 3 {
			ex = ex[:3]
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
				return 0, &invalidSubmission{"Submission validation failed", fmt.Sprintf("Column %s, row %d (%s %s): %s.", c, ord[i]+2, t.IDColumn, sub.rows[ord[i]][sub.col(t.IDColumn)], bad)}
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
