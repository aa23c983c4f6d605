// Package metrics scores submissions in Go: the usual Kaggle metrics
// (accuracy, ROC-AUC, log loss, RMSE, RMSLE, MAE, R², binary F1, quadratic
// weighted kappa, MAP@3) and MLE-Dojo's leaderboard position score.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Spec describes a metric by name: its direction and how it scores a
// column of true values against a column of predictions (as the strings
// read from CSV files).
type Spec struct {
	Name           string
	HigherIsBetter bool
	// Eval scores predictions against truth (same length, aligned rows).
	Eval func(truth, pred []string) (float64, error)
}

var registry = map[string]Spec{}

func register(s Spec) { registry[s.Name] = s }

func init() {
	register(Spec{"accuracy", true, func(t, p []string) (float64, error) { return Accuracy(t, p) }})
	register(Spec{"auc", true, numeric2(ROCAUC)})
	register(Spec{"logloss", false, numeric2(LogLoss)})
	register(Spec{"rmse", false, numeric2(RMSE)})
	register(Spec{"rmsle", false, numeric2(RMSLE)})
	register(Spec{"mae", false, numeric2(MAE)})
	register(Spec{"r2", true, numeric2(R2)})
	register(Spec{"f1", true, numeric2(F1)})
	register(Spec{"qwk", true, func(t, p []string) (float64, error) {
		a, err := ParseInts(t, "truth")
		if err != nil {
			return 0, err
		}
		b, err := ParseInts(p, "prediction")
		if err != nil {
			return 0, err
		}
		return QuadraticWeightedKappa(a, b)
	}})
	register(Spec{"map@3", true, func(t, p []string) (float64, error) {
		pred := make([][]string, len(p))
		for i, s := range p {
			pred[i] = strings.Fields(s)
		}
		return MAPK(t, pred, 3)
	}})
}

// aliases maps common spellings to registry names.
var aliases = map[string]string{
	"roc_auc": "auc", "roc-auc": "auc", "rocauc": "auc", "auc-roc": "auc",
	"log_loss": "logloss", "binary_logloss": "logloss", "cross_entropy": "logloss",
	"r^2": "r2", "r_squared": "r2", "f1_score": "f1", "kappa": "qwk",
	"quadratic_weighted_kappa": "qwk", "map3": "map@3", "map_at_3": "map@3", "acc": "accuracy",
}

// Lookup returns the metric named name (case-insensitive; common aliases
// such as "roc_auc" and "log_loss" are accepted).
func Lookup(name string) (Spec, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := aliases[n]; ok {
		n = a
	}
	s, ok := registry[n]
	return s, ok
}

// Names lists the registered metric names, sorted.
func Names() []string {
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func numeric2(f func(a, b []float64) (float64, error)) func(t, p []string) (float64, error) {
	return func(t, p []string) (float64, error) {
		a, err := ParseFloats(t, "truth")
		if err != nil {
			return 0, err
		}
		b, err := ParseFloats(p, "prediction")
		if err != nil {
			return 0, err
		}
		return f(a, b)
	}
}

// ParseFloats parses a column of numbers; "True"/"False" count as 1/0.
// NaN, infinities and unparseable cells are errors naming the row (1-based
// data row).
func ParseFloats(col []string, what string) ([]float64, error) {
	out := make([]float64, len(col))
	for i, s := range col {
		v, err := parseFloat(s)
		if err != nil {
			return nil, fmt.Errorf("%s row %d: %w", what, i+1, err)
		}
		out[i] = v
	}
	return out, nil
}

func parseFloat(s string) (float64, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "true":
		return 1, nil
	case "false":
		return 0, nil
	case "":
		return 0, errors.New("empty value")
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("value is %s", t)
	}
	return v, nil
}

// ParseInts parses a column of integer labels (integral floats such as
// "2.0" are accepted).
func ParseInts(col []string, what string) ([]int, error) {
	f, err := ParseFloats(col, what)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(f))
	for i, v := range f {
		if v != math.Trunc(v) || math.Abs(v) > 1<<31 {
			return nil, fmt.Errorf("%s row %d: %v is not an integer label", what, i+1, col[i])
		}
		out[i] = int(v)
	}
	return out, nil
}

