package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/internal/atomicfile"
	"smtrain/model"
	"smtrain/objective"
)

// ErrInterrupted is returned by Run when its context was cancelled (SIGINT,
// SIGTERM) after a checkpoint was saved.
var ErrInterrupted = errors.New("interrupted: checkpoint saved")

// Inputs are the episodes a run trains and validates on.
type Inputs struct {
	// Train and Val are the training and validation episodes. When Val is
	// empty, Val is split off Train by cfg.ValFraction (by episode).
	Train, Val []data.Episode
	// Describe names the data source for the log.
	Describe string
	// Tokenizer, when set and no checkpoint provides one, is used instead
	// of training a BPE (e.g. the byte tokenizer of the arithmetic task).
	Tokenizer *data.Tokenizer
	// Skipped lists the inputs left out as malformed (skip_bad), one
	// "SOURCE: reason" line each; New writes them to OUT/skipped.txt.
	Skipped []string
	// EnvReplay, when set, refreshes the replay buffer with the policy's
	// own episodes in live environments (see EnvReplay).
	EnvReplay *EnvReplay
	// ReplayData are earlier policy episodes put into the replay buffer
	// at the start of a new run (cfg.ReplayData).
	ReplayData []data.Episode
}

// Trainer runs one training job.
type Trainer struct {
	cfg     Config
	out     string
	console io.Writer

	tok     *data.Tokenizer
	params  *model.Params
	opt     *AdamW[float32]
	obj     objective.Objective
	mle     objective.Objective
	train   *data.Loader
	trainSq []*data.ActionSeq
	val     []*data.ActionSeq
	replay  *data.ReplayBuffer
	prompts [][]int32
	// envReplay, when set, fills the replay buffer from live environments.
	envReplay *EnvReplay
	refs      refIndex // expert answers per prompt (replay diagnostics)

	graphs map[[2]int]*stepGraph
	ev     *Evaluator
	accum  [][]float32

	st      State
	metrics *metricsLog
	start   time.Time
	elapsed float64 // from earlier segments of the run (resume)
	bar     *progress
	hooks   []Hook

	resumed bool
}

// Hook is a caller's code run after each optimizer step, once the
// trainer's own end-of-step work is done (afterStep: log line, evaluation,
// replay refresh, checkpoint; these are not hooks). An error ends Run. The
// tests use hooks to observe steps and to cancel runs mid-way.
type Hook interface {
	AfterStep(ctx context.Context, t *Trainer, s *StepInfo) error
}

// StepInfo describes a finished optimizer step.
type StepInfo struct {
	Step       int // steps completed (1-based index of this step)
	Loss       float64
	Components map[string]float64
	LR         float64
	GradNorm   float64
	Tokens     int
	TokensPerS float64
	Skipped    bool
	Lambda     float64
}

type stepGraph struct {
	g *model.Graph
	m *model.Machine
	h *objective.Handle
}

type fwdGraph struct {
	g *model.Graph
	m *model.Machine
}

