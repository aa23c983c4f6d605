package train

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"smtrain/data"
	"smtrain/envbridge/rollout"
	"smtrain/internal/atomicfile"
)

// KeepEpisodes chooses the rollout episodes expert iteration adds to the
// training data: finished episodes (not failed) whose reward is at least
// minReward, at most topK per task (the highest rewards; ties by episode
// index; topK <= 0 keeps all). The result is ordered by task, then reward
// (highest first).
func KeepEpisodes(rs []rollout.EpisodeResult, minReward float64, topK int) []rollout.EpisodeResult {
	byTask := map[string][]rollout.EpisodeResult{}
	for _, r := range rs {
		if r.Failed != "" || math.IsNaN(r.Reward) || r.Reward < minReward {
			continue
		}
		byTask[r.Task] = append(byTask[r.Task], r)
	}
	tasks := make([]string, 0, len(byTask))
	for t := range byTask {
		tasks = append(tasks, t)
	}
	sort.Strings(tasks)
	var out []rollout.EpisodeResult
	for _, t := range tasks {
		l := byTask[t]
		sort.SliceStable(l, func(i, j int) bool {
			if l[i].Reward != l[j].Reward {
				return l[i].Reward > l[j].Reward
			}
			return l[i].Index < l[j].Index
		})
		if topK > 0 && len(l) > topK {
			l = l[:topK]
		}
		out = append(out, l...)
	}
	return out
}

// CopyEpisodes copies the kept episodes' run folders (agent_history,
// env_history) into dst/<prefix>-<folder name>, where the data loaders find
// them; an existing destination folder is replaced. Only regular files and
// folders are copied (an agent-made symlink is not followed). With
// cutAfterBest an episode that earned a reward keeps only its turns up to
// the one that reached its best reward (EpisodeResult.BestStep) and the
// observation after it (CutAfterBest): what follows is not what earned
// the reward, and a policy that scored and went on acting would be trained
// to repeat that too.
func CopyEpisodes(kept []rollout.EpisodeResult, dst, prefix string, cutAfterBest bool) ([]string, error) {
	var dirs []string
	for _, r := range kept {
		to := filepath.Join(dst, prefix+"-"+filepath.Base(r.Dir))
		tmp := to + ".tmp"
		if err := os.RemoveAll(tmp); err != nil {
			return nil, err
		}
		err := filepath.WalkDir(r.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(r.Dir, p)
			if err != nil {
				return err
			}
			if rel != "." && !strings.HasPrefix(rel, "agent_history") && !strings.HasPrefix(rel, "env_history") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			switch {
			case d.IsDir():
				return os.MkdirAll(filepath.Join(tmp, rel), 0o755)
			case d.Type().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(tmp, rel), b, 0o644)
			}
			return nil
		})
		if err == nil && cutAfterBest && r.BestStep > 0 {
			err = CutAfterBest(tmp, r.BestStep)
		}
		if err != nil {
			return nil, fmt.Errorf("copy episode %s: %w", r.Dir, err)
		}
		if err := os.RemoveAll(to); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, to); err != nil {
			return nil, err
		}
		dirs = append(dirs, to)
	}
	return dirs, nil
}

// IterRow is one iteration of expert iteration in its summary.
type IterRow struct {
	Iteration int    `json:"iteration"`
	Ckpt      string `json:"ckpt"`
	// Rollout on the training environments (the episodes kept come from
	// it); zero for iteration 0.
	RolloutEpisodes int     `json:"rollout_episodes"`
	RolloutReward   float64 `json:"rollout_mean_reward"`
	Kept            int     `json:"kept"`
	DataEpisodes    int     `json:"data_policy_episodes"`
	// Held-out evaluation of the iteration's checkpoint.
	HeldoutEpisodes int     `json:"heldout_episodes"`
	HeldoutReward   float64 `json:"heldout_mean_reward"`
	HeldoutScoring  float64 `json:"heldout_scoring_rate"`
	HeldoutValid    float64 `json:"heldout_valid_action_rate"`
}

// WriteIterSummary writes dir/summary.json, dir/summary.md (a table) and
// dir/reward.svg (held-out mean reward and scoring rate per iteration).
func WriteIterSummary(dir, command string, rows []IterRow) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# smtrain iterate\n\nCommand: `%s`\n\n", command)
	sb.WriteString("| iteration | checkpoint | rollout episodes | rollout mean reward | kept | policy episodes in data | held-out episodes | held-out mean reward | held-out scoring rate | held-out valid-action rate |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %d | %s | %d | %.3f | %d | %d | %d | %.3f | %.2f | %.2f |\n", r.Iteration, relTo(dir, r.Ckpt),
			r.RolloutEpisodes, r.RolloutReward, r.Kept, r.DataEpisodes, r.HeldoutEpisodes, r.HeldoutReward, r.HeldoutScoring, r.HeldoutValid)
	}
	sb.WriteString("\n![held-out reward per iteration](reward.svg)\n")
	js, err := json.MarshalIndent(map[string]any{"command": command, "iterations": rows}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "summary.json"), js); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "summary.md"), []byte(sb.String())); err != nil {
		return err
	}
	xs := make([]float64, len(rows))
	rew := make([]float64, len(rows))
	sc := make([]float64, len(rows))
	for i, r := range rows {
		xs[i], rew[i], sc[i] = float64(r.Iteration), r.HeldoutReward, r.HeldoutScoring
	}
	svg := LinesSVG("iteration", xs, []SVGSeries{{Name: "held-out mean reward", Color: "#1f77b4", Y: rew}, {Name: "held-out scoring rate", Color: "#2ca02c", Y: sc}})
	return atomicfile.WriteFile(filepath.Join(dir, "reward.svg"), []byte(svg))
}