func checkLen(n, m int) error {
	if n != m {
		return fmt.Errorf("length mismatch: %d true values, %d predictions", n, m)
	}
	if n == 0 {
		return errors.New("no rows to score")
	}
	return nil
}

// normLabel canonicalises a label for comparison: numbers compare by value
// ("1" == "1.0"), booleans case-insensitively, other strings exactly
// (after trimming spaces).
func normLabel(s string) string {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "true":
		return "true"
	case "false":
		return "false"
	}
	if v, err := strconv.ParseFloat(t, 64); err == nil && !math.IsNaN(v) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return t
}

// Accuracy is the fraction of predictions equal to the truth (labels
// compared as described by normLabel).
func Accuracy(truth, pred []string) (float64, error) {
	if err := checkLen(len(truth), len(pred)); err != nil {
		return 0, err
	}
	ok := 0
	for i := range truth {
		if normLabel(truth[i]) == normLabel(pred[i]) {
			ok++
		}
	}
	return float64(ok) / float64(len(truth)), nil
}

// ROCAUC is the area under the ROC curve of scores against binary labels
// y ∈ {0,1}: the probability that a random positive outscores a random
// negative, ties counting one half (Mann-Whitney U with average ranks).
func ROCAUC(y, score []float64) (float64, error) {
	if err := checkLen(len(y), len(score)); err != nil {
		return 0, err
	}
	idx := make([]int, len(y))
	for i := range idx {
		idx[i] = i
		if y[i] != 0 && y[i] != 1 {
			return 0, fmt.Errorf("ROC-AUC needs 0/1 labels, row %d has %v", i+1, y[i])
		}
	}
	sort.Slice(idx, func(a, b int) bool { return score[idx[a]] < score[idx[b]] })
	var nPos, nNeg, rankSumPos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && score[idx[j]] == score[idx[i]] {
			j++
		}
		avgRank := float64(i+j+1) / 2 // ranks i+1..j averaged
		for k := i; k < j; k++ {
			if y[idx[k]] == 1 {
				rankSumPos += avgRank
				nPos++
			} else {
				nNeg++
			}
		}
		i = j
	}
	if nPos == 0 || nNeg == 0 {
		return 0, errors.New("ROC-AUC is undefined when only one class is present")
	}
	return (rankSumPos - nPos*(nPos+1)/2) / (nPos * nNeg), nil
}

// LogLossEps clips probabilities to [eps, 1-eps] in LogLoss.
const LogLossEps = 1e-15

// LogLoss is the mean binary cross-entropy of probabilities p for labels
// y ∈ {0,1}, with p clipped to [1e-15, 1-1e-15].
func LogLoss(y, p []float64) (float64, error) {
	if err := checkLen(len(y), len(p)); err != nil {
		return 0, err
	}
	var s float64
	for i := range y {
		q := math.Min(math.Max(p[i], LogLossEps), 1-LogLossEps)
		switch y[i] {
		case 1:
			s -= math.Log(q)
		case 0:
			s -= math.Log1p(-q)
		default:
			return 0, fmt.Errorf("log loss needs 0/1 labels, row %d has %v", i+1, y[i])
		}
	}
	return s / float64(len(y)), nil
}

// RMSE is the root mean squared error.
func RMSE(y, p []float64) (float64, error) {
	if err := checkLen(len(y), len(p)); err != nil {
		return 0, err
	}
	var s float64
	for i := range y {
		d := y[i] - p[i]
		s += d * d
	}
	return math.Sqrt(s / float64(len(y))), nil
}

// RMSLE is the RMSE of log1p values; negative values are errors.
func RMSLE(y, p []float64) (float64, error) {
	if err := checkLen(len(y), len(p)); err != nil {
		return 0, err
	}
	ly, lp := make([]float64, len(y)), make([]float64, len(p))
	for i := range y {
		if y[i] < 0 || p[i] < 0 {
			return 0, fmt.Errorf("RMSLE needs non-negative values, row %d has %v / %v", i+1, y[i], p[i])
		}
		ly[i], lp[i] = math.Log1p(y[i]), math.Log1p(p[i])
	}
	return RMSE(ly, lp)
}

