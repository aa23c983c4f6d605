package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"smtrain/envbridge"
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
	Step     *int            `json:"step"`
	Action   json.RawMessage `json:"action"`
	Result   json.RawMessage `json:"result"`
	Feedback json.RawMessage `json:"feedback"`
}

// name is the entry's action name ("" when it is not a string).
func (a mdAction) name() string {
	var s string
	_ = json.Unmarshal(a.Action, &s)
	return s
}

// feedbackText is the entry's feedback.base.feedback, the text MLE-Dojo's
// agents (and rollout) put verbatim into the next user message; "" when the
// entry has none (e.g. the real env's FAILED feedback for get_history,
// which carries only an error).
func (a mdAction) feedbackText() string { return a.baseField("feedback") }

// errorText is the entry's feedback.base.error ("" when none): the text
// of a FAILED feedback (the real env's get_history and reset), which
// rollout pastes into the next user message and MLE-Dojo's agents do not.
func (a mdAction) errorText() string { return a.baseField("error") }

// baseField is the trimmed string feedback.base[key] ("" when absent).
func (a mdAction) baseField(key string) string {
	var fb struct {
		Base map[string]any `json:"base"`
	}
	if len(a.Feedback) == 0 || json.Unmarshal(a.Feedback, &fb) != nil {
		return ""
	}
	v, _ := fb.Base[key].(string)
	return strings.TrimSpace(v)
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
// trajectory); see ParseMLEDojo for the alignment. StepRewards are the
// position scores (position_score.avg_score) of each matched step's
// successful submission, 0 for other turns; StepScores the raw scores (NaN
// without one); Reward is best_position_score (the maximum step reward
// when absent).
//
// A run folder holding a rollout's partial marker (PartialMarker: the
// episode was interrupted) is not an episode: Load skips it with a note.
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

// FixPromptPrefix starts the user message MLE-Dojo's MLEAgent inserts when
// a reply does not parse (mledojo/agent/mleagent/prompt.py,
// fix_parse_error). With Gemini models the broken reply, this prompt and
// the model's fixed reply all stay in the trajectory.
const FixPromptPrefix = "The response can't be parsed as valid JSON."

// ParseMLEDojo parses the contents of a trajectory and its history (see
// LoadMLEDojoRun); the names are used in messages and as Source.
//
// Alignment. Each assistant message is matched, in order, with the next
// unmatched history entry when nothing contradicts it: when the entry has
// a feedback text and the message is followed by a user message, that
// message must contain the text verbatim (MLE-Dojo's agents and rollout
// both paste it); otherwise the message's action (envbridge.ParseAction)
// must not name a different action (a FAILED feedback's error text in the
// next message backs the match too). An unmatched message is a turn the
// environment did not record (an unparseable or invalid action, a step
// that raised, the unexecuted last turn, or a hot start's borrowed turns):
// reward 0, score NaN, counted in Meta "unrecorded_turns". Every history
// entry must be matched. MLE-Dojo's "fix your JSON" exchanges (a broken
// reply followed by a user message starting with FixPromptPrefix) are
// dropped, so the fixed reply that the environment executed is the turn
// (Meta "fix_prompts_dropped"); a reply that does not parse but whose next
// user message holds an entry's feedback (non-Gemini models keep the
// broken reply and hide the fix) is matched with reward 0 (Meta
// "unparsed_executed"), since the text trained on is not the action that
// earned the reward.
//
// Raw score mode (submissions scored without position_score) is detected:
// the rewards are then unknown (Reward NaN, StepRewards nil, Meta
// "score_mode" "raw"), because raw metric values are not comparable across
// tasks and may be lower-is-better.
func ParseMLEDojo(traj, hist []byte, trajName, histName string) (*Episode, error) {
	var msgs []Message
	if err := decodeStrict(traj, &msgs, false); err != nil {
		return nil, fmt.Errorf("%s: %w", trajName, err)
	}
	for i, m := range msgs {
		if m.Role == "" {
			return nil, fmt.Errorf("%s: at [%d]: message without a role", trajName, i)
		}
	}
	msgs, dropped := dropFixPrompts(msgs)
	ep := &Episode{Messages: msgs, Source: trajName, Reward: math.NaN(), Meta: map[string]any{"format": "mledojo", "history": histName}}
	if dropped > 0 {
		ep.Meta["fix_prompts_dropped"] = dropped
	}
	if err := ep.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", trajName, err)
	}
	var h mdHistory
	if err := decodeStrict(hist, &h, false); err != nil {
		return nil, fmt.Errorf("%s: %w", histName, err)
	}
	nA := ep.NumAssistant()
	ep.StepRewards = make([]float64, nA)
	ep.StepScores = make([]float64, nA)
	for k := range ep.StepScores {
		ep.StepScores[k] = math.NaN()
	}
	entryOf, hidden, err := alignTurns(msgs, h.Actions)
	if err != nil {
		return nil, fmt.Errorf("%s: misaligned with %s: %w", trajName, histName, err)
	}
	unrecorded, unparsed := 0, 0
	for k, e := range entryOf {
		if e < 0 {
			unrecorded++
		}
		if hidden[k] {
			unparsed++
		}
	}
	if unrecorded > 0 {
		ep.Meta["unrecorded_turns"] = unrecorded
		if nA > 0 && entryOf[nA-1] < 0 {
			// MLE-Dojo saves the trajectory before env.step; a step that
			// raised leaves the last assistant message without an entry.
			ep.Meta["last_action_unexecuted"] = true
		}
	}
	if unparsed > 0 {
		ep.Meta["unparsed_executed"] = unparsed
	}
	best := math.NaN()
	raw := false
	for k, idx := range entryOf {
		if idx < 0 {
			continue
		}
		a := h.Actions[idx]
		if len(a.Result) == 0 || string(a.Result) == "null" {
			continue
		}
		var r mdResult
		if err := json.Unmarshal(sanitizeJSON(a.Result).text, &r); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, fmt.Errorf("%s: at actions[%d].result.%s: cannot use JSON %s as %v", histName, idx, te.Field, te.Value, te.Type)
			}
			// a result that is not an object (e.g. a string) carries no score
			continue
		}
		s := r.Submission
		if s == nil || !strings.EqualFold(s.Status, "SUCCESS") {
			continue
		}
		if s.RawScore != nil {
			ep.StepScores[k] = float64(*s.RawScore)
		}
		if s.PositionScore == nil || s.PositionScore.AvgScore == nil {
			raw = true // scored in raw mode: no position score
			continue
		}
		if hidden[k] {
			continue // the reward belongs to the fixed reply, not this text
		}
		v := float64(*s.PositionScore.AvgScore)
		ep.StepRewards[k] = v
		if math.IsNaN(best) || v > best {
			best = v
		}
	}
	switch {
	case raw:
		ep.Meta["score_mode"] = "raw"
		ep.StepRewards = nil
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

// maxAlignCells bounds the alignment's work (assistant turns × entries).
const maxAlignCells = 1 << 22

// alignTurns matches assistant turns with history entries (see
// ParseMLEDojo): entryOf[k] is turn k's entry or -1, hidden[k] marks a
// turn matched by its feedback although its text does not parse. Among
// the order-preserving matchings that use every entry and that no
// evidence contradicts, it picks the one with the most feedback-backed
// matches, then the latest turns for those (a hot start's borrowed turns
// come first) and the earliest for the others (MLE-Dojo writes the
// trajectory before stepping, so an unrecorded turn without evidence is
// the last one).
func alignTurns(msgs []Message, acts []mdAction) (entryOf []int, hidden []bool, err error) {
	type turn struct {
		name   string // parsed action name, "" when the text does not parse
		next   string // the user message after it ("" when none)
		parsed bool
	}
	var turns []turn
	for i, m := range msgs {
		if m.Role != RoleAssistant {
			continue
		}
		t := turn{}
		if i+1 < len(msgs) && msgs[i+1].Role == RoleUser {
			t.next = msgs[i+1].Content
		}
		if a, perr := envbridge.ParseAction(m.Content); perr == nil {
			t.name, t.parsed = a.Name, true
		}
		turns = append(turns, t)
	}
	nA, nH := len(turns), len(acts)
	entryOf, hidden = make([]int, nA), make([]bool, nA)
	for k := range entryOf {
		entryOf[k] = -1
	}
	if nH == 0 {
		return entryOf, hidden, nil
	}
	if nH > nA {
		return nil, nil, fmt.Errorf("%d assistant messages but %d environment actions", nA, nH)
	}
	// Only cells with j <= k (reachable from the start) and nH-j <= nA-k
	// (enough turns left) are computed: a band of nA-nH+1 per entry.
	if (nA-nH+1)*(nH+1) > maxAlignCells {
		return nil, nil, fmt.Errorf("%d assistant messages × %d environment actions: too many to align", nA, nH)
	}
	fbs, errs, names := make([]string, nH), make([]string, nH), make([]string, nH)
	for j, a := range acts {
		fbs[j], errs[j], names[j] = a.feedbackText(), a.errorText(), a.name()
	}
	// match reports whether turn k may be entry j, and whether feedback
	// backs it.
	match := func(k, j int) (ok, evidence bool) {
		t := turns[k]
		if fbs[j] != "" && t.next != "" {
			return strings.Contains(t.next, fbs[j]), true
		}
		if errs[j] != "" && strings.Contains(t.next, errs[j]) {
			return true, true // a FAILED feedback's text backs it, when pasted
		}
		return !t.parsed || t.name == names[j], false
	}
	type score struct{ ev, pos int }
	better := func(a, b score) bool { return a.ev > b.ev || (a.ev == b.ev && a.pos > b.pos) }
	const none = -1
	// f[k][j]: best score matching turns k.. with entries j.. (all of
	// them); ev none when impossible.
	w := nH + 1
	f := make([]score, (nA+1)*w)
	take := make([]bool, (nA+1)*w)
	for j := 0; j < nH; j++ {
		f[nA*w+j] = score{none, 0}
	}
	for k := nA - 1; k >= 0; k-- {
		for j := nH; j >= 0; j-- {
			if j > k || nH-j > nA-k {
				f[k*w+j] = score{none, 0}
				continue
			}
			best := f[(k+1)*w+j] // turn k unrecorded
			tk := false
			if j < nH && f[(k+1)*w+j+1].ev != none {
				if ok, ev := match(k, j); ok {
					c := f[(k+1)*w+j+1]
					if ev {
						c.ev++
						c.pos += k
					} else {
						c.pos -= k
					}
					if best.ev == none || better(c, best) {
						best, tk = c, true
					}
				}
			}
			f[k*w+j], take[k*w+j] = best, tk
		}
	}
	if f[0].ev == none {
		// report the first entry that no turn can take
		j := 0
		for k := 0; k < nA && j < nH; k++ {
			if ok, _ := match(k, j); ok {
				j++
			}
		}
		j = min(j, nH-1)
		return nil, nil, fmt.Errorf("%d assistant messages cannot match all %d environment actions (actions[%d], %s, matches no message in order)", nA, nH, j, names[j])
	}
	for k, j := 0, 0; k < nA; k++ {
		if take[k*w+j] {
			entryOf[k] = j
			_, ev := match(k, j)
			hidden[k] = ev && !turns[k].parsed
			j++
		}
	}
	return entryOf, hidden, nil
}

// dropFixPrompts removes each broken reply and the fix prompt after it
// (see FixPromptPrefix) and returns how many pairs it removed.
func dropFixPrompts(msgs []Message) ([]Message, int) {
	out := make([]Message, 0, len(msgs))
	n := 0
	for _, m := range msgs {
		if m.Role == RoleUser && strings.HasPrefix(strings.TrimSpace(m.Content), FixPromptPrefix) &&
			len(out) > 0 && out[len(out)-1].Role == RoleAssistant {
			out = out[:len(out)-1]
			n++
			continue
		}
		out = append(out, m)
	}
	return out, n
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
