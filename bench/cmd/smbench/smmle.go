package main

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"smtrain/data"
	"smtrain/model"
	"smtrain/objective"
	"smtrain/train"
)

// benchBatch compiles a training batch of bc's shape the way the trainer
// does (data.Compile): even rows are expert data with noise+<bkspc>
// augmentation (noise untrained), odd rows are policy generations whose
// own noise tokens and backspaces are trained actions; each row is a
// prompt followed by actions up to T inputs, ending in <eos>.
func benchBatch(bc benchConfig, rng *rand.Rand) (*data.Batch, error) {
	V := bc.cfg.VocabSize
	sp := data.DefaultSpecials()
	if bc.cfg.BkspcTokenID != int(sp.Bkspc) {
		return nil, fmt.Errorf("config bkspc id %d, data specials %d", bc.cfg.BkspcTokenID, sp.Bkspc)
	}
	tok := func() int32 { return int32(data.NumSpecial + rng.IntN(V-data.NumSpecial)) }
	prompt := bc.T / 4
	seqs := make([]*data.ActionSeq, bc.B)
	for r := range seqs {
		s := &data.ActionSeq{Prompt: []int32{sp.User}, Done: true, Set: data.SetD, Bkspc: sp.Bkspc, Pad: sp.Pad}
		noise := data.KindNoise
		if r%2 == 1 {
			s.Set, noise = data.SetG, data.KindAction
		}
		for len(s.Prompt) < prompt {
			s.Prompt = append(s.Prompt, tok())
		}
		inputs := len(s.Prompt) // every token and noise item takes an input slot
		for inputs < bc.T-1 {
			if rng.IntN(20) == 0 && inputs < bc.T-2 {
				s.Items = append(s.Items, data.Item{Tok: tok(), Kind: noise}, data.Item{Tok: sp.Bkspc, Kind: data.KindAction})
				inputs++
			}
			s.Items = append(s.Items, data.Item{Tok: tok(), Kind: data.KindAction})
			inputs++
		}
		s.Items = append(s.Items, data.Item{Tok: sp.EOS, Kind: data.KindAction}) // terminal: no input
		seqs[r] = s
	}
	return data.Compile(seqs, bc.T)
}

// stepper is one compiled training setup (own parameters, graph, loss
// node and AdamW) for one objective.
type stepper struct {
	g      *model.Graph
	m      *model.Machine
	h      *objective.Handle
	opt    *train.AdamW[float32]
	params [][]float32
}

func newStepper(bc benchConfig, name string, b *data.Batch, seed uint64) (*stepper, error) {
	p, err := model.NewParams(bc.cfg, model.F32, rand.New(rand.NewPCG(seed, 2)))
	if err != nil {
		return nil, err
	}
	g, err := model.NewGraph(p, b.B, b.T)
	if err != nil {
		return nil, err
	}
	obj, err := objective.New(name, objective.DefaultConfig())
	if err != nil {
		return nil, err
	}
	h := objective.NewHandle(bc.cfg.BkspcTokenID)
	loss, err := objective.NewLossNode(g.Logits, obj, h)
	if err != nil {
		return nil, err
	}
	m, err := g.Compile(loss)
	if err != nil {
		return nil, err
	}
	opt, err := train.NewAdamWFor32(train.AdamWConfig{LR: 3e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}, p)
	if err != nil {
		m.Close()
		return nil, err
	}
	return &stepper{g: g, m: m, h: h, opt: opt, params: train.Params32(p)}, nil
}

// step is one full training step on b, as train.Trainer does it for one
// micro-batch: set the batch, forward + loss + backward, clip, AdamW.
func (s *stepper) step(b *data.Batch, lambda float64) error {
	if err := s.h.Set(s.g, b, lambda); err != nil {
		return err
	}
	if err := s.m.Step(); err != nil {
		return err
	}
	grads := s.m.Grads()
	train.ClipGradNorm(grads, 1.0)
	return s.opt.Update(s.params, grads)
}

// benchSMOverMLE times full training steps under chi2mix and mle on the
// same compiled batch, alternating which goes first in each rep so load
// from other processes hits both alike; the ratio is of the median step
// times (wall clock, and process CPU time, which is less sensitive to
// other processes on a shared machine). Tokens/s (trained transitions per second) are chi2mix's.
func benchSMOverMLE(res *result, bc benchConfig, rng *rand.Rand, reps, steps, warmup int) error {
	b, err := benchBatch(bc, rng)
	if err != nil {
		return err
	}
	const lambda = 0.5
	mle, err := newStepper(bc, "mle", b, 7)
	if err != nil {
		return err
	}
	defer mle.m.Close()
	sm, err := newStepper(bc, "chi2mix", b, 7)
	if err != nil {
		return err
	}
	defer sm.m.Close()
	for i := 0; i < max(1, warmup); i++ {
		for _, s := range []*stepper{mle, sm} {
			if err := s.step(b, lambda); err != nil {
				return err
			}
		}
	}
	timeIt := func(s *stepper) (wall, cpu float64, err error) {
		t0, c0 := time.Now(), cpuTime()
		for i := 0; i < steps; i++ {
			if err := s.step(b, lambda); err != nil {
				return 0, 0, err
			}
		}
		return time.Since(t0).Seconds() * 1000 / float64(steps), (cpuTime() - c0).Seconds() * 1000 / float64(steps), nil
	}
	for r := 0; r < reps; r++ {
		order := []*stepper{mle, sm}
		if r%2 == 1 {
			order[0], order[1] = sm, mle
		}
		for _, s := range order {
			ms, cms, err := timeIt(s)
			if err != nil {
				return err
			}
			if s == mle {
				res.MLEStepMS = append(res.MLEStepMS, ms)
				res.MLEStepCPUMS = append(res.MLEStepCPUMS, cms)
			} else {
				res.SMStepMS = append(res.SMStepMS, ms)
				res.SMStepCPUMS = append(res.SMStepCPUMS, cms)
				res.TokensPerS = append(res.TokensPerS, float64(len(b.Trans))/ms*1000)
			}
		}
	}
	res.SMOverMLE = median(res.SMStepMS) / median(res.MLEStepMS)
	res.SMOverMLECPU = median(res.SMStepCPUMS) / median(res.MLEStepCPUMS)
	res.StepsPerRep, res.Transitions = steps, len(b.Trans)
	res.LastLoss = sm.m.Loss()
	return nil
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
