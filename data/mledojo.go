package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// mdHistory is MLE-Dojo's env_history/history.json.
type mdHistory struct {
	Competition       string     `json:"competition"`
	Actions           []mdAction `json:"actions"`
	TotalReward       *Float     `json:"total_reward"`
	BestRawScore      *Float     `json:"best_raw_score"`
	BestPositionScore *Float     `json:"best_position_score"`
	StepCount         *int       `json:"step_count"`
	CreatedAt         string     `json:"created_at"`
}

type mdAction struct {
	Step   *int            `json:"step"`
	Action json.RawMessage `json:"action"`
	Result json.RawMessage `json:"result"`
}

// mdResult is the part of an action result that carries scores.
type mdResult struct {
	Status     string `json:"status"`
	Submission *struct {
		Status        string `json:"status"`
		RawScore      *Float `json:"raw_score"`
		PositionScore *struct {
			AvgScore *Float `json:"avg_score"`
		} `json:"position_score"`
	} `json:"submission"`
}

// historyFor finds the env history belonging to a trajectory file:
// <run>/env_history/history.json for <run>/agent_history/trajectory.json,
// or env_history.json / history.json beside a flat agent_trajectory.json.
func historyFor(traj string) (string, error) {
	dir := filepath.Dir(traj)
	var cands []string
	if filepath.Base(dir) == "agent_history" {
		cands = append(cands, filepath.Join(filepath.Dir(dir), "env_history", "history.json"))
	}
	cands = append(cands, filepath.Join(dir, "env_history.json"), filepath.Join(dir, "history.json"))
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s: no environment history found (looked for %s)", traj, strings.Join(cands, ", "))
}

// LoadMLEDojoRun reads an MLE-Dojo agent trajectory (a JSON list of
// {role, content}; the first user message is the task prompt) and aligns it
// with the environment history (history == "" finds it beside the
// trajectory): the k-th assistant message (k = 1, 2, ...) is env action
// k-1, i.e. history step k. StepRewards are the position scores
// (position_score.avg_score) of each step's successful submission, 0 for
// steps without one; StepScores the raw scores (NaN without one); Reward is
// best_position_score (the maximum step reward when absent). The number of
// assistant messages must equal the number of history actions, or exceed it
// by one (MLE-Dojo writes the trajectory before env.step, so a step that
// raised leaves the last message unexecuted: reward 0, score NaN, Meta
// "last_action_unexecuted"); steps must be numbered 1, 2, ... in order.
func LoadMLEDojoRun(trajPath, historyPath string) (*Episode, error) {
	raw, err := os.ReadFile(trajPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", trajPath, err)
	}
	if historyPath == "" {
		historyPath, err = historyFor(trajPath)
		if err != nil {
			return nil, err
		}
	}
	hraw, err := os.ReadFile(historyPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", historyPath, err)
	}
	ep, err := ParseMLEDojo(raw, hraw, trajPath, historyPath)
	if err != nil {
		return nil, err
	}
	return ep, nil
}

// ParseMLEDojo parses the contents of a trajectory and its history (see
// LoadMLEDojoRun); the names are used in messages and as Source.
func ParseMLEDojo(traj, hist []byte, trajName, histName string) (*Episode, error) {
	var msgs []Message
	if err := decodeStrict(traj, &msgs, false); err != nil {
		return nil, fmt.Errorf("%s: %w", trajName, err)
	}
	ep := &Episode{Messages: msgs, Source: trajName, Reward: math.NaN(), Meta: map[string]any{"format": "mledojo", "history": histName}}
	for i, m := range msgs {
		if m.Role == "" {
			return nil, fmt.Errorf("%s: at [%d]: message without a role", trajName, i)
		}
	}
	if err := ep.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", trajName, err)
	}
	var h mdHistory
	if err := decodeStrict(hist, &h, false); err != nil {
		return nil, fmt.Errorf("%s: %w", histName, err)
	}
	nA := ep.NumAssistant()
	switch {
	case len(h.Actions) == nA:
	case len(h.Actions) == nA-1:
		// MLE-Dojo saves the trajectory before env.step; a step that raised
		// leaves the last assistant message without a history entry.
		ep.Meta["last_action_unexecuted"] = true
	default:
		return nil, fmt.Errorf("%s: misaligned with %s: %d assistant messages but %d environment actions", trajName, histName, nA, len(h.Actions))
	}
	ep.StepRewards = make([]float64, nA)
	ep.StepScores = make([]float64, nA)
	for k := range ep.StepScores {
		ep.StepScores[k] = math.NaN()
	}
	best := math.NaN()
	for k, a := range h.Actions {
		if a.Step != nil && *a.Step != k+1 {
			return nil, fmt.Errorf("%s: at actions[%d].step: want step %d, got %d", histName, k, k+1, *a.Step)
		}
		if len(a.Result) == 0 || string(a.Result) == "null" {
			continue
		}
		var r mdResult
		if err := json.Unmarshal(sanitizeJSON(a.Result).text, &r); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, fmt.Errorf("%s: at actions[%d].result.%s: cannot use JSON %s as %v", histName, k, te.Field, te.Value, te.Type)
			}
			// a result that is not an object (e.g. a string) carries no score
			continue
		}
		if s := r.Submission; s != nil && strings.EqualFold(s.Status, "SUCCESS") {
			if s.RawScore != nil {
				ep.StepScores[k] = float64(*s.RawScore)
			}
			if s.PositionScore != nil && s.PositionScore.AvgScore != nil {
				v := float64(*s.PositionScore.AvgScore)
				ep.StepRewards[k] = v
				if math.IsNaN(best) || v > best {
					best = v
				}
			}
		}
	}
	switch {
	case h.BestPositionScore != nil && !math.IsNaN(float64(*h.BestPositionScore)):
		ep.Reward = float64(*h.BestPositionScore)
	case !math.IsNaN(best):
		ep.Reward = best
	default:
		ep.Reward = 0 // MLE-Dojo: no valid submission scores 0
	}
	if h.Competition != "" {
		ep.Meta["competition"] = h.Competition
	}
	if h.TotalReward != nil {
		ep.Meta["total_reward"] = float64(*h.TotalReward)
	}
	if h.BestRawScore != nil {
		ep.Meta["best_raw_score"] = float64(*h.BestRawScore)
	}
	return ep, nil
}

