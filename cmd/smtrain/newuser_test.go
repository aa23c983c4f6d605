package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smtrain/train"
)

// countLines returns the number of lines of a file.
func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestFitRefusesExistingRun: fit without -resume into a folder holding a
// run changes nothing and names -resume and -overwrite; -overwrite deletes
// the old run's files (no stale checkpoint stays beside the new ones).
func TestFitRefusesExistingRun(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if code, _, errb := runCLI(tinyFit(run, "6", "-ckpt_every", "3")...); code != 0 {
		t.Fatalf("fit: exit %d: %s", code, errb)
	}
	metrics := filepath.Join(run, "metrics.jsonl")
	before := countLines(t, metrics)
	cfgBefore, _ := os.ReadFile(filepath.Join(run, "config.json"))

	code, _, errb := runCLI(tinyFit(run, "2", "-seed", "7")...)
	if code != 1 || !strings.Contains(errb, "-resume") || !strings.Contains(errb, "-overwrite") {
		t.Fatalf("second fit: exit %d stderr %q, want 1 naming -resume and -overwrite", code, errb)
	}
	if got := countLines(t, metrics); got != before {
		t.Fatalf("metrics.jsonl %d -> %d lines after a refused run", before, got)
	}
	if cfgAfter, _ := os.ReadFile(filepath.Join(run, "config.json")); string(cfgAfter) != string(cfgBefore) {
		t.Fatal("config.json changed by a refused run")
	}

	if code, _, errb := runCLI(tinyFit(run, "2", "-overwrite", "-ckpt_every", "0")...); code != 0 {
		t.Fatalf("fit -overwrite: exit %d: %s", code, errb)
	}
	ents, _ := os.ReadDir(run)
	var ckpts []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "ckpt-") {
			ckpts = append(ckpts, e.Name())
		}
	}
	if len(ckpts) != 1 || ckpts[0] != "ckpt-00000002" {
		t.Fatalf("after -overwrite the run folder holds %v, want only ckpt-00000002", ckpts)
	}
	if code, _, _ := runCLI(tinyFit(run, "2", "-overwrite", "-resume")...); code != 2 {
		t.Fatalf("-resume with -overwrite: exit %d, want 2", code)
	}
}

// TestFitWarnsWarmStartNeverLeft: a SequenceMatch run shorter than its BC
// warm start says so at start (it trains pure BC); MLE runs do not warn.
func TestFitWarnsWarmStartNeverLeft(t *testing.T) {
	dir := t.TempDir()
	code, out, errb := runCLI(tinyFit(filepath.Join(dir, "a"), "3", "-warm_start", "10")...)
	if code != 0 {
		t.Fatalf("fit: exit %d: %s", code, errb)
	}
	if !strings.Contains(out, "never leaves its BC warm start (warm_start 10 >= steps 3)") {
		t.Fatalf("no warm-start warning:\n%s", out)
	}
	code, out, errb = runCLI(tinyFit(filepath.Join(dir, "b"), "3", "-warm_start", "10", "-objective", "mle")...)
	if code != 0 {
		t.Fatalf("fit: exit %d: %s", code, errb)
	}
	if strings.Contains(out, "warm start") {
		t.Fatalf("mle run warns about a warm start:\n%s", out)
	}
}