// SVGSeries is one line of LinesSVG.
type SVGSeries struct {
	Name, Color string
	Y           []float64 // in [0, 1]
}

// LinesSVG draws series over xs on a [0, 1] y axis as a small SVG chart.
func LinesSVG(xlabel string, xs []float64, series []SVGSeries) string {
	const W, H, L, B = 640.0, 360.0, 60.0, 40.0
	xmax := 1.0
	for _, x := range xs {
		xmax = math.Max(xmax, x)
	}
	px := func(x float64) float64 { return L + (W-L-20)*x/xmax }
	py := func(y float64) float64 { return H - B - (H-B-20)*y }
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&sb, `<rect width="%g" height="%g" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&sb, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", L, py(0), W-20, py(0))
	fmt.Fprintf(&sb, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", L, py(0), L, py(1))
	for _, t := range []float64{0, 0.25, 0.5, 0.75, 1} {
		fmt.Fprintf(&sb, `<text x="%g" y="%.1f" text-anchor="end">%g</text>`+"\n", L-8, py(t)+4, t)
	}
	for _, x := range xs {
		fmt.Fprintf(&sb, `<text x="%.1f" y="%g" text-anchor="middle">%g</text>`+"\n", px(x), H-B+16, x)
	}
	fmt.Fprintf(&sb, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", (W+L)/2, H-6, xlabel)
	for i, s := range series {
		var pts []string
		for j, y := range s.Y {
			if j < len(xs) && !math.IsNaN(y) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[j]), py(y)))
			}
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.Color, strings.Join(pts, " "))
		fmt.Fprintf(&sb, `<text x="%g" y="%d" fill="%s">%s</text>`+"\n", L+10, 20+14*i, s.Color, s.Name)
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

// relTo returns p relative to dir when it lies inside dir, else p.
func relTo(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// CutAfterBest rewrites the MLE-Dojo run folder dir so that it ends with
// its k-th assistant turn and the observation after it: trajectory.json
// keeps its first 2k+1 messages, history.json the longest prefix of its
// actions that the loader aligns with those turns (data.ParseMLEDojo: an
// invalid action has no entry, so the count is not simply k).
func CutAfterBest(dir string, k int) error {
	trajPath := filepath.Join(dir, "agent_history", "trajectory.json")
	histPath := filepath.Join(dir, "env_history", "history.json")
	tb, err := os.ReadFile(trajPath)
	if err != nil {
		return err
	}
	hb, err := os.ReadFile(histPath)
	if err != nil {
		return err
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(tb, &msgs); err != nil {
		return fmt.Errorf("%s: %w", trajPath, err)
	}
	var hist map[string]json.RawMessage
	if err := json.Unmarshal(hb, &hist); err != nil {
		return fmt.Errorf("%s: %w", histPath, err)
	}
	var acts []json.RawMessage
	if err := json.Unmarshal(hist["actions"], &acts); err != nil {
		return fmt.Errorf("%s: actions: %w", histPath, err)
	}
	if n := 2*k + 1; n < len(msgs) {
		msgs = msgs[:n]
	}
	if tb, err = json.MarshalIndent(msgs, "", "  "); err != nil {
		return err
	}
	for n := len(acts); n >= 0; n-- {
		if hist["actions"], err = json.Marshal(acts[:n]); err != nil {
			return err
		}
		if hb, err = json.MarshalIndent(hist, "", "  "); err != nil {
			return err
		}
		if _, perr := data.ParseMLEDojo(tb, hb, trajPath, histPath); perr == nil {
			if err := atomicfile.WriteFile(trajPath, tb); err != nil {
				return err
			}
			return atomicfile.WriteFile(histPath, hb)
		}
	}
	return fmt.Errorf("%s: no prefix of the history aligns with the first %d turns", histPath, k)
}

// DropFailedCode removes the episode folders (copies made by
// CopyEpisodes) in which more than max code actions raised, and returns
// the folders left. Expert iteration that imitates whole episodes would
// otherwise train on the failed attempts before a success as well.
func DropFailedCode(dirs []string, max int) ([]string, error) {
	var left []string
	for _, d := range dirs {
		failed, _, err := rollout.CodeErrors(d)
		if err != nil {
			return nil, err
		}
		if failed > max {
			if err := os.RemoveAll(d); err != nil {
				return nil, err
			}
			continue
		}
		left = append(left, d)
	}
	return left, nil
}