// New prepares a run: it resolves the tokenizer, model, optimizer and data,
// and (when resume is true) restores the latest checkpoint of cfg.Out.
func New(cfg Config, in Inputs, resume bool, console io.Writer) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if console == nil {
		console = io.Discard
	}
	t := &Trainer{cfg: cfg, out: cfg.Out, console: console,
		graphs: map[[2]int]*stepGraph{}}
	if !resume {
		if err := checkFreshOut(t.out); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(t.out, 0o755); err != nil {
		return nil, err
	}
	var err error
	if t.obj, err = objective.New(cfg.Objective, cfg.ObjectiveConfig()); err != nil {
		return nil, err
	}
	if t.mle, err = objective.New("mle", cfg.ObjectiveConfig()); err != nil {
		return nil, err
	}

	var ck string
	if resume {
		if ck, err = resumeCheckpoint(t.out); err != nil {
			return nil, err
		}
		if ck == "" {
			fmt.Fprintf(console, "%s holds no checkpoint yet: starting again from step 0\n", t.out)
		}
		if err := removeStaleTemps(t.out); err != nil {
			return nil, err
		}
	}
	// Tokenizer (see resolveTokenizer), then the episodes split, tokenized
	// and turned into sequences (data.Prepare).
	tok, initFrom, err := resolveTokenizer(cfg, in, ck)
	if err != nil {
		return nil, err
	}
	prep, err := data.Prepare(in.Train, in.Val, data.PrepareOptions{ValFraction: cfg.ValFraction, Seed: uint64(cfg.Seed),
		Tokenizer: tok, VocabSize: cfg.VocabSize, T: cfg.NPositions, Mode: data.SeqMode(cfg.SeqMode)})
	if err != nil {
		return nil, err
	}
	t.tok, t.trainSq, t.val = prep.Tokenizer, prep.Train, prep.Val
	trainEps, valEps := prep.TrainEps, prep.ValEps
	T := cfg.NPositions
	if len(t.trainSq) < cfg.BatchSize {
		return nil, fmt.Errorf("%d training sequences (from %d episodes), fewer than batch_size %d: lower -batch_size to at most %d, or give more episodes", len(t.trainSq), len(trainEps), cfg.BatchSize, len(t.trainSq))
	}
	t.train = &data.Loader{Seqs: t.trainSq, BatchSize: cfg.BatchSize, T: T, Seed: uint64(cfg.Seed),
		BucketBatches: 8, DropLast: true}
	for _, s := range t.trainSq {
		t.prompts = append(t.prompts, s.Prompt)
	}

	// Model (see resolveModel; with -init its shape wins over cfg's).
	if t.params, err = resolveModel(&cfg, t.tok, ck, initFrom, t.console); err != nil {
		return nil, err
	}
	t.cfg = cfg
	t.ev = newEvaluator(t.cfg, t.params, t.tok, t.obj, t.mle)
	if t.obj.Augmented() && cfg.Eta > 0 {
		t.ev.unigram = data.ActionUnigram(t.trainSq, t.tok.Specials())
		t.train.Augment = t.ev.noiseOptions(t.trainSq)
	}
	if err := t.initOptimizer(); err != nil {
		return nil, err
	}

	if err := t.initEnvReplay(in, ck != ""); err != nil {
		return nil, err
	}

	t.st = State{Schema: StateSchema, Seed: cfg.Seed, RNG: "pcg(seed, step, purpose)", MetricsOffset: 0}
	keep := int64(0)
	if ck != "" {
		if err := t.restore(ck); err != nil {
			return nil, fmt.Errorf("resume from %s: %w", ck, err)
		}
		keep = t.st.MetricsOffset
		t.resumed = true
	}
	if t.metrics, err = openMetrics(filepath.Join(t.out, MetricsFile), keep); err != nil {
		return nil, err
	}
	if err := writeRunFiles(t.out, cfg, in.Skipped); err != nil {
		return nil, err
	}
	fmt.Fprintf(t.console, "data: %s | %d train / %d val episodes -> %d / %d sequences (seq_mode %s) | vocab %d | model L%d D%d H%d T%d (%.2fM params) | objective %s\n",
		orDefault(in.Describe, "episodes"), len(trainEps), len(valEps), len(t.trainSq), len(t.val), cfg.SeqMode, t.tok.VocabSize(),
		t.params.Cfg.NLayer, t.params.Cfg.NEmbd, t.params.Cfg.NHead, T, float64(t.params.NumParams())/1e6, t.obj.Name())
	if t.resumed {
		fmt.Fprintf(t.console, "resumed from %s at step %d\n", ck, t.st.Step)
	}
	for _, w := range startWarnings(t.cfg, t.obj, len(trainEps), len(valEps), len(t.val)) {
		fmt.Fprintln(t.console, w)
	}
	return t, nil
}

