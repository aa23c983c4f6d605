// Command smbench measures smtrain's training step and KV-cache decoding,
// the Go side of the PyTorch comparison in scripts/bench.sh (DESIGN.md 7.2).
// It runs one task per process, so that peak RSS belongs to that task, and
// prints one JSON object like bench/torch_peer.py does:
//
//	smbench train tiny|small      step = new random batch, forward,
//	                              cross-entropy, backward, global-norm clip
//	                              1.0, AdamW (nanoGPT groups), float32
//	smbench decode small -batch 8 greedy generation with the KV-cache Decoder
//	                              (-weights f16: its products with a
//	                              half-precision copy of the weights)
//	smbench smmle small           full training steps (compiled batch with
//	                              backspaces, loss, backward, clip, AdamW)
//	                              under chi2mix and mle on the same batch,
//	                              interleaved; reports the step-time ratio
//	smbench export gpt2s -out F   writes the weights decode uses (same
//	                              seed) as a GGUF file for llama.cpp
//	                              (-type f32|f16), for the llama.cpp peer
//
// Configs: tiny (L2 D64), small (L4 D128) and gpt2s, GPT-2 small's shape
// (L12 D768 H12, vocabulary 50,304, T 256, batch 4).

// Build with -tags openblas (and CGO_LDFLAGS=-lopenblas) for OpenBLAS.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"syscall"
	"time"

	"smtrain/data"
	"smtrain/internal/blasfix"
	"smtrain/model"
	"smtrain/model/gguf"
	"smtrain/train"
)

// benchConfig is a model config with its benchmark batch shape.
type benchConfig struct {
	cfg  model.Config
	B, T int
}

var configs = map[string]benchConfig{
	"tiny":  {model.Tiny, 8, 32},
	"small": {model.Small, 16, 128},
	// make dojo's recipe: L2 D128 H4, context 2048, batch 4 (its BPE has
	// about 2,000 tokens).
	"dojo": {model.Config{NLayer: 2, NHead: 4, NEmbd: 128, NPositions: 2048, VocabSize: 2048,
		LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}, 4, 2048},
	// GPT-2 small (124M parameters with nanoGPT's vocabulary of 50,304).
	"gpt2s": {model.Config{NLayer: 12, NHead: 12, NEmbd: 768, NPositions: 1024, VocabSize: 50304,
		LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}, 4, 256},
}

