package metrics

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

func must(v float64, err error) float64 {
	if err != nil {
		panic(err)
	}
	return v
}

// Values below are computed by hand (see comments).
func TestMetricsByHand(t *testing.T) {
	// 2 of 4 equal: "1"=="1.0", "0"=="0"; "1"!="0"; "1"!="true".
	near(t, "accuracy", must(Accuracy([]string{"1", "0", "1", "1"}, []string{"1.0", "0", "0", "true"})), 0.5)
	// Positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 1+0+1+1 of 4.
	near(t, "auc", must(ROCAUC([]float64{0, 0, 1, 1}, []float64{0.1, 0.4, 0.35, 0.8})), 0.75)
	// Ties count half: pos 0.5 vs neg 0.5 -> 0.5, others won: 3.5/4.
	near(t, "auc ties", must(ROCAUC([]float64{0, 1, 0, 1}, []float64{0.5, 0.5, 0.2, 0.9})), 0.875)
	// All scores tied: 0.5.
	near(t, "auc all tied", must(ROCAUC([]float64{0, 1, 1, 0}, []float64{3, 3, 3, 3})), 0.5)
	// -(ln 0.8 + ln 0.7)/2.
	near(t, "logloss", must(LogLoss([]float64{1, 0}, []float64{0.8, 0.3})), -(math.Log(0.8)+math.Log(0.7))/2)
	// Clipped: p=0 for a positive costs -ln(1e-15).
	near(t, "logloss clipped", must(LogLoss([]float64{1, 0}, []float64{0, 0})), -math.Log(1e-15)/2)
	// Errors 0,1,2: RMSE sqrt(5/3), MAE 1, R² 1 - 5/2.
	y, p := []float64{1, 2, 3}, []float64{1, 3, 5}
	near(t, "rmse", must(RMSE(y, p)), math.Sqrt(5.0/3))
	near(t, "mae", must(MAE(y, p)), 1)
	near(t, "r2", must(R2(y, p)), -1.5)
	near(t, "r2 perfect", must(R2(y, y)), 1)
	// log1p(e-1)=1, log1p(0)=0: RMSE of (1,0) vs (0,0) = sqrt(1/2).
	near(t, "rmsle", must(RMSLE([]float64{math.E - 1, 0}, []float64{0, 0})), math.Sqrt(0.5))
	// tp=2, fp=1, fn=1: 4/6.
	near(t, "f1", must(F1([]float64{1, 1, 0, 0, 1}, []float64{1, 0, 1, 0, 0.7})), 4.0/6)
	// O has (0,0),(1,2),(2,2); num = 1/4; den = (2 + 0.75 + 1)/3 = 1.25.
	near(t, "qwk", must(QuadraticWeightedKappa([]int{0, 1, 2}, []int{0, 2, 2})), 0.8)
	near(t, "qwk perfect", must(QuadraticWeightedKappa([]int{1, 3, 2}, []int{1, 3, 2})), 1)
	// 1 + 1/2 + 0 over 3 rows (duplicates ignored in the ranking).
	near(t, "map@3", must(MAPK([]string{"a", "b", "c"}, [][]string{{"a", "b", "c"}, {"c", "c", "b", "a"}, {"x", "y", "z", "c"}}, 3)), 0.5)
}

func TestMetricErrors(t *testing.T) {
	if _, err := ROCAUC([]float64{1, 1}, []float64{0.2, 0.3}); err == nil {
		t.Error("AUC with one class should fail")
	}
	if _, err := RMSE([]float64{1}, []float64{1, 2}); err == nil {
		t.Error("length mismatch should fail")
	}
	if _, err := ParseFloats([]string{"1", "nan"}, "prediction"); err == nil || err.Error() != "prediction row 2: value is nan" {
		t.Errorf("NaN: %v", err)
	}
	if _, err := ParseFloats([]string{"abc"}, "prediction"); err == nil {
		t.Error("unparseable should fail")
	}
	for _, name := range []string{"accuracy", "AUC", "roc_auc", "log_loss", "rmse", "mae", "r2", "f1", "qwk", "map@3", "rmsle"} {
		if _, ok := Lookup(name); !ok {
			t.Errorf("Lookup(%q) failed", name)
		}
	}
	if s, _ := Lookup("rmse"); s.HigherIsBetter {
		t.Error("rmse must be lower-is-better")
	}
	if s, _ := Lookup("auc"); !s.HigherIsBetter {
		t.Error("auc must be higher-is-better")
	}
	s, _ := Lookup("auc")
	near(t, "auc via spec", must(s.Eval([]string{"0", "0", "1", "1"}, []string{"0.1", "0.4", "0.35", "0.8"})), 0.75)
}