// writeEpisodes writes n one-turn JSONL chat episodes.
func writeEpisodes(t *testing.T, path string, n int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		b.WriteString(`{"messages":[{"role":"user","content":"add ` + strings.Repeat("1", i%5+1) + `"},{"role":"assistant","content":"done"}],"reward":1}` + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSmallDatasets: one episode trains with a warning that nothing is
// held out and eval's error says what to pass instead; too few sequences
// for a batch name the batch size that would work.
func TestSmallDatasets(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.jsonl")
	writeEpisodes(t, one, 1)
	small := []string{"-n_positions", "32", "-n_layer", "1", "-n_embd", "16", "-n_head", "1", "-eval_every", "0",
		"-eval_samples", "0", "-replay_every", "0", "-progress", "off", "-steps", "2", "-objective", "mle"}
	run := filepath.Join(dir, "run1")
	code, out, errb := runCLI(append([]string{"fit", "-data", one, "-out", run, "-batch_size", "1"}, small...)...)
	if code != 0 {
		t.Fatalf("fit on one episode: exit %d: %s", code, errb)
	}
	if !strings.Contains(out, "warning: no validation episodes") {
		t.Fatalf("no warning about the empty validation split:\n%s", out)
	}
	code, _, errb = runCLI("eval", "-ckpt", run)
	if code != 1 || !strings.Contains(errb, "-split all") {
		t.Fatalf("eval of a run without val episodes: exit %d stderr %q, want 1 naming -split all", code, errb)
	}

	eight := filepath.Join(dir, "eight.jsonl")
	writeEpisodes(t, eight, 8)
	code, _, errb = runCLI(append([]string{"fit", "-data", eight, "-out", filepath.Join(dir, "run8")}, small...)...)
	if code != 1 || !strings.Contains(errb, "lower -batch_size to at most 7") {
		t.Fatalf("fit on 8 episodes with batch 8: exit %d stderr %q, want a hint naming -batch_size", code, errb)
	}
}

// TestConfigErrorsSameShape: a bad value in a config file exits 1 naming
// the file and line (like a type error there); the same value as a flag
// is a usage error (exit 2) naming the flag. eval has no flags for
// training-only keys.
func TestConfigErrorsSameShape(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ text, want string }{
		{"steps: -5\n", "exp.yaml:1: key steps: must be positive"},
		{"steps: 5.7\n", "exp.yaml:1: key steps: expected an integer"},
	} {
		p := filepath.Join(dir, "exp.yaml")
		os.WriteFile(p, []byte(c.text), 0o644)
		code, _, errb := runCLI("fit", "-config", p, "-out", filepath.Join(dir, "run"))
		if code != 1 || !strings.Contains(errb, c.want) || strings.Contains(errb, "usage:") {
			t.Errorf("%q: exit %d stderr %q, want 1 with %q", c.text, code, errb, c.want)
		}
	}
	code, _, errb := runCLI("fit", "-steps", "-5", "-out", filepath.Join(dir, "run"))
	if code != 2 || !strings.Contains(errb, "flag -steps: must be positive") {
		t.Errorf("-steps -5: exit %d stderr %q", code, errb)
	}
	code, _, errb = runCLI("fit", "-min_reward", "NaN", "-out", filepath.Join(dir, "run"))
	if code != 2 || !strings.Contains(errb, "min_reward") {
		t.Errorf("-min_reward NaN: exit %d stderr %q", code, errb)
	}
	code, _, errb = runCLI("eval", "-ckpt", dir, "-beta2", "0.9")
	if code != 2 || !strings.Contains(errb, "beta2") {
		t.Errorf("eval -beta2: exit %d stderr %q, want a usage error", code, errb)
	}
}

// TestDemoFlags: the demo's fit command overrides only what differs from
// fit's defaults (no redundant flags) and does not force the progress bar
// (make demo > log wrote hundreds of carriage returns).
func TestDemoFlags(t *testing.T) {
	b, err := os.ReadFile("../../scripts/demo.sh")
	if err != nil {
		t.Skip("no scripts/demo.sh")
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var fit []string
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "$BIN" && f[1] == "fit" {
			fit = f[2:]
		}
	}
	if len(fit) == 0 {
		t.Fatal("no fit command in demo.sh")
	}
	def := map[string]string{}
	fs := cmdFit.NewFlagSet(io.Discard)
	train.BindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) { def[f.Name] = f.DefValue })
	for i := 0; i+1 < len(fit); i += 2 {
		name, val := strings.TrimPrefix(fit[i], "-"), fit[i+1]
		if name == "progress" {
			t.Errorf("demo.sh forces -progress %s", val)
		}
		if d, ok := def[name]; ok && d == val {
			t.Errorf("demo.sh sets -%s %s, fit's default", name, val)
		}
	}
}

