package train

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

// TestNoiseKindsDeterministicAndResumeExact: for every noise kind, a run
// repeated gives the same losses, a run interrupted at step 5 and resumed
// gives the same losses as the uninterrupted one, and the kinds differ
// from each other (the kind is really used).
func TestNoiseKindsDeterministicAndResumeExact(t *testing.T) {
	const steps = 8
	byKind := map[string][]lossRow{}
	for _, kind := range []string{"random", "ground-truth", "unigram", "policy"} {
		cfg := func(out string) Config {
			c := smallConfig(out, steps)
			c.Objective, c.Eta, c.NoiseKind, c.NoiseTemp = "chi2mix", 0.3, kind, 1.5
			c.EvalEvery, c.CkptEvery = 4, 4
			return c
		}
		ref := filepath.Join(t.TempDir(), "ref")
		runInProcess(t, cfg(ref), false)
		want := readLosses(t, filepath.Join(ref, MetricsFile))
		again := filepath.Join(t.TempDir(), "again")
		runInProcess(t, cfg(again), false)
		compareLosses(t, want, readLosses(t, filepath.Join(again, MetricsFile)))

		out := filepath.Join(t.TempDir(), "cut")
		c := cfg(out)
		tr, err := New(c, arithInputs(c), false, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		tr.AddHook(hookFunc(func(ctx context.Context, tt *Trainer, s *StepInfo) error {
			if s.Step == 5 {
				cancel()
			}
			return nil
		}))
		if err := tr.Run(ctx); !errors.Is(err, ErrInterrupted) {
			t.Fatalf("%s: Run after cancel: %v, want ErrInterrupted", kind, err)
		}
		runInProcess(t, c, true)
		compareLosses(t, want, readLosses(t, filepath.Join(out, MetricsFile)))
		byKind[kind] = want
	}
	for _, k := range []string{"ground-truth", "unigram", "policy"} {
		if reflect.DeepEqual(byKind[k], byKind["random"]) {
			t.Fatalf("noise kind %s gave exactly the losses of random noise", k)
		}
	}
}
