package train

import "testing"

// TestCloseUnrunTrainer: a Trainer made only to evaluate releases its
// metrics.jsonl handle on Close, and Close is idempotent (Run closes too).
func TestCloseUnrunTrainer(t *testing.T) {
	cfg := smallConfig(t.TempDir(), 2)
	cfg.ReplayEvery, cfg.EvalSamples = 0, 0
	tr, err := New(cfg, arithInputs(cfg), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.metrics == nil || tr.metrics.f == nil {
		t.Fatal("New did not open metrics.jsonl")
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if tr.metrics.f != nil {
		t.Fatal("metrics.jsonl still open after Close")
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	tr2, err := New(cfg, arithInputs(cfg), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr2.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if tr2.metrics.f != nil {
		t.Fatal("metrics.jsonl still open after Run")
	}
	if err := tr2.Close(); err != nil {
		t.Fatalf("Close after Run: %v", err)
	}
}
