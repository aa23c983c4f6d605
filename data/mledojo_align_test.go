package data

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"smtrain/envbridge"
)

// A real-shaped MLE-Dojo run: the trajectory MLEAgent writes (its
// reflection/error prompts around each observation's feedback text,
// envbridge's templates being the same) and the history the environment
// writes (one entry per step that did not raise).

type runTurn struct {
	reply    string // assistant text
	user     string // the user message after it ("" for a last turn)
	recorded bool   // the environment wrote an entry
	action   string // entry action
	feedback string // entry feedback text
	score    float64
	submit   bool
}

func act(name string, params map[string]any) string {
	return envbridge.FormatAction("Thinking about it.", envbridge.Action{Name: name, Params: params})
}

func turnFor(name, fb string) runTurn {
	params := map[string]any{"code": "print(1)"}
	if name == "request_info" {
		params = map[string]any{"info_type": "overview"}
	}
	return runTurn{reply: act(name, params), user: envbridge.FormatObservationBudget(envbridge.Observation{"action_status": "SUCCESS",
		"feedback": map[string]any{"base": map[string]any{"feedback_status": "SUCCESS", "feedback": fb}}}, 5, 100),
		recorded: true, action: name, feedback: fb}
}

func scored(t runTurn, s float64) runTurn { t.score, t.submit = s, true; return t }

func buildRun(t *testing.T, prefix []Message, turns []runTurn) (traj, hist []byte) {
	t.Helper()
	msgs := append([]Message{{Role: RoleUser, Content: "task prompt"}}, prefix...)
	var acts []map[string]any
	best := 0.0
	for _, tu := range turns {
		msgs = append(msgs, Message{Role: RoleAssistant, Content: tu.reply})
		if tu.user != "" {
			msgs = append(msgs, Message{Role: RoleUser, Content: tu.user})
		}
		if !tu.recorded {
			continue
		}
		res := map[string]any{"status": "SUCCESS"}
		if tu.submit {
			res["submission"] = map[string]any{"status": "SUCCESS", "raw_score": tu.score * 10, "position_score": map[string]any{"avg_score": tu.score}}
			best = math.Max(best, tu.score)
		}
		acts = append(acts, map[string]any{"step": len(acts) + 1, "action": tu.action, "result": res,
			"feedback": map[string]any{"base": map[string]any{"feedback_status": "SUCCESS", "feedback": tu.feedback}}})
	}
	traj, _ = json.Marshal(msgs)
	hist, _ = json.Marshal(map[string]any{"competition": "c", "actions": acts, "best_position_score": best})
	return traj, hist
}