// initOptimizer makes the run's AdamW, the gradient accumulators and the
// replay buffer (objectives that use one, replay_size > 0).
func (t *Trainer) initOptimizer() error {
	cfg := t.cfg
	var err error
	t.opt, err = NewAdamWFor32(AdamWConfig{LR: cfg.LR, Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, WeightDecay: cfg.WeightDecay}, t.params)
	if err != nil {
		return err
	}
	if cfg.GradAccum > 1 { // one micro-batch per step uses its graph's gradients as they are
		t.accum = make([][]float32, len(t.params.List))
		for i, p := range t.params.List {
			t.accum[i] = make([]float32, len(p.F32))
		}
	}
	if t.obj.UsesReplay() && cfg.ReplaySize > 0 {
		if t.replay, err = data.NewReplayBuffer(cfg.ReplaySize); err != nil {
			return err
		}
	}
	return nil
}

// writeRunFiles writes the run's config (ConfigOutFile) and, when inputs
// were skipped as malformed, their list (SkippedFile) into out.
func writeRunFiles(out string, cfg Config, skipped []string) error {
	cb, err := MarshalConfig(cfg)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, ConfigOutFile), cb); err != nil {
		return err
	}
	if len(skipped) > 0 {
		return atomicfile.WriteFile(filepath.Join(out, SkippedFile), []byte(strings.Join(skipped, "\n")+"\n"))
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// restore loads optimizer, state and replay buffer from a checkpoint.
func (t *Trainer) restore(ck string) error {
	st, err := readState(ck)
	if err != nil {
		return err
	}
	t.st = *st
	ost, err := model.ReadSafetensors(filepath.Join(ck, OptimizerFile))
	if err != nil {
		return err
	}
	if err := t.opt.LoadState(ost); err != nil {
		return err
	}
	if t.replay != nil {
		if rb, err := data.LoadReplayBuffer(filepath.Join(ck, ReplayFile)); err == nil {
			t.replay = rb
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	t.elapsed = st.ElapsedS
	return nil
}

// Tokenizer returns the run's tokenizer.
func (t *Trainer) Tokenizer() *data.Tokenizer { return t.tok }

// Params returns the model parameters being trained.
func (t *Trainer) Params() *model.Params { return t.params }

// Config returns the resolved configuration.
func (t *Trainer) Config() Config { return t.cfg }

// Step returns the number of optimizer steps completed.
func (t *Trainer) Step() int { return t.st.Step }

// AddHook appends a hook run after every step, after the trainer's own
// end-of-step work.
func (t *Trainer) AddHook(h Hook) { t.hooks = append(t.hooks, h) }

// rngFor derives the random stream for (step, purpose): resuming at a step
// boundary reproduces every later draw.
func (t *Trainer) rngFor(step int, purpose uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(t.cfg.Seed)^0x5eed5eed, uint64(step)<<8|purpose))
}

func (t *Trainer) stepGraphFor(B, T int) (*stepGraph, error) {
	key := [2]int{B, T}
	if g, ok := t.graphs[key]; ok {
		return g, nil
	}
	g, err := model.NewGraph(t.params, B, T)
	if err != nil {
		return nil, err
	}
	h := objective.NewHandle(int(t.tok.BkspcID()))
	loss, err := objective.NewLossNode(g.Logits, t.obj, h)
	if err != nil {
		return nil, err
	}
	m, err := g.Compile(loss)
	if err != nil {
		return nil, err
	}
	sg := &stepGraph{g: g, m: m, h: h}
	t.graphs[key] = sg
	return sg, nil
}

// compile lays out seqs in a batch of the bucketed length.
func (t *Trainer) compile(seqs []*data.ActionSeq) (*data.Batch, error) {
	return compileSeqs(seqs, t.cfg.NPositions)
}

// Close releases what New opened (metrics.jsonl, compiled graphs). Run
// closes the trainer when it returns; call Close on a Trainer that is not
// run (for example one made only to evaluate a checkpoint). It is safe to
// call more than once.
func (t *Trainer) Close() error {
	err := t.metrics.close()
	for _, g := range t.graphs {
		g.m.Close()
	}
	clear(t.graphs)
	if t.ev != nil {
		t.ev.Close()
	}
	return err
}

// Run trains until cfg.Steps, evaluating, logging and checkpointing on the
// way. When ctx is cancelled it saves a checkpoint and returns
// ErrInterrupted.
func (t *Trainer) Run(ctx context.Context) (err error) {
	t.start = time.Now()
	t.bar = newProgress(t.cfg, t.st.Step, t.console)
	defer func() {
		t.bar.finish()
		if cerr := t.Close(); err == nil {
			err = cerr
		}
	}()
	if t.st.Step == 0 && t.replay != nil && t.cfg.ReplayEvery > 0 && t.cfg.WarmStart == 0 {
		if err := t.refreshReplay(ctx); err != nil {
			return err
		}
	}
	lastTick := time.Now()
	for t.st.Step < t.cfg.Steps {
		if ctx.Err() != nil {
			if err := t.checkpoint(); err != nil {
				return fmt.Errorf("interrupted, and the checkpoint failed: %w", err)
			}
			return ErrInterrupted
		}
		info, err := t.trainStep()
		if err != nil {
			return fmt.Errorf("step %d: %w", t.st.Step+1, err)
		}
		now := time.Now()
		if dt := now.Sub(lastTick).Seconds(); dt > 0 {
			info.TokensPerS = float64(info.Tokens) / dt
		}
		lastTick = now
		if err := t.afterStep(ctx, info); err != nil {
			return err
		}
		// Time spent in evaluation/checkpoints does not count as step time.
		lastTick = time.Now()
	}
	if t.cfg.EvalEvery == 0 || t.st.Step%t.cfg.EvalEvery != 0 {
		if err := t.evaluate(ctx); err != nil {
			return err
		}
	}
	if t.cfg.CkptEvery == 0 || t.st.Step%t.cfg.CkptEvery != 0 {
		if err := t.checkpoint(); err != nil {
			return err
		}
	}
	fmt.Fprintf(t.console, "done: %d steps in %.1fs, last checkpoint %s\n", t.st.Step, t.elapsedS(), ckptDir(t.out, t.st.Step))
	return nil
}

func (t *Trainer) elapsedS() float64 { return t.elapsed + time.Since(t.start).Seconds() }

// trainStep runs one optimizer step (grad_accum micro-batches).
func (t *Trainer) trainStep() (*StepInfo, error) {
	step := t.st.Step // 0-based index of this step
	oc := t.cfg.ObjectiveConfig()
	lambda := oc.LambdaAt(step)
	lr := LRAt(step, t.cfg.WarmupSteps, t.cfg.Steps, t.cfg.LR, t.cfg.MinLR)
	for _, a := range t.accum {
		clear(a)
	}
	// grads is the step's gradient: the graph's own with one micro-batch
	// (the objective's gradient is already the mean over its tokens), the
	// token-weighted mean accumulated in t.accum with several.
	var grads [][]float32
	useG := t.replay != nil && t.replay.Len() > 0 && lambda > 0 && t.cfg.ReplayBatch > 0
	type mb struct {
		loss float64
		res  objective.Result
		n    int
	}
	var mbs []mb
	total := 0
	nonfinite := false
	for k := 0; k < t.cfg.GradAccum; k++ {
		b, err := t.nextBatch(step, k, useG)
		if err != nil {
			return nil, err
		}
		sg, err := t.stepGraphFor(b.B, b.T)
		if err != nil {
			return nil, err
		}
		if err := sg.h.Set(sg.g, b, lambda); err != nil {
			return nil, err
		}
		if err := sg.m.Step(); err != nil {
			return nil, err
		}
		n := b.NumTokens()
		loss := sg.m.Loss()
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			nonfinite = true
		}
		if t.accum == nil {
			grads = sg.m.Grads()
		} else {
			w := float32(n)
			for i, g := range sg.m.Grads() {
				a := t.accum[i]
				for j, x := range g {
					a[j] += w * x
				}
			}
			grads = t.accum
		}
		mbs = append(mbs, mb{loss: loss, res: sg.h.Result(), n: n})
		total += n
	}
	info := &StepInfo{Step: step + 1, LR: lr, Lambda: lambda, Tokens: total, Components: map[string]float64{}}
	if total > 0 {
		if t.accum != nil {
			inv := 1 / float32(total)
			for _, a := range t.accum {
				for j := range a {
					a[j] *= inv
				}
			}
		}
		for _, m := range mbs {
			f := float64(m.n) / float64(total)
			info.Loss += f * m.loss
			for k, v := range m.res.Components {
				info.Components[k] += f * v
			}
			if m.res.ClampedFrac > 0 {
				info.Components["clamped_frac"] += f * m.res.ClampedFrac
			}
		}
	}
	info.Components["lambda"] = lambda
	norm := GradNorm(grads)
	info.GradNorm = norm
	if nonfinite || math.IsNaN(norm) || math.IsInf(norm, 0) {
		info.Skipped = true
		t.st.NonFinite++
		t.st.Step++
		if t.st.NonFinite >= t.cfg.MaxNonFinite {
			return info, fmt.Errorf("%d non-finite steps in a row (loss %v, grad norm %v); stopping, the last good checkpoint is intact", t.st.NonFinite, info.Loss, norm)
		}
		return info, nil
	}
	t.st.NonFinite = 0
	clipToNorm(grads, norm, t.cfg.GradClip) // norm is GradNorm(grads)
	t.opt.LR = lr
	if err := t.opt.Update(data32(t.params), grads); err != nil {
		return nil, err
	}
	t.st.Step++
	t.st.Tokens += int64(total)
	return info, nil
}