// TestSkippedInputsNamed: fit -skip_bad names the first skipped inputs
// with file and line on the console and lists all of them in
// OUT/skipped.txt; data stats -json lists them with their sources (it had
// only grouped reasons without file names).
func TestSkippedInputsNamed(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mixed.jsonl")
	var b strings.Builder
	for i := range 16 {
		if i%2 == 1 {
			b.WriteString(`{"messages":[{"role":"robot","content":"x"}]}` + "\n")
			continue
		}
		b.WriteString(`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"an answer"}],"reward":1}` + "\n")
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	run := filepath.Join(dir, "run")
	code, _, errb := runCLI("fit", "-data", p, "-skip_bad", "-out", run, "-steps", "1", "-batch_size", "2", "-n_positions", "32",
		"-n_layer", "1", "-n_embd", "16", "-n_head", "1", "-objective", "mle", "-eval_every", "0", "-eval_samples", "0", "-progress", "off")
	if code != 0 {
		t.Fatalf("fit: exit %d: %s", code, errb)
	}
	if n := strings.Count(errb, "skipped: "+p+":"); n != 5 || !strings.Contains(errb, "and 3 more (8 in all; all in "+filepath.Join(run, "skipped.txt")) {
		t.Fatalf("console names %d skipped inputs:\n%s", n, errb)
	}
	all, err := os.ReadFile(filepath.Join(run, "skipped.txt"))
	if err != nil || strings.Count(string(all), p+":") != 8 {
		t.Fatalf("skipped.txt: %v\n%s", err, all)
	}
	code, out, errb := runCLI("data", "stats", "-data", p, "-skip_bad", "-json")
	if code != 0 {
		t.Fatalf("data stats: exit %d: %s", code, errb)
	}
	var st struct {
		Skipped []struct{ Source, Error string } `json:"skipped_inputs"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Skipped) != 8 || !strings.HasPrefix(st.Skipped[0].Source, p) {
		t.Fatalf("data stats -json skipped_inputs %+v (%v)", st.Skipped, err)
	}
}

// TestInvalidUTF8Reported: bytes that are not UTF-8 are counted and named
// per file by fit and data convert (they were silently read as U+FFFD),
// and -strict_utf8 makes them an error naming the file and offset.
func TestInvalidUTF8Reported(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "latin1.jsonl")
	var b strings.Builder
	for range 4 {
		b.WriteString("{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"},{\"role\":\"assistant\",\"content\":\"ok \xff\xfe\"}]}\n")
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	code, _, errb := runCLI("data", "convert", "-data", p, "-out", filepath.Join(dir, "out.jsonl"))
	if code != 0 || !strings.Contains(errb, p+": 12 invalid UTF-8 sequences (first at byte 42)") {
		t.Fatalf("data convert: exit %d stderr %q", code, errb)
	}
	code, _, errb = runCLI("data", "convert", "-strict_utf8", "-data", p, "-out", filepath.Join(dir, "out2.jsonl"))
	if code != 1 || !strings.Contains(errb, p+": byte 42: not UTF-8") {
		t.Fatalf("data convert -strict_utf8: exit %d stderr %q", code, errb)
	}
	small := []string{"-n_positions", "32", "-n_layer", "1", "-n_embd", "16", "-n_head", "1", "-eval_every", "0",
		"-eval_samples", "0", "-progress", "off", "-steps", "1", "-objective", "mle", "-batch_size", "2"}
	code, _, errb = runCLI(append([]string{"fit", "-data", p, "-out", filepath.Join(dir, "run")}, small...)...)
	if code != 0 || !strings.Contains(errb, "12 invalid UTF-8 sequences") {
		t.Fatalf("fit: exit %d stderr %q", code, errb)
	}
	code, _, errb = runCLI(append([]string{"fit", "-strict_utf8", "-data", p, "-out", filepath.Join(dir, "run2")}, small...)...)
	if code != 1 || !strings.Contains(errb, "not UTF-8") {
		t.Fatalf("fit -strict_utf8: exit %d stderr %q", code, errb)
	}
}

// TestCosmetics16: -log_every's help matches what metrics.jsonl holds (a
// line per step), sample -json always has actions_text, eval notes that λ
// is 0 during the warm start, and -resume with more steps must say
// -reschedule (it silently restarted the learning-rate schedule).
func TestCosmetics16(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if code, _, errb := runCLI(tinyFit(run, "6", "-log_every", "3", "-warm_start", "100")...); code != 0 {
		t.Fatalf("fit: %d %s", code, errb)
	}
	b, _ := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	if n := strings.Count(string(b), `"split":"train"`); n != 6 {
		t.Fatalf("%d train lines in metrics.jsonl for 6 steps", n)
	}
	var help bytes.Buffer
	_ = cmdFit.Run(context.Background(), []string{"-h"}, &help, &help)
	if !strings.Contains(help.String(), "metrics.jsonl records every step") {
		t.Fatal("-log_every help does not say metrics.jsonl has every step")
	}
	code, out, errb := runCLI("sample", "-ckpt", run, "-prompt", "1+1=", "-max_new", "4", "-json")
	if code != 0 || !strings.Contains(out, `"actions_text":"`) || strings.Contains(out, `"actions_text":""`) {
		t.Fatalf("sample -json: %d %s %s", code, out, errb)
	}
	code, out, errb = runCLI("eval", "-ckpt", run)
	if code != 0 || !strings.Contains(out, `"note": "step 6 is within warm_start 100`) {
		t.Fatalf("eval: %d %s %s", code, out, errb)
	}
	code, _, errb = runCLI(tinyFit(run, "9", "-resume")...)
	if code != 2 || !strings.Contains(errb, "-reschedule") || !strings.Contains(errb, "at step 6 the lr goes from") {
		t.Fatalf("resume with more steps: %d %s", code, errb)
	}
	if code, _, errb = runCLI(tinyFit(run, "9", "-resume", "-reschedule")...); code != 0 {
		t.Fatalf("resume -reschedule: %d %s", code, errb)
	}
}

// TestDataStatsSaysWhenSlow: data stats on a large text says it is
// training a tokenizer and how to skip that (a 50 MB line gave no sign of
// life for 98 s).
func TestDataStatsSaysWhenSlow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.jsonl")
	text := strings.Repeat("train the model and score it ", (9<<20)/29)
	os.WriteFile(p, []byte(`{"messages":[{"role":"user","content":"`+text+`"},{"role":"assistant","content":"ok"}]}`+"\n"), 0o644)
	code, _, errb := runCLI("data", "stats", "-data", p, "-vocab", "300")
	if code != 0 || !strings.Contains(errb, "training a 300-token BPE on 9 MB of text (pass -tokenizer FILE") {
		t.Fatalf("exit %d stderr %q", code, errb)
	}
}