// MAE is the mean absolute error.
func MAE(y, p []float64) (float64, error) {
	if err := checkLen(len(y), len(p)); err != nil {
		return 0, err
	}
	var s float64
	for i := range y {
		s += math.Abs(y[i] - p[i])
	}
	return s / float64(len(y)), nil
}

// R2 is the coefficient of determination 1 - SS_res/SS_tot (sklearn's
// r2_score; 1 for a perfect fit of constant truth, 0 otherwise when
// SS_tot = 0).
func R2(y, p []float64) (float64, error) {
	if err := checkLen(len(y), len(p)); err != nil {
		return 0, err
	}
	var mean float64
	for _, v := range y {
		mean += v
	}
	mean /= float64(len(y))
	var res, tot float64
	for i := range y {
		res += (y[i] - p[i]) * (y[i] - p[i])
		tot += (y[i] - mean) * (y[i] - mean)
	}
	if tot == 0 {
		if res == 0 {
			return 1, nil
		}
		return 0, nil
	}
	return 1 - res/tot, nil
}

// F1 is the binary F1 score of the positive class 1; predictions are
// thresholded at 0.5 (so both hard 0/1 labels and probabilities work).
// F1 is 0 when there are no true and no predicted positives.
func F1(y, p []float64) (float64, error) {
	if err := checkLen(len(y), len(p)); err != nil {
		return 0, err
	}
	var tp, fp, fn float64
	for i := range y {
		if y[i] != 0 && y[i] != 1 {
			return 0, fmt.Errorf("F1 needs 0/1 labels, row %d has %v", i+1, y[i])
		}
		pos := p[i] >= 0.5
		switch {
		case pos && y[i] == 1:
			tp++
		case pos:
			fp++
		case y[i] == 1:
			fn++
		}
	}
	if tp == 0 {
		return 0, nil
	}
	return 2 * tp / (2*tp + fp + fn), nil
}

// QuadraticWeightedKappa is Cohen's kappa with quadratic weights
// w_ij = (i-j)²/(N-1)² over the label range [min, max] of both inputs.
func QuadraticWeightedKappa(a, b []int) (float64, error) {
	if err := checkLen(len(a), len(b)); err != nil {
		return 0, err
	}
	lo, hi := a[0], a[0]
	for i := range a {
		lo, hi = min(lo, a[i], b[i]), max(hi, a[i], b[i])
	}
	n := hi - lo + 1
	if n > 1000 {
		return 0, fmt.Errorf("QWK label range %d..%d too wide", lo, hi)
	}
	if n == 1 {
		return 1, nil
	}
	O := make([]float64, n*n)
	ha, hb := make([]float64, n), make([]float64, n)
	for i := range a {
		O[(a[i]-lo)*n+b[i]-lo]++
		ha[a[i]-lo]++
		hb[b[i]-lo]++
	}
	total := float64(len(a))
	var num, den float64
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			w := float64((i-j)*(i-j)) / float64((n-1)*(n-1))
			num += w * O[i*n+j]
			den += w * ha[i] * hb[j] / total
		}
	}
	if den == 0 {
		return 1, nil
	}
	return 1 - num/den, nil
}

// MAPK is the mean average precision at k with one relevant item per row
// (Kaggle's MAP@k for single-label targets): a row scores 1/r when the
// true label is the r-th distinct prediction (r ≤ k), else 0.
func MAPK(truth []string, pred [][]string, k int) (float64, error) {
	if err := checkLen(len(truth), len(pred)); err != nil {
		return 0, err
	}
	var s float64
	for i, t := range truth {
		t = strings.TrimSpace(t)
		seen := map[string]bool{}
		r := 0
		for _, p := range pred[i] {
			if seen[p] {
				continue
			}
			seen[p] = true
			r++
			if r > k {
				break
			}
			if p == t {
				s += 1 / float64(r)
				break
			}
		}
	}
	return s / float64(len(truth)), nil
}