func data32(p *model.Params) [][]float32 { return Params32(p) }

// nextBatch draws micro-batch k of step: the next expert sequences from the
// data cursor plus, when useG, generations from the replay buffer.
func (t *Trainer) nextBatch(step, k int, useG bool) (*data.Batch, error) {
	c := data.Cursor{Epoch: t.st.Cursor.Epoch, Index: t.st.Cursor.Index}
	seqs, err := t.train.NextSeqs(&c)
	if err != nil {
		return nil, err
	}
	t.st.Cursor = Cursor{Epoch: c.Epoch, Index: c.Index}
	if useG {
		g := t.replay.Sample(t.cfg.ReplayBatch, t.rngFor(step, uint64(16+k)))
		seqs = append(seqs, g...)
	}
	return t.compile(seqs)
}

// afterStep logs, evaluates, refreshes the replay buffer, checkpoints and
// runs hooks.
func (t *Trainer) afterStep(ctx context.Context, info *StepInfo) error {
	step := t.st.Step
	ev := Event{Step: step, Split: "train", Loss: finiteOrNil(info.Loss), Components: info.Components, LR: info.LR,
		GradNorm: info.GradNorm, TokensPerS: info.TokensPerS, Tokens: info.Tokens, ElapsedS: t.elapsedS()}
	if info.Skipped {
		ev.Split = "skip"
		ev.Extra = map[string]any{"reason": "non-finite loss or gradient", "loss": fmt.Sprint(info.Loss), "grad_norm": fmt.Sprint(info.GradNorm)}
		t.bar.println(fmt.Sprintf("step %d | skipped: non-finite loss %v / grad norm %v (%d in a row)", step, info.Loss, info.GradNorm, t.st.NonFinite))
	}
	if err := t.metrics.write(ev); err != nil {
		return err
	}
	t.bar.add(info)
	if !info.Skipped && (step%t.cfg.LogEvery == 0 || step == 1) {
		t.bar.println(fmt.Sprintf("step %d | loss %.4f | %s| lr %.2e | grad %.2f | %s tok/s", step, info.Loss,
			fmtComponents(info.Components), info.LR, info.GradNorm, humanRate(info.TokensPerS)))
	}
	if t.replay != nil && t.cfg.ReplayEvery > 0 && step%t.cfg.ReplayEvery == 0 && step >= t.cfg.WarmStart {
		if err := t.refreshReplay(ctx); err != nil {
			return err
		}
	}
	stop := false
	if t.cfg.EvalEvery > 0 && step%t.cfg.EvalEvery == 0 {
		if err := t.evaluate(ctx); err != nil {
			return err
		}
		if t.cfg.EarlyStop > 0 && t.st.EvalsSinceBest >= t.cfg.EarlyStop {
			t.bar.println(fmt.Sprintf("early stop: no improvement in %d evaluations (best %.4f at step %d)", t.st.EvalsSinceBest, *t.st.BestMetric, t.st.BestStep))
			stop = true
		}
	}
	if (t.cfg.CkptEvery > 0 && step%t.cfg.CkptEvery == 0) || stop {
		if err := t.checkpoint(); err != nil {
			return err
		}
	}
	for _, h := range t.hooks {
		if err := h.AfterStep(ctx, t, info); err != nil {
			return err
		}
	}
	if stop {
		t.cfg.Steps = step
	}
	return nil
}

