package train

import (
	"path/filepath"
	"testing"
)

// BenchmarkNoiseStep times one optimizer step of BC (η 0.1, the arithmetic
// task, a 2-layer 64-wide model, batch 32, one kernel thread) with each
// noise kind; policy noise adds a forward of the clean sequences that get
// noise. Compare ns/op of policy to random (go test -bench NoiseStep).
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
			for i := 0; i < b.N; i++ {
				if _, err := tr.trainStep(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
