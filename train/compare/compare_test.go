package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/train"
)

func TestMeanSEByHand(t *testing.T) {
	// xs = 1,2,3,4: mean 2.5; squared deviations 2.25+0.25+0.25+2.25 = 5;
	// sample variance 5/3; s = 1.2909944; SE = s/√4 = 0.6454972.
	m, se, ok := MeanSE([]float64{1, 2, 3, 4})
	if !ok || m != 2.5 || math.Abs(se-0.6454972243679028) > 1e-12 {
		t.Fatalf("MeanSE(1,2,3,4) = %v, %v, %v; want 2.5, 0.6454972, true", m, se, ok)
	}
	// Two values 0.5 and 0.7: s = 0.1414214, SE = 0.1.
	m, se, ok = MeanSE([]float64{0.5, 0.7})
	if !ok || math.Abs(m-0.6) > 1e-15 || math.Abs(se-0.1) > 1e-12 {
		t.Fatalf("MeanSE(0.5,0.7) = %v, %v; want 0.6, 0.1", m, se)
	}
	if m, _, ok := MeanSE([]float64{3}); ok || m != 3 {
		t.Fatalf("one value: mean %v ok %v; want 3 and no standard error", m, ok)
	}
	// Summarise groups by objective and noise and fills Stat.
	rows := []Row{
		{Objective: "mle", Seed: 1, Noise: 0, Metrics: map[string]float64{"acc": 1}},
		{Objective: "mle", Seed: 2, Noise: 0, Metrics: map[string]float64{"acc": 2}},
		{Objective: "mle", Seed: 3, Noise: 0, Metrics: map[string]float64{"acc": 3}},
		{Objective: "mle", Seed: 4, Noise: 0, Metrics: map[string]float64{"acc": 4}},
		{Objective: "bc", Seed: 1, Noise: 0, Metrics: map[string]float64{"acc": 9}},
	}
	s := Summarise(rows, nil, []string{"mle", "bc"}, []float64{0})
	if len(s) != 2 || s[0].Metrics["acc"].N != 4 || s[0].Metrics["acc"].Mean != 2.5 ||
		math.Abs(*s[0].Metrics["acc"].SE-0.6454972243679028) > 1e-12 || s[1].Metrics["acc"].SE != nil {
		t.Fatalf("Summarise = %+v", s)
	}
}