func rewardsOf(t *testing.T, traj, hist []byte) *Episode {
	t.Helper()
	ep, err := ParseMLEDojo(traj, hist, "traj", "hist")
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func eqRewards(a []float64, b ...float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fixPrompt is MLEAgent's fix_parse_error prompt as it appears in a
// Gemini trajectory.
func fixPrompt(reply string) string {
	return FixPromptPrefix + "\n            Fix the error following the response format requirements.\n\n            ### Response Start ###\n            " + reply + "\n            ### Response End ###"
}

func TestMLEDojoAlignFixPrompts(t *testing.T) {
	broken := "Let me submit.\n```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"x = 1\n}\n```"
	info := turnFor("request_info", "=== Competition Info ===\ninfo A")
	sub := scored(turnFor("execute_code", "=== Code Execution Results ===\nrun B"), 0.5)
	info2 := turnFor("request_info", "=== Competition Info ===\ninfo C")
	for n := 1; n <= 2; n++ {
		// Gemini: broken reply, fix prompt, (broken again, fix prompt,)
		// fixed reply, then the environment's answer.
		var turns []runTurn
		turns = append(turns, info)
		for i := 0; i < n; i++ {
			turns = append(turns, runTurn{reply: broken, user: fixPrompt(broken)})
		}
		turns = append(turns, sub, info2)
		traj, hist := buildRun(t, nil, turns)
		ep := rewardsOf(t, traj, hist)
		if ep.NumAssistant() != 3 || !eqRewards(ep.StepRewards, 0, 0.5, 0) || ep.Meta["fix_prompts_dropped"] != n || ep.Reward != 0.5 {
			t.Fatalf("%d fix prompts: %d turns, rewards %v, meta %v", n, ep.NumAssistant(), ep.StepRewards, ep.Meta)
		}
		for _, m := range ep.Messages {
			if strings.HasPrefix(m.Content, FixPromptPrefix) || m.Content == broken {
				t.Fatalf("%d fix prompts: a fix exchange was kept: %q", n, m.Content)
			}
		}
	}
	// Other models: the broken reply stays, the fix is hidden, and the
	// environment's answer to the fixed action follows it. The text is not
	// the action that earned the reward: 0.
	b := sub
	b.reply = broken
	traj, hist := buildRun(t, nil, []runTurn{info, b, info2})
	ep := rewardsOf(t, traj, hist)
	if !eqRewards(ep.StepRewards, 0, 0, 0) || ep.Meta["unparsed_executed"] != 1 || ep.Reward != 0.5 {
		t.Fatalf("broken reply kept: rewards %v meta %v reward %v", ep.StepRewards, ep.Meta, ep.Reward)
	}
}

func TestMLEDojoAlignHotStartAndRaisedSteps(t *testing.T) {
	info := turnFor("request_info", "=== Competition Info ===\ninfo A")
	sub := scored(turnFor("execute_code", "=== Code Execution Results ===\nrun B"), 0.75)
	// Hot start: the first 11 messages come from an earlier run (5 turns
	// the environment never saw), including the same request_info answer.
	var prefix []Message
	for i := 0; i < 5; i++ {
		prefix = append(prefix, Message{Role: RoleAssistant, Content: info.reply}, Message{Role: RoleUser, Content: info.user})
	}
	traj, hist := buildRun(t, prefix, []runTurn{info, sub})
	ep := rewardsOf(t, traj, hist)
	if !eqRewards(ep.StepRewards, 0, 0, 0, 0, 0, 0, 0.75) || ep.Meta["unrecorded_turns"] != 5 {
		t.Fatalf("hot start: rewards %v meta %v", ep.StepRewards, ep.Meta)
	}
	// A step that raised (no entry; the agent saw an error) between two
	// recorded ones, and a last turn never executed.
	raised := turnFor("request_info", "")
	raised.recorded, raised.user = false, "ValueError: Error in step for action 'request_info': bad info_type"
	last := turnFor("execute_code", "")
	last.recorded, last.user = false, ""
	traj, hist = buildRun(t, nil, []runTurn{info, raised, sub, last})
	ep = rewardsOf(t, traj, hist)
	if !eqRewards(ep.StepRewards, 0, 0, 0.75, 0) || ep.Meta["unrecorded_turns"] != 2 || ep.Meta["last_action_unexecuted"] != true {
		t.Fatalf("raised step: rewards %v meta %v", ep.StepRewards, ep.Meta)
	}
	// Before: a request_info credited with the next submission's score.
	if ep.StepRewards[1] != 0 {
		t.Fatal("the raised step took a recorded entry")
	}
}

func TestMLEDojoAlignRawModeAndReset(t *testing.T) {
	sub := turnFor("execute_code", "=== Code Execution Results ===\nrun B")
	traj, _ := buildRun(t, nil, []runTurn{sub})
	// raw mode: a successful submission without position_score;
	// best_position_score is 0.0 as MLE-Dojo writes it.
	hist := []byte(`{"competition":"c","actions":[{"step":1,"action":"execute_code","result":{"status":"SUCCESS","submission":{"status":"SUCCESS","raw_score":3.2}},
		"feedback":{"base":{"feedback_status":"SUCCESS","feedback":"=== Code Execution Results ===\nrun B"}}}],"best_raw_score":3.2,"best_position_score":0.0}`)
	ep := rewardsOf(t, traj, hist)
	if !math.IsNaN(ep.Reward) || ep.StepRewards != nil || ep.Meta["score_mode"] != "raw" || ep.StepScores[0] != 3.2 {
		t.Fatalf("raw mode: reward %v step rewards %v meta %v", ep.Reward, ep.StepRewards, ep.Meta)
	}
	// The real env's reset action restarts history.json: its entry has
	// step 0 and only an error feedback; earlier turns are unrecorded.
	info := turnFor("request_info", "=== Competition Info ===\ninfo A")
	reset := runTurn{reply: act("reset", map[string]any{}), user: "None"}
	traj, _ = buildRun(t, nil, []runTurn{info, reset, info})
	hist = []byte(`{"competition":"c","actions":[{"step":0,"action":"reset","result":{"feedback":"Environment reset successfully"},
		"feedback":{"base":{"feedback_status":"FAILED","error":"Invalid interface mode: reset, supported modes: validate_code, execute_code, request_info"}}},
		{"step":1,"action":"request_info","result":{"status":"SUCCESS"},"feedback":{"base":{"feedback_status":"SUCCESS","feedback":"=== Competition Info ===\ninfo A"}}}]}`)
	ep = rewardsOf(t, traj, hist)
	if ep.Meta["unrecorded_turns"] != 1 || !eqRewards(ep.StepRewards, 0, 0, 0) {
		t.Fatalf("reset: meta %v", ep.Meta)
	}
}