// ---- AIDE journal ----

// aideJournal is MLE-Dojo's AIDE journal.json (dataclasses_json of Journal,
// "__version" "2", parents in "node2parent").
type aideJournal struct {
	Nodes      *[]aideNode       `json:"nodes"`
	Node2Paren map[string]string `json:"node2parent"`
}

type aideNode struct {
	Code              string `json:"code"`
	Plan              string `json:"plan"`
	Step              *int   `json:"step"`
	ID                string `json:"id"`
	InstructionPrompt string `json:"instruction_prompt"`
	NodeType          string `json:"node_type"`
	Assistant         string `json:"assistant"`
	Status            string `json:"status"`
	RawScore          *Float `json:"raw_score"`
	PositionScore     *Float `json:"position_score"`
	IsBuggy           *bool  `json:"is_buggy"`
	Metric            *struct {
		Value    *Float `json:"value"`
		Maximize *bool  `json:"maximize"`
	} `json:"metric"`
}

// LoadAIDEJournal reads an AIDE journal.json. Each node is one single-turn
// episode, exactly as AIDE queried the model: system = the node's
// instruction_prompt, assistant = the model's full reply ("assistant"; when
// absent, the plan followed by the code in a ```python block). Reward is the
// node's position score (NaN when absent); StepScores holds its raw score.
// Meta records node id, step, type, parent, status and is_buggy.
func LoadAIDEJournal(path string) ([]Episode, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ParseAIDEJournal(raw, path)
}

// ParseAIDEJournal parses journal.json contents (see LoadAIDEJournal).
func ParseAIDEJournal(raw []byte, name string) ([]Episode, error) {
	var j aideJournal
	if err := decodeStrict(raw, &j, false); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if j.Nodes == nil {
		return nil, fmt.Errorf("%s: no \"nodes\" list (not an AIDE journal)", name)
	}
	var eps []Episode
	for i, n := range *j.Nodes {
		reply := n.Assistant
		if reply == "" {
			if n.Code == "" {
				return nil, fmt.Errorf("%s: at nodes[%d]: neither \"assistant\" nor \"code\"", name, i)
			}
			reply = strings.TrimSpace(n.Plan) + "\n\n```python\n" + n.Code + "\n```"
		}
		if n.InstructionPrompt == "" {
			return nil, fmt.Errorf("%s: at nodes[%d]: no \"instruction_prompt\"", name, i)
		}
		ep := Episode{
			Messages: []Message{{Role: RoleSystem, Content: n.InstructionPrompt}, {Role: RoleAssistant, Content: reply}},
			Reward:   math.NaN(),
			Source:   fmt.Sprintf("%s#nodes[%d]", name, i),
			Meta:     map[string]any{"format": "aide", "node_id": n.ID, "node_type": n.NodeType, "status": n.Status},
		}
		if n.PositionScore != nil {
			ep.Reward = float64(*n.PositionScore)
		}
		raw := math.NaN()
		if n.RawScore != nil {
			raw = float64(*n.RawScore)
		}
		ep.StepScores = []float64{raw}
		if !math.IsNaN(ep.Reward) {
			ep.StepRewards = []float64{ep.Reward}
		}
		if n.Step != nil {
			ep.Meta["step"] = *n.Step
		}
		if n.IsBuggy != nil {
			ep.Meta["is_buggy"] = *n.IsBuggy
		}
		if p, ok := j.Node2Paren[n.ID]; ok {
			ep.Meta["parent"] = p
		}
		if n.Metric != nil && n.Metric.Value != nil {
			ep.Meta["metric"] = float64(*n.Metric.Value)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}
