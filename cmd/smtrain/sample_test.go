package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/envbridge"
	"smtrain/model"
)

// tinyCheckpoint writes a random tiny model with the byte tokenizer to a
// temporary folder. The <bkspc> logit is biased up (ln_f bias along the
// <bkspc> embedding row) so that samples backspace often.
func tinyCheckpoint(t *testing.T) (string, *data.Tokenizer) {
	t.Helper()
	tok := data.ByteTokenizer()
	cfg := model.Tiny
	cfg.VocabSize = tok.VocabSize()
	cfg.NPositions = 64
	p, err := model.NewParams(cfg, model.F32, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	// logit(<bkspc>) = ln_f(x) . wte[bkspc]; with ln_f.bias = 2 and
	// wte[bkspc] = 0.03 it is about 0.03 * 2 * D = 3.8 at every state.
	D := cfg.NEmbd
	wte, lnfB := p.Get("wte.weight"), p.Get("ln_f.bias")
	if wte == nil || lnfB == nil {
		t.Fatal("parameter names changed")
	}
	for i := 0; i < D; i++ {
		lnfB.F32[i] = 2
		wte.F32[int(data.BkspcID)*D+i] = 0.03
	}
	js, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt-00000001")
	if err := model.Save(dir, p, map[string][]byte{"tokenizer.json": js}); err != nil {
		t.Fatal(err)
	}
	return dir, tok
}

func runSampleCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"sample"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSampleCommandJSON(t *testing.T) {
	dir, tok := tinyCheckpoint(t)
	args := []string{"-ckpt", dir, "-prompt", "hello", "-n", "5", "-max_new", "12", "-seed", "9", "-json", "-show_actions"}
	code, out, errs := runSampleCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "5 samples") || !strings.Contains(errs, "retry block off") {
		t.Fatalf("summary: %q", errs)
	}
	want, err := data.ChatSeq(tok, []data.Message{{Role: data.RoleUser, Content: "hello"}, {Role: data.RoleAssistant}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d JSON lines, want 5:\n%s", len(lines), out)
	}
	var first []sampleJSON
	bk := 0
	for i, l := range lines {
		var s sampleJSON
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if s.Index != i || !reflect.DeepEqual(s.Prompt, want.Prompt) {
			t.Fatalf("line %d: index %d prompt %v, want %v", i, s.Index, s.Prompt, want.Prompt)
		}
		toks, ok := decode.Replay(s.Actions, data.BkspcID, []int32{data.EOSID, data.EndID})
		if !ok || !reflect.DeepEqual(toks, s.Tokens) || len(s.Tokens) > 12 || s.Text != viaJSON(tok.Decode(s.Tokens)) {
			t.Fatalf("line %d inconsistent: actions %v tokens %v text %q", i, s.Actions, s.Tokens, s.Text)
		}
		if s.NumBkspc > 0 && !strings.Contains(s.ActionsText, "~~") {
			t.Fatalf("line %d: deletions not visible in %q", i, s.ActionsText)
		}
		bk += s.NumBkspc
		first = append(first, s)
	}
	if bk == 0 {
		t.Fatal("no backspace in any sample: the test does not exercise deletions")
	}
	// Same seed: same samples; another seed: different ones.
	_, out2, _ := runSampleCmd(t, args...)
	for i, l := range strings.Split(strings.TrimSpace(out2), "\n") {
		var s sampleJSON
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Actions, first[i].Actions) {
			t.Fatalf("rerun sample %d differs", i)
		}
	}
	args[9] = "10"
	_, out3, _ := runSampleCmd(t, args...)
	if strings.Contains(out3, `"actions":`+mustJSON(first[0].Actions)) && strings.Contains(out3, `"actions":`+mustJSON(first[1].Actions)) {
		t.Fatal("another seed gave the same samples")
	}
}