func TestScoreArithHandMade(t *testing.T) {
	tok := data.ArithTokenizer()
	bk, end, eos := tok.BkspcID(), tok.EndID(), tok.EOSID()
	stop := []int32{eos, end}
	ids := func(s string) []int32 { return tok.EncodeOrdinary(s) }
	cat := func(parts ...[]int32) []int32 {
		var out []int32
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	p := data.ArithProblem{A: 12, B: 35, Op: '+', Question: "12+35=", Answer: "47"}
	ps := []data.ArithProblem{p, p, p, p, p, p}
	rs := []decode.Result{
		// "4 8 ⌫ 7 <end>": final text 47, correct, one backspace.
		{Actions: cat(ids("48"), []int32{bk}, ids("7"), []int32{end}), Tokens: ids("47")},
		// "4 7 <end>": correct, no backspace.
		{Actions: cat(ids("47"), []int32{end}), Tokens: ids("47")},
		// "4 7 ⌫ <end>": final text 4, wrong although 47 was typed.
		{Actions: cat(ids("47"), []int32{bk, end}), Tokens: ids("4")},
		// "4 7 7 ⌫ ⌫ ⌫ 4 7" without a stop token (cap): not counted correct.
		{Actions: cat(ids("477"), []int32{bk, bk, bk}, ids("47")), Tokens: ids("47"), HitCap: true},
		// "3 ⌫ 4 7 <eos>": correct with the other stop token.
		{Actions: cat(ids("3"), []int32{bk}, ids("47"), []int32{eos}), Tokens: ids("47")},
		// "4 7 <end>" reported with tokens "4": inconsistent, never correct.
		{Actions: cat(ids("47"), []int32{end}), Tokens: ids("4")},
	}
	s := ScoreArith(ps, rs, bk, stop, tok.Decode)
	want := ArithScore{N: 6, Correct: 3, Actions: 5 + 3 + 4 + 8 + 5 + 3, Bkspc: 1 + 1 + 3 + 1, UsedBkspc: 4, HitCap: 1, Inconsistent: 1}
	if s != want {
		t.Fatalf("ScoreArith = %+v\nwant          %+v", s, want)
	}
	if a := s.Accuracy(); a != 0.5 {
		t.Fatalf("accuracy %v, want 0.5", a)
	}
}

func TestTextMetricsByHand(t *testing.T) {
	s := [][]int32{{1, 2, 1, 2}, {3}}
	// unigrams: 1,2,1,2,3 -> 3 distinct of 5
	if d := Distinct(s, 1); d != 0.6 {
		t.Fatalf("distinct-1 %v, want 0.6", d)
	}
	// bigrams: (1,2),(2,1),(1,2) -> 2 distinct of 3
	if d := Distinct(s, 2); math.Abs(d-2.0/3) > 1e-15 {
		t.Fatalf("distinct-2 %v, want 2/3", d)
	}
	// rep-2: sample 1 has 3 bigrams, 2 distinct -> 1/3; sample 2 has none (skipped)
	if r := Repetition(s, 2); math.Abs(r-1.0/3) > 1e-15 {
		t.Fatalf("rep-2 %v, want 1/3", r)
	}
}

// tinySpec is a comparison small enough for -short: 1-digit sums, a
// 1-layer 16-wide model, a few steps.
func tinySpec(t *testing.T, out string, parallel int) (Spec, *ArithTask) {
	t.Helper()
	task, err := NewArithTask(data.ArithConfig{Digits: 1, Base: 10, Op: "add", NTrain: 40, NTest: 12, Seed: 3}, 8)
	if err != nil {
		t.Fatal(err)
	}
	task.BatchSize = 5
	c := train.DefaultConfig()
	c.Task = "arith"
	c.NLayer, c.NHead, c.NEmbd, c.NPositions = 1, 2, 16, 32
	c.Steps, c.BatchSize, c.WarmupSteps = 8, 4, 2
	c.EvalEvery, c.EvalBatches, c.EvalSamples = 4, 0, 0
	c.CkptEvery, c.LogEvery, c.KeepLast = 4, 1, 1
	c.WarmStart, c.ReplayEvery, c.ReplaySamples, c.ReplayBatch, c.ReplayMaxNew = 2, 3, 4, 2, 6
	c.Progress = "off"
	return Spec{Objectives: []string{"mle", "chi2mix"}, Seeds: []int64{1}, Noise: []float64{0.1},
		Base: c, Out: out, Parallel: parallel, Command: "smtrain compare -test"}, task
}

func TestCompareEndToEndAndResume(t *testing.T) {
	dir := t.TempDir()
	spec, task := tinySpec(t, dir, 2)
	var log bytes.Buffer
	spec.Log = &log
	res, err := Run(context.Background(), spec, task)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if res.Counts != (Counts{Runs: 2, Trained: 2, Evaluated: 2}) {
		t.Fatalf("counts %+v", res.Counts)
	}
	// results.json: valid JSON, one row per objective × seed × noise,
	// every arith metric present and in range.
	b, err := os.ReadFile(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var got Results
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(got.Rows) != 2 || got.Rows[0].Objective != "mle" || got.Rows[1].Objective != "chi2mix" {
		t.Fatalf("rows %+v", got.Rows)
	}
	for _, r := range got.Rows {
		if r.Steps != 8 {
			t.Errorf("row %s: %d steps, want 8", r.Run, r.Steps)
		}
		for _, m := range task.Metrics() {
			v, ok := r.Metrics[m.Key]
			undefinedOK := strings.HasPrefix(m.Key, "bk_recall") || strings.HasPrefix(m.Key, "bk_precision") || strings.HasPrefix(m.Key, "first_div_pos")
			if (!ok && !undefinedOK) || math.IsNaN(v) { // ratios without a denominator (no ⌫, nothing diverged) are left out
				t.Errorf("row %s: metric %s missing or NaN (%v)", r.Run, m.Key, v)
			}
			if strings.HasPrefix(m.Key, "acc") && (v < 0 || v > 1) {
				t.Errorf("row %s: %s = %v out of [0,1]", r.Run, m.Key, v)
			}
		}
		if r.Metrics["test_nll"] <= 0 || math.Abs(r.Metrics["test_ppl"]-math.Exp(r.Metrics["test_nll"])) > 1e-9*r.Metrics["test_ppl"] {
			t.Errorf("row %s: nll %v ppl %v", r.Run, r.Metrics["test_nll"], r.Metrics["test_ppl"])
		}
	}
	if len(got.Summary) != 2 {
		t.Fatalf("summary %+v", got.Summary)
	}
	rep, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"smtrain compare -test", "| mle | 0.1 | 1 |", "| chi2mix | 0.1 | 1 |", "acc_sample_bk_vs_noise.png", "loss_chi2mix.png"} {
		if !strings.Contains(string(rep), want) {
			t.Errorf("report.md lacks %q:\n%s", want, rep)
		}
	}
	for _, name := range []string{"loss_mle.png", "loss_chi2mix.png", "val_nll.png", "acc_sample_bk_vs_noise.png", "acc_greedy_nobk_vs_noise.png"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width < 100 || cfg.Height < 100 {
			t.Errorf("%s: not a PNG plot (%v, %dx%d)", name, err, cfg.Width, cfg.Height)
		}
	}

	// A second invocation reuses both runs: nothing trained or evaluated,
	// the stored results are untouched (same mtime and bytes).
	rp := filepath.Join(dir, "runs", "chi2mix-s1-eta0.1", RunResultFile)
	st0, err := os.Stat(rp)
	if err != nil {
		t.Fatal(err)
	}
	b0, _ := os.ReadFile(rp)
	res2, err := Run(context.Background(), spec, task)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Counts != (Counts{Runs: 2, Skipped: 2}) {
		t.Fatalf("second run counts %+v, want 2 skipped", res2.Counts)
	}
	st1, _ := os.Stat(rp)
	b1, _ := os.ReadFile(rp)
	if !st1.ModTime().Equal(st0.ModTime()) || !bytes.Equal(b0, b1) {
		t.Fatalf("finished run's result was rewritten")
	}
	for i := range res.Rows {
		if res2.Rows[i].Metrics["acc_sample_bk"] != res.Rows[i].Metrics["acc_sample_bk"] {
			t.Fatalf("reused row differs")
		}
	}

	// Another configuration in the same folder is refused.
	spec.Base.LR = 2e-3
	if _, err := Run(context.Background(), spec, task); err == nil || !strings.Contains(err.Error(), "another configuration") {
		t.Fatalf("changed config: err %v, want a refusal", err)
	}
}

// stopAt cancels a context once a step has finished.
type stopAt struct {
	step   int
	cancel context.CancelFunc
}

func (s stopAt) AfterStep(_ context.Context, _ *train.Trainer, i *train.StepInfo) error {
	if i.Step == s.step {
		s.cancel()
	}
	return nil
}

func TestInterruptedRunResumes(t *testing.T) {
	dir := t.TempDir()
	spec, task := tinySpec(t, dir, 1)
	spec.Objectives = []string{"chi2mix"}
	runs, _, err := spec.plan()
	if err != nil || len(runs) != 1 {
		t.Fatal(runs, err)
	}
	// Interrupt the planned run after step 3, as SIGINT would.
	tr, err := train.New(runs[0].cfg, task.Inputs(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.AddHook(stopAt{step: 3, cancel: cancel})
	if err := tr.Run(ctx); err != train.ErrInterrupted {
		t.Fatalf("interrupted run: %v", err)
	}
	res, err := Run(context.Background(), spec, task)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts != (Counts{Runs: 1, Resumed: 1, Evaluated: 1}) || res.Rows[0].Steps != 8 {
		t.Fatalf("counts %+v steps %d, want one resumed run at step 8", res.Counts, res.Rows[0].Steps)
	}
	// The resumed run equals an uninterrupted one (bit-exact resume).
	dir2 := t.TempDir()
	spec2, task2 := tinySpec(t, dir2, 1)
	spec2.Objectives = []string{"chi2mix"}
	res2, err := Run(context.Background(), spec2, task2)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range res2.Rows[0].Metrics {
		if res.Rows[0].Metrics[k] != v {
			t.Errorf("metric %s: resumed %v, uninterrupted %v", k, res.Rows[0].Metrics[k], v)
		}
	}
}

func TestResultsIndependentOfParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the tiny comparison twice more")
	}
	var rows [2][]Row
	for i, p := range []int{1, 2} {
		spec, task := tinySpec(t, t.TempDir(), p)
		res, err := Run(context.Background(), spec, task)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = res.Rows
	}
	for i := range rows[0] {
		for k, v := range rows[0][i].Metrics {
			if rows[1][i].Metrics[k] != v {
				t.Errorf("%s %s: parallel 1 %v, parallel 2 %v", rows[0][i].Run, k, v, rows[1][i].Metrics[k])
			}
		}
	}
}

func TestSpecValidate(t *testing.T) {
	spec, _ := tinySpec(t, t.TempDir(), 1)
	for name, mut := range map[string]func(*Spec){
		"no objectives": func(s *Spec) { s.Objectives = nil },
		"unknown":       func(s *Spec) { s.Objectives = []string{"chi3"} },
		"duplicate":     func(s *Spec) { s.Objectives = []string{"mle", "mle"} },
		"noise":         func(s *Spec) { s.Noise = []float64{1.5} },
		"parallel":      func(s *Spec) { s.Parallel = 0 },
		"seeds":         func(s *Spec) { s.Seeds = nil },
	} {
		s := spec
		mut(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// mle is trained once per seed and shared across noise levels.
	spec.Noise = []float64{0, 0.05, 0.1}
	runs, rows, err := spec.plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 || len(rows) != 6 {
		t.Fatalf("%d runs %d rows, want 4 runs (mle + 3 chi2mix) and 6 rows", len(runs), len(rows))
	}
	// NAME+env runs get the spec's environments, and only they; without
	// environments the label is refused.
	spec.Noise = []float64{0.1}
	spec.Objectives = []string{"chi2mix", "chi2mix+env"}
	if err := spec.Validate(); err == nil {
		t.Error("chi2mix+env without environments: accepted")
	}
	spec.EnvReplay = []string{"builtin:all"}
	runs, _, err = spec.plan()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		env := strings.Contains(r.name, "+env")
		if got := len(r.cfg.ReplayEnv) > 0; got != env || r.cfg.Objective != "chi2mix" {
			t.Errorf("run %s: objective %s, replay_env %v", r.name, r.cfg.Objective, r.cfg.ReplayEnv)
		}
	}
}

func TestTextTaskEndToEnd(t *testing.T) {
	var eps []data.Episode
	words := []string{"the", "cat", "sat", "on", "a", "mat", "and", "ran"}
	for i := 0; i < 24; i++ {
		q := words[i%8] + " " + words[(i*3)%8]
		a := words[(i*5)%8] + " " + words[(i+1)%8] + " " + words[(i*7)%8]
		eps = append(eps, data.Episode{Messages: []data.Message{{Role: data.RoleUser, Content: q}, {Role: data.RoleAssistant, Content: a}}, Reward: 1})
	}
	task, err := NewTextTask(train.Inputs{Train: eps, Tokenizer: data.ByteTokenizer(), Describe: "toy chats"}, 0.25, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Inputs().Val) != 6 || len(task.Inputs().Train) != 18 {
		t.Fatalf("split %d/%d, want 18/6", len(task.Inputs().Train), len(task.Inputs().Val))
	}
	spec, _ := tinySpec(t, t.TempDir(), 1)
	spec.Base.NPositions = 64
	spec.Objectives = []string{"mle", "bc"}
	res, err := Run(context.Background(), spec, task)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		for _, m := range task.Metrics() {
			// ratios without a denominator (no ⌫, an empty bin) are left out
			undefinedOK := strings.Contains(m.Key, "bk_recall") || strings.Contains(m.Key, "bk_precision") || strings.HasPrefix(m.Key, "bk_after_")
			if v, ok := r.Metrics[m.Key]; (!ok && !undefinedOK) || math.IsNaN(v) {
				t.Errorf("%s: metric %s = %v", r.Run, m.Key, v)
			}
		}
		sum := 0.0
		for _, k := range train.BinKeys() {
			sum += r.Metrics["pushed_"+k]
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("%s: pushed-token bin shares sum to %v", r.Run, sum)
		}
		if em := r.Metrics["exact_match"]; em < 0 || em > 1 {
			t.Errorf("%s: exact match %v", r.Run, em)
		}
		if d := r.Metrics["distinct_1"]; d <= 0 || d > 1 {
			t.Errorf("%s: distinct-1 %v", r.Run, d)
		}
	}
}

func TestPairedDiffAndLabels(t *testing.T) {
	rows := []Row{
		{Objective: "mle", Seed: 1, Metrics: map[string]float64{"acc": 0.5}},
		{Objective: "mle", Seed: 2, Metrics: map[string]float64{"acc": 0.6}},
		{Objective: "mle", Seed: 3, Metrics: map[string]float64{"acc": 0.7}},
		{Objective: "bc:policy", Seed: 1, Metrics: map[string]float64{"acc": 0.6}},
		{Objective: "bc:policy", Seed: 2, Metrics: map[string]float64{"acc": 0.9}},
		{Objective: "bc:policy", Seed: 3, Metrics: map[string]float64{"acc": math.NaN()}}, // left out
		{Objective: "chi2mix:policy", Seed: 1, Metrics: map[string]float64{"acc": 0.4}},
		{Objective: "chi2mix:policy", Seed: 2, Metrics: map[string]float64{"acc": 0.9}},
	}
	p := PairedDiff(rows, "acc", "bc:policy", "mle", 0)
	// differences 0.1 and 0.3: mean 0.2, s.d. 0.1414, s.e. 0.1
	if p.Stat.N != 2 || math.Abs(p.Stat.Mean-0.2) > 1e-12 || p.Stat.SE == nil || math.Abs(*p.Stat.SE-0.1) > 1e-12 || p.Higher != 2 {
		t.Fatalf("paired bc:policy − mle = %+v (se %v)", p, p.Stat.SE)
	}
	ps := PairedDiffs(rows, "acc", []string{"mle", "bc:policy", "chi2mix:policy"}, []float64{0})
	var pairs []string
	for _, x := range ps {
		pairs = append(pairs, x.A+"-"+x.B)
	}
	if strings.Join(pairs, ",") != "bc:policy-mle,chi2mix:policy-mle,chi2mix:policy-bc:policy" {
		t.Fatalf("pairs %v", pairs)
	}
	if n, k, e, err := SplitLabel("chi2mix:unigram+env"); err != nil || n != "chi2mix" || k != "unigram" || !e {
		t.Fatalf("SplitLabel(chi2mix:unigram+env) = %q %q %v %v", n, k, e, err)
	}
	if n, k, e, err := SplitLabel("chi2mix:unigram"); err != nil || n != "chi2mix" || k != "unigram" || e {
		t.Fatalf("SplitLabel = %q %q %v", n, k, err)
	}
	if _, _, _, err := SplitLabel("bc:digits"); err == nil {
		t.Fatal("an unknown noise kind was accepted")
	}
	if got := RunName("bc:policy", 3, 0.1, true); got != "bc-policy-s3-eta0.1" {
		t.Fatalf("RunName = %q", got)
	}
	s := Spec{Objectives: []string{"mle:policy"}, Seeds: []int64{1}, Noise: []float64{0.1}, Out: "x", Parallel: 1, Base: train.DefaultConfig()}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "does not train on noise") {
		t.Fatalf("mle:policy: %v", err)
	}
}
