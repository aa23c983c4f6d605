package model

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time; benchmarks report CPU
// ms per op beside wall-clock tok/s because the machine is shared.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTrain times one training step (forward, backward, cross entropy; no
// optimizer) on causal rows of random tokens.
func benchTrain(b *testing.B, cfg Config, B, T int) {
	p, err := NewParams(cfg, F32, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var bt batch
	for r := 0; r < B; r++ {
		for i := 0; i < T; i++ {
			bt.inputs = append(bt.inputs, int32(rng.IntN(cfg.VocabSize)))
			bt.positions = append(bt.positions, int32(i))
			bt.parents = append(bt.parents, int32(i-1))
			bt.targets = append(bt.targets, int32(rng.IntN(cfg.VocabSize)))
		}
	}
	tr := newTrainer(b, p, B, T, bt)
	tr.step(b)
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		tr.step(b)
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tok/s")
	b.ReportMetric(float64(cpuTime()-c0)/1e6/float64(b.N), "cpu-ms/op")
}

func BenchmarkTrainTiny(b *testing.B)  { benchTrain(b, Tiny, 8, 32) }
func BenchmarkTrainSmall(b *testing.B) { benchTrain(b, Small, 16, 128) }

// benchDecode times batched decoder pushes (a prompt of 8 tokens, then one
// token per slot per step), popping back to the prompt when slots fill.
func benchDecode(b *testing.B, cfg Config, nseq, maxLen int) {
	p, err := NewParams(cfg, F32, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	d, err := NewDecoder(p, nseq, maxLen)
	if err != nil {
		b.Fatal(err)
	}
	seqs := make([]int, nseq)
	toks := make([]int32, nseq)
	prompt := []int32{1, 5, 9, 13, 17, 21, 25, 29}
	for s := range seqs {
		seqs[s] = s
		if err := d.Prefill(s, prompt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if d.Len(0) == maxLen {
			b.StopTimer()
			for s := range seqs {
				for d.Len(s) > len(prompt) {
					if err := d.Pop(s); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StartTimer()
		}
		for s := range toks {
			toks[s] = int32((i*7 + s*3) % cfg.VocabSize)
		}
		if err := d.Push(seqs, toks); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(nseq*b.N)/b.Elapsed().Seconds(), "tok/s")
	b.ReportMetric(float64(cpuTime()-c0)/1e6/float64(b.N), "cpu-ms/op")
}

func BenchmarkDecodeSmallBatch1(b *testing.B) { benchDecode(b, Small, 1, 256) }
func BenchmarkDecodeSmallBatch8(b *testing.B) { benchDecode(b, Small, 8, 256) }

func TestBLASThreads(t *testing.T) {
	t.Logf("BLAS: %s, %d threads", BLASName(), BLASThreads())
	if BLASThreads() == 0 {
		return
	}
	old := BLASThreads()
	SetBLASThreads(1)
	if BLASThreads() != 1 {
		t.Errorf("SetBLASThreads(1): now %d threads", BLASThreads())
	}
	SetBLASThreads(old)
}
