package data

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const sampleDir = "../../shared/mledojo/trajectories"

func sampleFiles(t testing.TB) (traj, hist string) {
	traj = filepath.Join(sampleDir, "agent_trajectory.json")
	hist = filepath.Join(sampleDir, "env_history.json")
	if _, err := os.Stat(traj); err != nil {
		t.Skipf("MLE-Dojo samples not present: %v", err)
	}
	return traj, hist
}

func TestLoadMLEDojoSample(t *testing.T) {
	traj, hist := sampleFiles(t)
	ep, err := LoadMLEDojoRun(traj, hist)
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Messages) != 20 || ep.NumAssistant() != 10 {
		t.Fatalf("%d messages, %d assistant", len(ep.Messages), ep.NumAssistant())
	}
	if ep.Messages[0].Role != RoleUser || !strings.Contains(ep.Messages[0].Content, "Kaggle grandmaster") {
		t.Fatal("first message is not the task prompt")
	}
	if ep.Meta["competition"] != "random-acts-of-pizza" {
		t.Fatalf("meta %v", ep.Meta)
	}
	// steps 8, 9, 10 submitted; their position scores add up to total_reward
	sum := 0.0
	for k, r := range ep.StepRewards {
		if k < 7 && r != 0 {
			t.Fatalf("step %d reward %g", k+1, r)
		}
		sum += r
	}
	if total := ep.Meta["total_reward"].(float64); math.Abs(sum-total) > 1e-12 {
		t.Fatalf("step rewards sum %g, total_reward %g", sum, total)
	}
	if math.Abs(ep.Reward-0.5735930735930735) > 1e-15 {
		t.Fatalf("reward %g", ep.Reward)
	}
	if math.Abs(ep.StepScores[7]-0.5563755038419854) > 1e-15 || !math.IsNaN(ep.StepScores[0]) {
		t.Fatalf("scores %v", ep.StepScores)
	}
	// found by Load through a directory walk (flat layout)
	res, err := Load([]string{sampleDir}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Episodes) != 1 || res.Files != 1 {
		t.Fatalf("Load found %d episodes in %d files", len(res.Episodes), res.Files)
	}
	// the chat template turns it into a valid action sequence
	tok := ByteTokenizer()
	s, err := ChatSeq(tok, ep.Messages)
	if err != nil {
		t.Fatal(err)
	}
	if s.Prompt[0] != UserID || !s.Done || s.NumActions() == 0 {
		t.Fatal("bad sequence from the sample")
	}
	tr, info, err := Truncate(s, 512)
	if err != nil || tr.NumInputs() > 512 || !info.Truncated() {
		t.Fatalf("truncate: %v %d %+v", err, tr.NumInputs(), info)
	}
	if _, err := Compile([]*ActionSeq{tr}, 512); err != nil {
		t.Fatal(err)
	}
}

// writeRun lays out an MLE-Dojo run folder <dir>/<comp>/{agent,env}_history.
func writeRun(t *testing.T, dir, comp string, traj, hist []byte) {
	t.Helper()
	a := filepath.Join(dir, comp, "agent_history")
	e := filepath.Join(dir, comp, "env_history")
	os.MkdirAll(a, 0o755)
	os.MkdirAll(e, 0o755)
	os.WriteFile(filepath.Join(a, "trajectory.json"), traj, 0o644)
	os.WriteFile(filepath.Join(e, "history.json"), hist, 0o644)
}

const tinyTraj = `[{"role":"user","content":"task"},{"role":"assistant","content":"a1"},{"role":"user","content":"fb"},{"role":"assistant","content":"a2"}]`
const tinyHist = `{"competition":"c","actions":[{"step":1,"action":"request_info","result":{"status":"SUCCESS"}},
 {"step":2,"action":"execute_code","result":{"submission":{"status":"SUCCESS","raw_score":NaN,"position_score":{"avg_score":0.25}}}}],
 "total_reward":0.25,"best_raw_score":-Infinity,"best_position_score":Infinity}`

