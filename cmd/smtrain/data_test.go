package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smtrain/data"
)

const dataTestJSONL = `{"messages":[{"role":"user","content":"2+2="},{"role":"assistant","content":"4"}],"reward":1}
{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","content":"a longer answer"}],"reward":NaN}
`

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDataStatsConvertTokenizer(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "eps.jsonl")
	os.WriteFile(in, []byte(dataTestJSONL), 0o644)
	code, out, errs := runCmd(t, "data", "stats", "-data", in, "-json", "-context", "8")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var st dataStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Episodes != 2 || st.AssistantTurns != 2 || st.Rewards.N != 1 || st.RewardsNaN != 1 || st.ActionTokens == 0 || st.Tokens <= st.ActionTokens {
		t.Fatalf("stats %+v", st)
	}
	if c := st.Context; c == nil || c.T != 8 || c.Truncated != 1 || c.KeptActions >= st.ActionTokens || c.PerTurnSeqs != 2 {
		t.Fatalf("context stats %+v", st.Context)
	}
	// bad line: error naming file:line, exit 1; -skip_bad reports it
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(dataTestJSONL+`{"messages":[{"role":"robot","content":"x"}]}`+"\n"), 0o644)
	code, _, errs = runCmd(t, "data", "stats", "-data", bad)
	if code != 1 || !strings.Contains(errs, "bad.jsonl:3") {
		t.Fatalf("bad data: exit %d, %q", code, errs)
	}
	code, out, _ = runCmd(t, "data", "stats", "-skip_bad", bad)
	if code != 0 || !strings.Contains(out, "skipped          1") || !strings.Contains(out, `unknown role "robot"`) {
		t.Fatalf("skip-bad: exit %d\n%s", code, out)
	}
	// convert round trip
	conv := filepath.Join(dir, "out.jsonl")
	if code, _, errs = runCmd(t, "data", "convert", "-data", in, "-out", conv); code != 0 {
		t.Fatalf("convert: %s", errs)
	}
	res, err := data.Load([]string{conv}, false)
	if err != nil || len(res.Episodes) != 2 {
		t.Fatalf("converted file: %v", err)
	}
	// tokenizer train
	tokPath := filepath.Join(dir, "tokenizer.json")
	if code, out, errs = runCmd(t, "tokenizer", "train", "-data", in, "-vocab", "300", "-out", tokPath); code != 0 {
		t.Fatalf("tokenizer train: %s", errs)
	}
	tok, err := data.LoadTokenizer(tokPath)
	if err != nil || tok.EndID() != data.EndID {
		t.Fatalf("trained tokenizer: %v", err)
	}
	if code, _, _ = runCmd(t, "tokenizer", "train", "-data", in, "-vocab", "10", "-out", tokPath); code != 2 {
		t.Fatalf("vocab below minimum: exit %d", code)
	}
	code, out, _ = runCmd(t, "data", "stats", "-data", in, "-tokenizer", tokPath)
	if code != 0 || !strings.Contains(out, tokPath) {
		t.Fatalf("stats with tokenizer: %s", out)
	}
}