// viaJSON is s after a JSON round trip (invalid UTF-8 becomes U+FFFD).
func viaJSON(s string) string {
	var out string
	_ = json.Unmarshal([]byte(mustJSON(s)), &out)
	return out
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSampleCommandTextGreedy(t *testing.T) {
	dir, _ := tinyCheckpoint(t)
	pf := filepath.Join(t.TempDir(), "prompt.txt")
	if err := os.WriteFile(pf, []byte("2+2="), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runSampleCmd(t, "-ckpt", dir, "-prompt_file", pf, "-greedy", "-max_new", "8", "-show_actions")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.HasPrefix(out, "=== sample 0 | stop ") || !strings.Contains(out, "--- actions") {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.Contains(errs, "greedy") || !strings.Contains(errs, "retry block on") {
		t.Fatalf("summary: %q", errs)
	}
	// A stop string: rerun a sample with -stop set to a printable character
	// it generated; it must stop there with the same actions up to then.
	dir2, tok := tinyCheckpoint(t)
	base := []string{"-ckpt", dir2, "-prompt", "x", "-max_new", "24", "-seed", "4", "-json"}
	code, out, errs = runSampleCmd(t, base...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var s sampleJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	stop := ""
	for _, id := range s.Tokens[min(3, len(s.Tokens)):] {
		if c := tok.Decode([]int32{id}); len(c) == 1 && c[0] > ' ' && c[0] < 127 {
			stop = c
			break
		}
	}
	if stop == "" {
		t.Fatalf("no printable character generated in %v", s.Tokens)
	}
	code, out, errs = runSampleCmd(t, append(base, "-stop", stop)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var s2 sampleJSON
	if err := json.Unmarshal([]byte(out), &s2); err != nil {
		t.Fatal(err)
	}
	if s2.Stop != decode.StopString || s2.StopText != stop || !strings.HasSuffix(s2.Text, stop) ||
		len(s2.Actions) >= len(s.Actions) || !reflect.DeepEqual(s2.Actions, s.Actions[:len(s2.Actions)]) {
		t.Fatalf("stop %q: got stop %s %q text %q actions %v (without: %v)", stop, s2.Stop, s2.StopText, s2.Text, s2.Actions, s.Actions)
	}
}

func TestSampleCommandErrors(t *testing.T) {
	dir, _ := tinyCheckpoint(t)
	usage := [][]string{
		{},
		{"-ckpt", dir, "-prompt", "a", "-prompt_file", "b"},
		{"-ckpt", dir, "-temperature", "0"},
		{"-ckpt", dir, "-top_p", "2"},
		{"-ckpt", dir, "-n", "0"},
		{"-ckpt", dir, "-retry_block", "maybe"},
		{"-ckpt", dir, "extra"},
	}
	for _, a := range usage {
		if code, _, errs := runSampleCmd(t, a...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", a, code, errs)
		}
	}
	runtime := [][]string{
		{"-ckpt", filepath.Join(dir, "missing")},
		{"-ckpt", dir, "-prompt_file", filepath.Join(dir, "nope.txt")},
	}
	for _, a := range runtime {
		code, _, errs := runSampleCmd(t, a...)
		if code != 1 || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, want 1 with one line (%q)", a, code, errs)
		}
	}
}

func TestResolveCheckpointLatest(t *testing.T) {
	dir, _ := tinyCheckpoint(t)
	out := filepath.Dir(dir)
	if err := os.WriteFile(filepath.Join(out, "latest"), []byte("ckpt-00000001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, p, tok, err := loadPolicy(out)
	if err != nil || got != dir || p == nil || tok == nil {
		t.Fatalf("resolve %q: %q %v", out, got, err)
	}
	if err := os.WriteFile(filepath.Join(out, "latest"), []byte("../x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := loadPolicy(out); err == nil {
		t.Fatal("malformed marker accepted")
	}
}

// TestSampleLongPromptTruncated: a prompt longer than the context is
// left-truncated the way training truncates, with a note on stderr.
func TestSampleLongPromptTruncated(t *testing.T) {
	dir, _ := tinyCheckpoint(t)
	code, out, errs := runSampleCmd(t, "-ckpt", dir, "-prompt", strings.Repeat("x", 100)+"END", "-max_new", "8", "-json", "-seed", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "left-truncated to its last") {
		t.Fatalf("no truncation note on stderr: %q", errs)
	}
	var r struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &r); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	// Short prompts are not touched.
	if code, _, errs := runSampleCmd(t, "-ckpt", dir, "-prompt", "hi", "-max_new", "8", "-json"); code != 0 || strings.Contains(errs, "truncated") {
		t.Fatalf("short prompt: exit %d, stderr %q", code, errs)
	}
}

// TestSampleConstrainAction: with -constrain action every sample of a
// random tiny model (which backspaces often) is a reply whose action
// parses and validates; without it none is; a bad mode is a usage error.
func TestSampleConstrainAction(t *testing.T) {
	dir, _ := tinyCheckpoint(t)
	count := func(extra ...string) (valid, n int) {
		args := append([]string{"-ckpt", dir, "-prompt", "go", "-n", "6", "-max_new", "56", "-seed", "5", "-json"}, extra...)
		code, out, errs := runSampleCmd(t, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var s struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatalf("%v: %q", err, line)
			}
			n++
			if _, err := envbridge.ParseAction(s.Text); err == nil {
				valid++
			}
		}
		return valid, n
	}
	if valid, n := count("-constrain", "action"); n != 6 || valid != 6 {
		t.Fatalf("constrained: %d of %d samples valid", valid, n)
	}
	if valid, _ := count(); valid != 0 {
		t.Fatalf("unconstrained: %d random samples valid", valid)
	}
	code, _, errs := runSampleCmd(t, "-ckpt", dir, "-constrain", "json")
	if code != 2 || !strings.Contains(errs, "-constrain: must be action or none") {
		t.Fatalf("bad mode: exit %d, %q", code, errs)
	}
}