func TestLoadRunFoldersRecursive(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, "comp1", []byte(tinyTraj), []byte(tinyHist))
	writeRun(t, filepath.Join(dir, "deeper"), "comp2", []byte(tinyTraj), []byte(strings.Replace(tinyHist, `"best_position_score":Infinity`, `"best_position_score":NaN`, 1)))
	res, err := Load([]string{dir}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Episodes) != 2 {
		t.Fatalf("%d episodes", len(res.Episodes))
	}
	e0 := res.Episodes[0]
	if !math.IsInf(e0.Reward, 1) || !math.IsNaN(e0.StepScores[1]) || e0.StepRewards[1] != 0.25 || !math.IsInf(e0.Meta["best_raw_score"].(float64), -1) {
		t.Fatalf("episode 0: %+v", e0)
	}
	// NaN best score falls back to the best step reward
	if res.Episodes[1].Reward != 0.25 {
		t.Fatalf("episode 1 reward %g", res.Episodes[1].Reward)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, traj, hist, want string
	}{
		{"truncated", tinyTraj[:40], tinyHist, "byte offset"},
		{"wrong type", `[{"role":"user","content":3}]`, tinyHist, "content"},
		{"unknown role", strings.Replace(tinyTraj, `"user","content":"fb"`, `"robot","content":"fb"`, 1), tinyHist, `unknown role "robot"`},
		{"misaligned", `[{"role":"user","content":"t"},{"role":"assistant","content":"a"}]`, tinyHist, "misaligned"},
		{"more actions than turns", `[{"role":"user","content":"t"},{"role":"assistant","content":"a"},{"role":"user","content":"u"}]`, tinyHist, "1 assistant messages but 2"},
		{"trailing", tinyTraj + "]", tinyHist, "trailing data"},
		{"bad history type", tinyTraj, strings.Replace(tinyHist, `"raw_score":NaN`, `"raw_score":{}`, 1), "raw_score"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeRun(t, dir, "x", []byte(c.traj), []byte(c.hist))
		_, err := Load([]string{dir}, false)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, "x")) {
			t.Errorf("%s: error %q does not name %q and the file", c.name, err, c.want)
		}
		// with skipBad it is reported, not fatal
		res, err := Load([]string{dir}, true)
		if err != nil || len(res.Skipped) != 1 || len(res.Episodes) != 0 {
			t.Errorf("%s: skip-bad gave %v, %+v", c.name, err, res)
		}
	}
	// one unexecuted last message (env.step raised) is accepted and flagged
	dir := t.TempDir()
	writeRun(t, dir, "x", []byte(strings.Replace(tinyTraj, `]`, `,{"role":"user","content":"x"},{"role":"assistant","content":"a3"}]`, 1)), []byte(tinyHist))
	res, err := Load([]string{dir}, false)
	if err != nil || res.Episodes[0].Meta["last_action_unexecuted"] != true || len(res.Episodes[0].StepRewards) != 3 || res.Episodes[0].StepRewards[2] != 0 || !math.IsNaN(res.Episodes[0].StepScores[2]) {
		t.Errorf("unexecuted last action: %v %+v", err, res)
	}
	// missing history
	dir = t.TempDir()
	os.MkdirAll(filepath.Join(dir, "c", "agent_history"), 0o755)
	os.WriteFile(filepath.Join(dir, "c", "agent_history", "trajectory.json"), []byte(tinyTraj), 0o644)
	if _, err := Load([]string{dir}, false); err == nil || !strings.Contains(err.Error(), "no environment history") {
		t.Errorf("missing history: %v", err)
	}
}

func TestJSONLRoundTripAndErrors(t *testing.T) {
	eps := []Episode{
		{Messages: []Message{{RoleSystem, "sys"}, {RoleUser, "q <|end|>"}, {RoleAssistant, "a\n\"quoted\" <eos>"}}, Reward: 0.5, Meta: map[string]any{"k": "v", "nan": math.NaN()}},
		{Messages: []Message{{RoleUser, "q"}, {RoleAssistant, "a"}}, Reward: math.NaN(), StepRewards: []float64{1}, StepScores: []float64{math.NaN()}},
	}
	path := filepath.Join(t.TempDir(), "eps.jsonl")
	if err := WriteJSONL(path, eps); err != nil {
		t.Fatal(err)
	}
	back, skipped, err := LoadJSONL(path, false)
	if err != nil || len(skipped) != 0 || len(back) != 2 {
		t.Fatalf("%v %v %d", err, skipped, len(back))
	}
	if back[0].Messages[2].Content != eps[0].Messages[2].Content || back[0].Reward != 0.5 || back[0].Source != path+":1" {
		t.Fatalf("episode 0 back: %+v", back[0])
	}
	if !math.IsNaN(back[1].Reward) || back[1].StepRewards[0] != 1 || !math.IsNaN(back[1].StepScores[0]) {
		t.Fatalf("episode 1 back: %+v", back[1])
	}
	good := `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"reward":NaN}`
	bad := []struct{ line, want string }{
		{`{"messages":[{"role":"user","content":"q"}],"reward":"x"}`, "reward"},
		{`{"messages":[{"role":"boss","content":"q"}]}`, "unknown role"},
		{`{"messages":[{"role":"user","content":"q"}],"extra":1}`, "unknown field"},
		{`{"reward":1}`, "no \"messages\""},
		{`{"messages":[{"role":"user","content":"q"}]`, "unexpected end"},
		{`{"messages":[],"step_rewards":[1]}`, "no messages"},
	}
	for _, b := range bad {
		data := good + "\n\n" + b.line + "\n" + good
		_, _, err := ParseJSONL([]byte(data), "f.jsonl", false)
		if err == nil || !strings.Contains(err.Error(), "f.jsonl:3") || !strings.Contains(err.Error(), b.want) {
			t.Errorf("line %s: error %v (want %q at f.jsonl:3)", b.line, err, b.want)
		}
		eps, skipped, err := ParseJSONL([]byte(data), "f.jsonl", true)
		if err != nil || len(eps) != 2 || len(skipped) != 1 {
			t.Errorf("skip-bad: %v %d %d", err, len(eps), len(skipped))
		}
	}
}