// result is the JSON line printed (same keys as torch_peer.py).
type result struct {
	Impl        string    `json:"impl"`
	Task        string    `json:"task"`
	Config      string    `json:"config"`
	TokensPerS  []float64 `json:"tokens_per_s"`
	Median      float64   `json:"median"`
	StepsPerRep int       `json:"steps_per_rep,omitempty"`
	LastLoss    float64   `json:"last_loss,omitempty"`
	Batch       int       `json:"batch,omitempty"`
	Weights     string    `json:"weights,omitempty"` // decode: the decoder's weight format
	Prompt      int       `json:"prompt,omitempty"`
	NewTokens   int       `json:"new_tokens,omitempty"`
	PeakRSSMB   float64   `json:"peak_rss_mb"`
	T           int       `json:"T,omitempty"`
	B           int       `json:"B,omitempty"`
	D           int       `json:"D,omitempty"`
	AllocPerOp  float64   `json:"alloc_mb_per_step,omitempty"`
	// train: the Go heap at the end of the timed steps (MiB): the bytes
	// of live objects and what the heap holds from the OS.
	HeapInuseMB float64 `json:"heap_inuse_mb,omitempty"`
	HeapSysMB   float64 `json:"heap_sys_mb,omitempty"`
	Go          string  `json:"go"`
	BLAS        string  `json:"blas"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	OpenBLASThr string  `json:"openblas_threads"`
	// smmle: per-rep step times (ms) and the ratio of their medians.
	MLEStepMS []float64 `json:"mle_step_ms,omitempty"`
	SMStepMS  []float64 `json:"chi2mix_step_ms,omitempty"`
	SMOverMLE float64   `json:"sm_over_mle,omitempty"`
	// process CPU time per step (ms) and the ratio of their medians
	MLEStepCPUMS []float64 `json:"mle_step_cpu_ms,omitempty"`
	SMStepCPUMS  []float64 `json:"chi2mix_step_cpu_ms,omitempty"`
	SMOverMLECPU float64   `json:"sm_over_mle_cpu,omitempty"`
	Transitions  int       `json:"transitions,omitempty"`
}

func main() {
	if err := blasfix.Exec(); err != nil { // returns only without a fix to make, or when it failed
		fmt.Fprintln(os.Stderr, "smbench:", err)
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "smbench:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("smbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	reps := fs.Int("reps", 3, "timed repetitions")
	steps := fs.Int("steps", 0, "train steps per rep (default: 60 tiny, 5 small)")
	warmup := fs.Int("warmup", 3, "untimed warm-up steps (train) or runs (decode)")
	batch := fs.Int("batch", 1, "decode batch")
	prompt := fs.Int("prompt", 16, "decode prompt length")
	newTok := fs.Int("new", 64, "decode tokens generated per sequence")
	seed := fs.Uint64("seed", 0, "random seed")
	seqT := fs.Int("T", 0, "train: sequence length (default: the config's)")
	batchB := fs.Int("B", 0, "train: batch size (default: the config's)")
	embd := fs.Int("D", 0, "train: n_embd (default: the config's; must be a multiple of n_head)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the timed part to this file")
	memprofile := fs.String("memprofile", "", "write a heap profile (live and allocated bytes) at the end to this file")
	out := fs.String("out", "", "export: output GGUF file")
	typ := fs.String("type", "f32", "export: weight type f32 or f16")
	weights := fs.String("weights", model.WeightsF32, "decode: the decoder's weight format, f32 or f16")
	if len(args) == 1 && args[0] == "blascore" {
		// The OPENBLAS_CORETYPE in effect (set by blasfix.Exec or by the
		// caller; empty when OpenBLAS's own detection stands), for the
		// bench script to give the PyTorch peer's OpenBLAS the same kernels.
		_, err := fmt.Fprintln(stdout, os.Getenv("OPENBLAS_CORETYPE"))
		return err
	}
	if len(args) < 2 {
		return usageError{"usage: smbench blascore | smbench train|decode|smmle|export tiny|small|gpt2s [-reps N] [-steps N] [-batch N] [-weights f32|f16] [-out F -type f32|f16]"}
	}
	task, name := args[0], args[1]
	if err := fs.Parse(args[2:]); err != nil {
		return usageError{err.Error()}
	}
	bc, ok := configs[name]
	if !ok {
		return usageError{fmt.Sprintf("unknown config %q (tiny, small, gpt2s)", name)}
	}
	if *seqT < 0 || *batchB < 0 || *embd < 0 {
		return usageError{"T, B and D must be positive"}
	}
	if *seqT > 0 {
		bc.T = *seqT
		bc.cfg.NPositions = max(bc.cfg.NPositions, bc.T)
	}
	if *batchB > 0 {
		bc.B = *batchB
	}
	if *embd > 0 {
		bc.cfg.NEmbd = *embd
	}
	if err := bc.cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if *reps < 1 || *warmup < 0 || *steps < 0 || *batch < 1 || *prompt < 1 || *newTok < 1 {
		return usageError{"reps, batch, prompt and new must be positive; steps and warmup non-negative"}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rng := rand.New(rand.NewPCG(*seed, 1))
	res := result{Impl: "smtrain", Task: task, Config: name, Go: runtime.Version(), BLAS: model.BLASName(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), OpenBLASThr: os.Getenv("OPENBLAS_NUM_THREADS")}
	var err error
	switch task {
	case "export":
		if *out == "" {
			return usageError{"export: -out is required"}
		}
		tt, err := gguf.ParseTensorType(*typ)
		if err != nil {
			return usageError{err.Error()}
		}
		return exportGGUF(bc, rng, *out, tt)
	case "train":
		if *steps == 0 {
			*steps = map[string]int{"tiny": 60, "small": 5, "dojo": 2, "gpt2s": 1}[name]
		}
		err = benchTrain(&res, bc, rng, *reps, *steps, *warmup)
		res.T, res.B, res.D = bc.T, bc.B, bc.cfg.NEmbd
	case "smmle":
		if *steps == 0 {
			*steps = 2
		}
		err = benchSMOverMLE(&res, bc, rng, *reps, *steps, *warmup)
	case "decode":
		if *weights != model.WeightsF32 && *weights != model.WeightsF16 {
			return usageError{fmt.Sprintf("-weights %q: want %s or %s", *weights, model.WeightsF32, model.WeightsF16)}
		}
		err = benchDecode(&res, bc, rng, *reps, *batch, *prompt, *newTok, max(1, *warmup/3), *weights)
	default:
		return usageError{fmt.Sprintf("unknown task %q (train, decode, smmle)", task)}
	}
	if err != nil {
		return err
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC() // the profile shows the heap as of the last collection
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(os.Stderr, "smbench: heap in use %.1f MB, heap sys %.1f MB, Go sys %.1f MB, peak RSS %.1f MB\n",
			float64(ms.HeapInuse)/(1<<20), float64(ms.HeapSys)/(1<<20), float64(ms.Sys)/(1<<20), peakRSSMB())
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	res.Median = median(res.TokensPerS)
	res.PeakRSSMB = peakRSSMB()
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// benchTrain times full training steps on random token batches.
func benchTrain(res *result, bc benchConfig, rng *rand.Rand, reps, steps, warmup int) error {
	cfg, B, T := bc.cfg, bc.B, bc.T
	p, err := model.NewParams(cfg, model.F32, rng)
	if err != nil {
		return err
	}
	g, err := model.NewGraph(p, B, T)
	if err != nil {
		return err
	}
	inputs, positions, parents, targets := make([]int32, B*T), make([]int32, B*T), make([]int32, B*T), make([]int32, B*T)
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			positions[b*T+t] = int32(t)
			parents[b*T+t] = int32(t - 1)
		}
	}
	loss, err := model.CrossEntropy(g.Logits, targets)
	if err != nil {
		return err
	}
	m, err := g.Compile(loss)
	if err != nil {
		return err
	}
	defer m.Close()
	opt, err := train.NewAdamWFor32(train.AdamWConfig{LR: 3e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}, p)
	if err != nil {
		return err
	}
	params := train.Params32(p)
	seq := make([]int32, T+1)
	step := func() error {
		for b := 0; b < B; b++ { // a new random batch, targets = next token
			for i := range seq {
				seq[i] = int32(rng.IntN(cfg.VocabSize))
			}
			copy(inputs[b*T:], seq[:T])
			copy(targets[b*T:], seq[1:])
		}
		if err := g.SetBatch(inputs, positions, parents); err != nil {
			return err
		}
		if err := model.SetCrossEntropyTargets(loss, targets); err != nil {
			return err
		}
		if err := m.Step(); err != nil {
			return err
		}
		grads := m.Grads()
		train.ClipGradNorm(grads, 1.0)
		return opt.Update(params, grads)
	}
	for i := 0; i < warmup; i++ {
		if err := step(); err != nil {
			return err
		}
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for r := 0; r < reps; r++ {
		t0 := time.Now()
		for i := 0; i < steps; i++ {
			if err := step(); err != nil {
				return err
			}
		}
		res.TokensPerS = append(res.TokensPerS, float64(steps*B*T)/time.Since(t0).Seconds())
	}
	runtime.ReadMemStats(&ms1)
	res.AllocPerOp = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(reps*steps) / (1 << 20)
	res.HeapInuseMB, res.HeapSysMB = float64(ms1.HeapInuse)/(1<<20), float64(ms1.HeapSys)/(1<<20)
	res.StepsPerRep = steps
	res.LastLoss = m.Loss()
	return nil
}

// exportGGUF writes the parameters benchDecode draws from rng (the first
// draw of the same seed) with the byte tokenizer (the rows past its 263
// tokens become unused tokens) as a GGUF file for llama.cpp.
func exportGGUF(bc benchConfig, rng *rand.Rand, path string, tt gguf.TensorType) error {
	p, err := model.NewParams(bc.cfg, model.F32, rng)
	if err != nil {
		return err
	}
	return gguf.Write(path, p, data.ByteTokenizer(), gguf.Options{Type: tt, Name: "smbench"})
}

// benchDecode times greedy generation of newTok tokens for batch sequences
// after a random prompt (prefill time included, prompt tokens not counted),
// as torch_peer.py does, with the decoder's products in weight format
// weights (the conversion to f16 is not timed).
func benchDecode(res *result, bc benchConfig, rng *rand.Rand, reps, batch, prompt, newTok, warmup int, weights string) error {
	cfg := bc.cfg
	p, err := model.NewParams(cfg, model.F32, rng)
	if err != nil {
		return err
	}
	if prompt+newTok > cfg.NPositions {
		return fmt.Errorf("prompt %d + new %d exceeds n_positions %d", prompt, newTok, cfg.NPositions)
	}
	w, err := model.NewDecoderWeights(p, weights)
	if err != nil {
		return err
	}
	d, err := model.NewDecoderWith(w, batch, prompt+newTok)
	if err != nil {
		return err
	}
	seqs := make([]int, batch)
	toks := make([]int32, batch)
	pr := make([]int32, prompt)
	runOnce := func() error {
		for s := 0; s < batch; s++ {
			seqs[s] = s
			for i := range pr {
				pr[i] = int32(rng.IntN(cfg.VocabSize))
			}
			if err := d.Prefill(s, pr); err != nil {
				return err
			}
		}
		for i := 0; i < newTok-1; i++ {
			for s := 0; s < batch; s++ {
				toks[s] = argmax(d.Logits(s))
			}
			if err := d.Push(seqs, toks); err != nil {
				return err
			}
		}
		for s := 0; s < batch; s++ {
			toks[s] = argmax(d.Logits(s))
		}
		return nil
	}
	for i := 0; i < warmup; i++ {
		if err := runOnce(); err != nil {
			return err
		}
	}
	for r := 0; r < reps; r++ {
		t0 := time.Now()
		if err := runOnce(); err != nil {
			return err
		}
		res.TokensPerS = append(res.TokensPerS, float64(batch*newTok)/time.Since(t0).Seconds())
	}
	res.Batch, res.Prompt, res.NewTokens, res.Weights = batch, prompt, newTok, weights
	return nil
}

func argmax(l []float32) int32 {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return int32(best)
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// peakRSSMB is this process's peak resident set size (ru_maxrss, KiB on
// Linux) in MiB.
func peakRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
