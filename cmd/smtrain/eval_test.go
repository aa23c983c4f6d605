package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smtrain/data"
	"smtrain/model"
)

// tinyFit are fit flags for a run of a second or so on the arithmetic task.
func tinyFit(out string, steps string, extra ...string) []string {
	return append([]string{"fit", "-task", "arith", "-out", out, "-steps", steps, "-n_positions", "32", "-n_layer", "1",
		"-n_embd", "32", "-n_head", "2", "-arith_train", "200", "-arith_test", "24", "-eval_every", "0", "-ckpt_every", "0",
		"-eval_samples", "0", "-warm_start", "4", "-replay_every", "5", "-replay_samples", "4", "-replay_max_new", "8",
		"-progress", "off"}, extra...)
}

// lastVal returns the last validation row of a run's metrics.jsonl.
func lastVal(t *testing.T, run string) (loss float64, comps map[string]float64) {
	t.Helper()
	f, err := os.Open(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	found := false
	for sc.Scan() {
		var ev struct {
			Split      string             `json:"split"`
			Loss       float64            `json:"loss"`
			Components map[string]float64 `json:"components"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Split == "val" {
			loss, comps, found = ev.Loss, ev.Components, true
		}
	}
	if !found {
		t.Fatal("no val row in metrics.jsonl")
	}
	return loss, comps
}

type evalJSON struct {
	Checkpoint string             `json:"checkpoint"`
	Step       *int               `json:"step"`
	Split      string             `json:"split"`
	Episodes   int                `json:"episodes"`
	Sequences  int                `json:"sequences"`
	Objective  string             `json:"objective"`
	NLL        float64            `json:"nll"`
	Perplexity float64            `json:"perplexity"`
	NLLTokens  int                `json:"nll_tokens"`
	Loss       float64            `json:"loss"`
	Components map[string]float64 `json:"components"`
	Tokens     int                `json:"tokens"`
	VocabGrown int                `json:"vocab_grown"`
	ByObj      map[string]struct {
		Loss       float64            `json:"loss"`
		Components map[string]float64 `json:"components"`
	} `json:"by_objective"`
}

func runEvalJSON(t *testing.T, args ...string) evalJSON {
	t.Helper()
	code, out, errb := runCLI(append([]string{"eval"}, args...)...)
	if code != 0 {
		t.Fatalf("smtrain eval %s: exit %d: %s", strings.Join(args, " "), code, errb)
	}
	var r evalJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("eval output is not JSON: %v\n%s", err, out)
	}
	return r
}

// TestEvalCommand: eval on a run folder reproduces the run's own final
// validation metrics exactly (same held-out split, same code path); a
// checkpoint folder inside the run finds the run's config; -data scores a
// JSONL file; fit -init continues from the run's checkpoint.
func TestEvalCommand(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if code, _, errb := runCLI(tinyFit(run, "12")...); code != 0 {
		t.Fatalf("fit: exit %d: %s", code, errb)
	}
	wantLoss, wantComps := lastVal(t, run)

	r := runEvalJSON(t, "-ckpt", run, "-objectives", "mle,chi2mix,kl")
	if r.Step == nil || *r.Step != 12 || r.Split != "val" || r.Episodes != 24 || r.Objective != "chi2mix" {
		t.Fatalf("report %+v", r)
	}
	if r.Loss != wantLoss || r.NLL != wantComps["nll"] || r.Perplexity != wantComps["perplexity"] {
		t.Fatalf("eval loss %v nll %v ppl %v; the run's final validation row has loss %v nll %v ppl %v",
			r.Loss, r.NLL, r.Perplexity, wantLoss, wantComps["nll"], wantComps["perplexity"])
	}
	for _, k := range []string{"linear", "square", "value", "bc"} {
		if v, ok := r.Components[k]; !ok || v != wantComps[k] {
			t.Errorf("component %s = %v, the run logged %v", k, v, wantComps[k])
		}
	}
	if len(r.ByObj) != 3 || r.ByObj["mle"].Loss != r.NLL || r.ByObj["chi2mix"].Loss != r.Loss || !(r.ByObj["kl"].Components["linear"] > 0) {
		t.Fatalf("by_objective %+v (nll %v loss %v)", r.ByObj, r.NLL, r.Loss)
	}
	if r.NLLTokens <= 0 || r.Tokens < r.NLLTokens {
		t.Fatalf("tokens %d (nll %d)", r.Tokens, r.NLLTokens)
	}

	if code, _, errb := runCLI("eval", "-ckpt", run, "-objectives", "mle,chi3"); code != 2 || !strings.Contains(errb, "chi3") {
		t.Fatalf("bad -objectives: exit %d %q", code, errb)
	}

	// The checkpoint folder itself; -objective mle and -split train.
	ck := filepath.Join(run, "ckpt-00000012")
	r2 := runEvalJSON(t, "-ckpt", ck, "-objective", "mle", "-split", "train", "-json", filepath.Join(t.TempDir(), "r.json"))
	if r2.Checkpoint != ck || r2.Objective != "mle" || r2.Split != "train" || r2.Episodes != 200 || r2.Loss != r2.NLL {
		t.Fatalf("report %+v", r2)
	}

	// -data: a JSONL file, all of it.
	tr, _, err := data.ArithSplits(data.ArithConfig{Digits: 2, Base: 10, Op: "mixed", NTrain: 10, NTest: 1, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	var eps []data.Episode
	for _, p := range tr {
		eps = append(eps, p.Episode())
	}
	jsonl := filepath.Join(t.TempDir(), "held.jsonl")
	if err := data.WriteJSONL(jsonl, eps); err != nil {
		t.Fatal(err)
	}
	r3 := runEvalJSON(t, "-ckpt", run, "-data", jsonl)
	if r3.Split != "all" || r3.Episodes != 10 || r3.Sequences != 10 || !(r3.NLL > 0) {
		t.Fatalf("report %+v", r3)
	}

	// fit -init from the run: starts from its weights (same vocabulary,
	// nothing grown) and trains on.
	run2 := filepath.Join(t.TempDir(), "run2")
	code, out, errb := runCLI(tinyFit(run2, "4", "-init", run, "-lr", "0", "-min_lr", "0")...)
	if code != 0 {
		t.Fatalf("fit -init: exit %d: %s", code, errb)
	}
	if !strings.Contains(out, "init: "+ck) {
		t.Fatalf("fit -init did not say where it started:\n%s", out)
	}
	// With lr 0 the weights are the initial checkpoint's, so the new
	// run's validation loss equals the old run's.
	l2, c2 := lastVal(t, run2)
	if c2["nll"] != wantComps["nll"] {
		t.Fatalf("fit -init with lr 0: val nll %v, the checkpoint's %v (loss %v vs %v)", c2["nll"], wantComps["nll"], l2, wantLoss)
	}
	a, err := model.Load(ck, model.F32)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Load(filepath.Join(run2, "ckpt-00000004"), model.F32)
	if err != nil {
		t.Fatal(err)
	}
	if a.Cfg != b.Cfg {
		t.Fatalf("config changed: %+v -> %+v", a.Cfg, b.Cfg)
	}
}

func TestEvalErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval"}, 2, "-ckpt is required"},
		{[]string{"eval", "-ckpt", t.TempDir(), "-split", "some"}, 2, "-split"},
		{[]string{"eval", "-ckpt", t.TempDir()}, 1, "neither a checkpoint folder"},
		{[]string{"eval", "-ckpt", filepath.Join(t.TempDir(), "missing")}, 1, "missing"},
	}
	for _, c := range cases {
		code, _, errb := runCLI(c.args...)
		if code != c.code || !strings.Contains(errb, c.want) {
			t.Errorf("smtrain %s: exit %d stderr %q, want %d with %q", strings.Join(c.args, " "), code, errb, c.code, c.want)
		}
	}
}

// TestEvalDecodeBackspace: -decode N samples N replies to the scored
// prompts and reports the backspace diagnostics in the JSON and on stderr.
func TestEvalDecodeBackspace(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if code, _, errb := runCLI(tinyFit(run, "6", "-objective", "bc", "-eta", "0.3", "-noise_kind", "policy", "-arith_reversed")...); code != 0 {
		t.Fatalf("fit: %s", errb)
	}
	code, out, errb := runCLI("eval", "-ckpt", run, "-decode", "7")
	if code != 0 {
		t.Fatalf("eval -decode: %d %s", code, errb)
	}
	var rep struct {
		Backspace map[string]any `json:"backspace"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Backspace["replies"] != float64(7) {
		t.Fatalf("backspace.replies = %v, want 7 (%v)", rep.Backspace["replies"], rep.Backspace)
	}
	em, ok := rep.Backspace["exact_match"].(float64)
	if !ok || em < 0 || em > 1 {
		t.Fatalf("exact_match %v", rep.Backspace["exact_match"])
	}
	if !strings.Contains(errb, "7 replies at T=1") || !strings.Contains(errb, "⌫ recall") {
		t.Fatalf("no diagnostics line on stderr: %q", errb)
	}
	if code, _, errb := runCLI("eval", "-ckpt", run, "-decode", "-1"); code != 2 || !strings.Contains(errb, "-decode") {
		t.Fatalf("-decode -1: %d %s", code, errb)
	}
}

// TestFitAndEvalStringTask: fit and eval run the sort task (config task
// sort builds its questions, eval -decode checks replies against them).
func TestFitAndEvalStringTask(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	args := tinyFit(run, "4", "-objective", "bc", "-eta", "0.2", "-noise_kind", "unigram")
	args[2] = "sort" // -task sort instead of arith
	if code, _, errb := runCLI(args...); code != 0 {
		t.Fatalf("fit -task sort: %s", errb)
	}
	code, out, errb := runCLI("eval", "-ckpt", run, "-decode", "5")
	if code != 0 || !strings.Contains(out, `"sort 3-6 symbols over \"abcdefgh\""`) {
		t.Fatalf("eval of a sort run: %d %s\n%s", code, errb, out)
	}
}