const tinyJournal = `{"nodes":[
 {"code":"print(1)","plan":"simple plan","step":0,"id":"n0","ctime":1.0,"parent":null,"children":[],
  "instruction_prompt":"# Introduction\nsolve it","node_type":"draft","assistant":"plan\n` + "```python\\nprint(1)\\n```" + `",
  "status":"SUCCESS","feedback":{},"raw_score":0.7,"position_score":0.4,"analysis":null,"metric":{"value":0.7,"maximize":true},"is_buggy":false},
 {"code":"print(2)","plan":"improve","step":1,"id":"n1","ctime":2.0,"parent":null,"children":[],
  "instruction_prompt":"# Introduction\nimprove it","node_type":"improve","assistant":null,
  "status":"FAILED","feedback":null,"raw_score":null,"position_score":NaN,"analysis":null,"metric":{"value":null,"maximize":null},"is_buggy":true}],
 "node2parent":{"n1":"n0"},"__version":"2"}`

func TestLoadAIDEJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "journal.json"), []byte(tinyJournal), 0o644)
	res, err := Load([]string{dir}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Episodes) != 2 {
		t.Fatalf("%d episodes", len(res.Episodes))
	}
	e0, e1 := res.Episodes[0], res.Episodes[1]
	if e0.Messages[0].Role != RoleSystem || e0.Messages[1].Role != RoleAssistant || e0.Reward != 0.4 || e0.StepScores[0] != 0.7 {
		t.Fatalf("node 0: %+v", e0)
	}
	if !strings.Contains(e1.Messages[1].Content, "```python\nprint(2)\n```") || !math.IsNaN(e1.Reward) || e1.Meta["parent"] != "n0" {
		t.Fatalf("node 1: %+v", e1)
	}
	if _, err := ParseAIDEJournal([]byte(`{"nodes":[{"code":"x"}]}`), "j.json"); err == nil || !strings.Contains(err.Error(), "nodes[0]") {
		t.Fatalf("missing prompt: %v", err)
	}
	if _, err := ParseAIDEJournal([]byte(`{"nodes":{}}`), "j.json"); err == nil || !strings.Contains(err.Error(), "byte offset") {
		t.Fatalf("wrong type: %v", err)
	}
}

func TestSanitizeOffsets(t *testing.T) {
	raw := []byte(`{"a": NaN, "b": -Infinity, "c": "NaN inside", "d": Infinity, "e": [1,]}`)
	var v map[string]any
	err := decodeStrict(raw, &v, false)
	if err == nil {
		t.Fatal("syntax error accepted")
	}
	// the error offset points into the original text at the bad ']'
	want := strings.Index(string(raw), ",]") + 2
	if !strings.Contains(err.Error(), "byte offset "+strconv.Itoa(want)) {
		t.Fatalf("error %v, want offset %d", err, want)
	}
}

func FuzzParseJSONL(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"reward":NaN}`))
	f.Add([]byte("{\"messages\":[]}\n\n{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		eps, _, err := ParseJSONL(data, "f", true)
		if err != nil {
			return
		}
		for i := range eps {
			if err := eps[i].Validate(); err != nil {
				t.Fatalf("returned an invalid episode: %v", err)
			}
			if _, err := eps[i].MarshalJSONL(); err != nil {
				t.Fatalf("cannot re-encode: %v", err)
			}
		}
	})
}

func FuzzParseMLEDojo(f *testing.F) {
	f.Add([]byte(tinyTraj), []byte(tinyHist))
	f.Add([]byte(`[]`), []byte(`{"actions":[]}`))
	f.Fuzz(func(t *testing.T, traj, hist []byte) {
		ep, err := ParseMLEDojo(traj, hist, "t", "h")
		if err != nil {
			return
		}
		if err := ep.Validate(); err != nil {
			t.Fatalf("returned an invalid episode: %v", err)
		}
	})
}

func FuzzParseAIDEJournal(f *testing.F) {
	f.Add([]byte(tinyJournal))
	f.Add([]byte(`{"nodes":[]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		eps, err := ParseAIDEJournal(raw, "j")
		if err != nil {
			return
		}
		for i := range eps {
			if err := eps[i].Validate(); err != nil {
				t.Fatalf("returned an invalid episode: %v", err)
			}
		}
	})
}