func fmtComponents(c map[string]float64) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		if k == "lambda" || k == "clamped_frac" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s %.3f ", k, c[k])
	}
	return sb.String()
}

func humanRate(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

// evaluate runs validation, logs it, tracks the best checkpoint and writes
// a few sample generations to the log.
func (t *Trainer) evaluate(ctx context.Context) error {
	if len(t.val) == 0 {
		return nil
	}
	lambda := t.cfg.ObjectiveConfig().LambdaAt(max(t.st.Step-1, 0))
	r, err := Evaluate(t, t.val, t.cfg.EvalBatches, lambda)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	// The objective's own "nll" component (on noise-augmented sequences,
	// the same as "bc") gives way to the clean NLL the console line and
	// the best checkpoint use.
	comps := map[string]float64{}
	for k, v := range r.Components {
		comps[k] = v
	}
	comps["nll"], comps["perplexity"] = r.NLL, r.Perplexity
	ev := Event{Step: t.st.Step, Split: "val", Loss: finiteOrNil(r.Loss), Components: comps, Tokens: r.Tokens, ElapsedS: t.elapsedS()}
	if err := t.metrics.write(ev); err != nil {
		return err
	}
	better := t.st.BestMetric == nil || r.NLL < *t.st.BestMetric
	if better && !math.IsNaN(r.NLL) {
		v := r.NLL
		t.st.BestMetric, t.st.BestStep, t.st.EvalsSinceBest = &v, t.st.Step, 0
	} else {
		t.st.EvalsSinceBest++
	}
	mark := ""
	if better {
		mark = " (best)"
	}
	t.bar.println(fmt.Sprintf("eval step %d | val nll %.4f | ppl %.2f | loss %.4f%s", t.st.Step, r.NLL, r.Perplexity, r.Loss, mark))
	if t.cfg.EvalSamples > 0 {
		if err := t.logSamples(ctx); err != nil {
			return err
		}
	}
	return nil
}

// sampleOptions are the decoding options used for replay and eval samples.
func (t *Trainer) sampleOptions(seed uint64, maxNew int, temp float64) decode.Options {
	o := decode.DefaultOptions()
	o.Temperature = temp
	o.MaxNewTokens = maxNew
	o.Seed = seed
	o.Workers = 1 // determinism does not depend on it, but keep runs quiet
	return decode.OptionsFor(t.tok, decode.Settings{Base: o, ModelVocab: t.params.Cfg.VocabSize, ContextLen: t.cfg.NPositions, RoleMarkers: true})
}

func (t *Trainer) factory() decode.Factory {
	return func(nseq, maxLen int) (decode.Stepper, error) {
		return model.NewDecoder(t.params, nseq, maxLen)
	}
}

func (t *Trainer) logSamples(ctx context.Context) error {
	n := min(t.cfg.EvalSamples, len(t.val))
	prompts := make([][]int32, n)
	for i := range prompts {
		prompts[i] = t.val[i].Prompt
	}
	maxNew := max(8, min(t.cfg.ReplayMaxNew, t.cfg.NPositions/2))
	res, _, err := decode.Generate(ctx, t.factory(), fitPrompts(prompts, t.cfg.NPositions-maxNew), t.sampleOptions(uint64(t.cfg.Seed)^0xe5a1, maxNew, 1.0))
	if err != nil {
		return fmt.Errorf("eval samples: %w", err)
	}
	for i, r := range res {
		text := r.Text
		ev := Event{Step: t.st.Step, Split: "sample", ElapsedS: t.elapsedS(), Extra: map[string]any{
			"index": i, "text": text, "backspaces": r.NumBkspc, "actions": r.NumActions, "stop": fmt.Sprint(r.Stop)}}
		if err := t.metrics.write(ev); err != nil {
			return err
		}
		short := strings.ReplaceAll(text, "\n", "⏎")
		if len([]rune(short)) > 100 {
			short = string([]rune(short)[:100]) + "…"
		}
		t.bar.println(fmt.Sprintf("  sample %d (%d ⌫): %s", i, r.NumBkspc, short))
	}
	return nil
}

// fitPrompts keeps the last maxLen tokens of over-long prompts (decoding
// needs room for the completion); the first token (role marker) is kept.
func fitPrompts(ps [][]int32, maxLen int) [][]int32 {
	maxLen = max(maxLen, 2)
	out := make([][]int32, len(ps))
	for i, p := range ps {
		if len(p) <= maxLen {
			out[i] = p
			continue
		}
		q := append([]int32{p[0]}, p[len(p)-maxLen+1:]...)
		out[i] = q
	}
	return out
}

// refreshReplay samples generations from the current policy on prompts of
// the training data and adds them to the replay buffer.
func (t *Trainer) refreshReplay(ctx context.Context) error {
	if t.cfg.ReplaySamples == 0 {
		return nil
	}
	if t.envReplay != nil {
		return t.refreshReplayEnv(ctx)
	}
	rng := t.rngFor(t.st.Step, 1)
	prompts := make([][]int32, t.cfg.ReplaySamples)
	for i := range prompts {
		prompts[i] = t.prompts[rng.IntN(len(t.prompts))]
	}
	maxNew := max(4, min(t.cfg.ReplayMaxNew, t.cfg.NPositions/2))
	prompts = fitPrompts(prompts, t.cfg.NPositions-maxNew)
	o := t.sampleOptions(rng.Uint64(), maxNew, t.cfg.ReplayTemp)
	o.Detokenize = nil
	res, st, err := decode.Generate(ctx, t.factory(), prompts, o)
	if err != nil {
		return fmt.Errorf("replay refresh: %w", err)
	}
	sp := t.tok.Specials()
	bk := 0
	for _, r := range res {
		done := r.Stop == decode.StopToken
		if err := t.replay.Add(data.GenSeq(r.Prompt, r.Actions, done, sp)); err != nil {
			return fmt.Errorf("replay refresh: %w", err)
		}
		bk += r.NumBkspc
	}
	extra := map[string]any{
		"generations": len(res), "buffer": t.replay.Len(), "backspaces": bk, "hit_cap": st.HitCap, "tokens_per_s": st.TokensPerSec}
	for k, v := range t.replayDiag(res) {
		extra[k] = v
	}
	return t.metrics.write(Event{Step: t.st.Step, Split: "replay", ElapsedS: t.elapsedS(), Extra: extra})
}

// checkpoint writes OUT/ckpt-%08d/ and prunes old ones.
func (t *Trainer) checkpoint() error {
	off, err := t.metrics.sync()
	if err != nil {
		return err
	}
	t.st.MetricsOffset = off
	t.st.ElapsedS = t.elapsedS()
	var rb []byte
	if t.replay != nil {
		if rb, err = t.replay.MarshalJSON(); err != nil {
			return err
		}
	}
	st := t.st
	dir, err := saveCheckpoint(t.out, &st, t.params, t.tok, t.opt.WriteState, rb)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	best := -1
	if t.st.BestMetric != nil {
		best = t.st.BestStep
	}
	if err := pruneCheckpoints(t.out, t.cfg.KeepLast, best, t.st.Step); err != nil {
		return fmt.Errorf("checkpoint: prune: %w", err)
	}
	t.bar.println(fmt.Sprintf("checkpoint %s", dir))
	return nil
}
