package train

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user + system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNoiseStep times one optimizer step of BC (η 0.1, the arithmetic
// task, a 2-layer 64-wide model, batch 32, one kernel thread) with each
// noise kind; policy noise adds a forward of the clean sequences that get
// noise. Compare policy to random: on a shared machine the CPU time per
// step (cpu-ns/op, from getrusage) is steadier than the wall time
// (go test -run X -bench NoiseStep -cpu 1 ./train/).
func BenchmarkNoiseStep(b *testing.B) {
	for _, kind := range []string{"random", "unigram", "policy"} {
		b.Run(kind, func(b *testing.B) {
			c := smallConfig(filepath.Join(b.TempDir(), "run"), 1<<30)
			c.Objective, c.Eta, c.NoiseKind = "bc", 0.1, kind
			c.NLayer, c.NHead, c.NEmbd, c.BatchSize, c.GradAccum = 2, 2, 64, 32, 1
			c.ArithTrain = 2000
			tr, err := New(c, arithInputs(c), false, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			for i := 0; i < 20; i++ { // warm-up: compile the graph shapes
				if _, err := tr.trainStep(); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			c0 := cpuTime(b)
			for i := 0; i < b.N; i++ {
				if _, err := tr.trainStep(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}
