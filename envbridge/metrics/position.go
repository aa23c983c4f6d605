package metrics

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// BoardPosition is a submission's place on one leaderboard.
type BoardPosition struct {
	Position      int     `json:"position"`
	Total         int     `json:"total"`
	PositionScore float64 `json:"position_score"`
}

// Position places score on a leaderboard (MLE-Dojo's "HumanRank"):
// position = 1 + number of board scores strictly better than score, and
// position score = (total - position + 1) / total, in [0, 1]. A NaN score
// is placed after every entry (score 0).
func Position(score float64, board []float64, higherIsBetter bool) (BoardPosition, error) {
	if len(board) == 0 {
		return BoardPosition{}, errors.New("empty leaderboard")
	}
	better := 0
	if math.IsNaN(score) {
		better = len(board)
	} else {
		for _, s := range board {
			if (higherIsBetter && s > score) || (!higherIsBetter && s < score) {
				better++
			}
		}
	}
	pos := better + 1
	total := len(board)
	return BoardPosition{Position: pos, Total: total, PositionScore: float64(total-pos+1) / float64(total)}, nil
}

// PositionScore is MLE-Dojo's submission position result: the place on the
// private and public boards and their average position score.
type PositionScore struct {
	Private  *BoardPosition `json:"private,omitempty"`
	Public   *BoardPosition `json:"public,omitempty"`
	AvgScore float64        `json:"avg_score"`
}

// Score places score on the private and public boards (either may be nil
// when absent, not both) and averages the position scores.
func Score(score float64, private, public []float64, higherIsBetter bool) (PositionScore, error) {
	var ps PositionScore
	n := 0
	for _, b := range []struct {
		board []float64
		dst   **BoardPosition
		name  string
	}{{private, &ps.Private, "private"}, {public, &ps.Public, "public"}} {
		if b.board == nil {
			continue
		}
		p, err := Position(score, b.board, higherIsBetter)
		if err != nil {
			return PositionScore{}, fmt.Errorf("%s leaderboard: %w", b.name, err)
		}
		*b.dst = &p
		ps.AvgScore += p.PositionScore
		n++
	}
	if n == 0 {
		return PositionScore{}, errors.New("no leaderboard to place the score on")
	}
	ps.AvgScore /= float64(n)
	return ps, nil
}

// ReadLeaderboard reads a leaderboard CSV with a header and the score in
// the second column (MLE-Dojo's `rank,score`). Rows whose score is empty
// or NaN are skipped; other unparseable scores are errors naming the line.
func ReadLeaderboard(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", path, err)
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("%s:1: leaderboard needs at least 2 columns (rank,score), got %d", path, len(header))
	}
	var out []float64
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(rec) < 2 {
			return nil, fmt.Errorf("%s:%d: expected rank,score, got %d fields", path, line, len(rec))
		}
		s := strings.TrimSpace(rec[1])
		if s == "" || strings.EqualFold(s, "nan") {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: score %q is not a number", path, line, rec[1])
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: leaderboard has no scores", path)
	}
	return out, nil
}