func TestPositionByHand(t *testing.T) {
	board := []float64{0.9, 0.8, 0.8, 0.7}
	for _, c := range []struct {
		score float64
		hib   bool
		pos   int
		ps    float64
	}{
		{0.8, true, 2, 0.75},  // only 0.9 is strictly better; ties share the better place
		{0.95, true, 1, 1},    // beats everyone
		{0.1, true, 5, 0},     // behind everyone
		{0.8, false, 2, 0.75}, // lower is better: only 0.7 is strictly better
		{0.1, false, 1, 1},
		{0.95, false, 5, 0},
		{math.NaN(), true, 5, 0},
	} {
		got, err := Position(c.score, board, c.hib)
		if err != nil {
			t.Fatal(err)
		}
		if got.Position != c.pos || got.Total != 4 || math.Abs(got.PositionScore-c.ps) > 1e-12 {
			t.Errorf("Position(%v, hib=%v) = %+v, want pos %d score %v", c.score, c.hib, got, c.pos, c.ps)
		}
	}
	ps, err := Score(0.8, board, []float64{0.85, 0.6}, true)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "avg", ps.AvgScore, (0.75+0.5)/2)
	if _, err := Position(1, nil, true); err == nil {
		t.Error("empty board should fail")
	}
}

// mledojoPosition is MLE-Dojo's own algorithm (interface.py
// _calculate_leaderboard_position), used as a reference.
func mledojoPosition(score float64, board []float64, hib bool) int {
	s := append([]float64(nil), board...)
	if hib {
		sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	} else {
		sort.Float64s(s)
	}
	for i, v := range s {
		if (hib && score >= v) || (!hib && score <= v) {
			return i + 1
		}
	}
	return len(s) + 1
}

// TestPositionRealLeaderboards places scores on the real MLE-Dojo boards
// (titanic and s3e12 higher-is-better, s3e9 RMSE lower-is-better) and
// checks against MLE-Dojo's algorithm.
func TestPositionRealLeaderboards(t *testing.T) {
	root := "../../../shared/mledojo/competitions"
	if _, err := os.Stat(root); err != nil {
		t.Skipf("MLE-Dojo samples not present: %v", err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name string
		hib  bool
	}{{"titanic", true}, {"playground-series-s3e12", true}, {"playground-series-s3e9", false}} {
		for _, b := range []string{"public", "private"} {
			board, err := ReadLeaderboard(filepath.Join(root, c.name, "info", b+"_leaderboard.csv"))
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := board[0], board[0]
			for _, v := range board {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			for i := 0; i < 300; i++ {
				var score float64
				if i%3 == 0 {
					score = board[r.IntN(len(board))] // exact ties
				} else {
					score = lo - 0.1*(hi-lo) + 1.2*(hi-lo)*r.Float64()
				}
				got, err := Position(score, board, c.hib)
				if err != nil {
					t.Fatal(err)
				}
				if want := mledojoPosition(score, board, c.hib); got.Position != want {
					t.Fatalf("%s/%s score %v: position %d, MLE-Dojo gives %d", c.name, b, score, got.Position, want)
				}
				if got.PositionScore < 0 || got.PositionScore > 1 {
					t.Fatalf("position score %v out of [0,1]", got.PositionScore)
				}
			}
			// The direction matters: the best score of the board ranks first.
			best := hi
			if !c.hib {
				best = lo
			}
			if p, _ := Position(best, board, c.hib); p.Position != 1 || p.PositionScore != 1 {
				t.Errorf("%s/%s: best score placed %+v", c.name, b, p)
			}
		}
	}
	// Hand check on s3e9 (RMSE, lower is better): the public board starts
	// 11.68737, 11.69649, ...: 11.69649 has exactly one better entry.
	board, _ := ReadLeaderboard(filepath.Join(root, "playground-series-s3e9/info/public_leaderboard.csv"))
	if p, _ := Position(11.69649, board, false); p.Position != 2 || p.Total != 765 {
		t.Errorf("s3e9 11.69649: %+v", p)
	}
}
