package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestRunSmoke(t *testing.T) {
	for _, args := range [][]string{
		{"train", "tiny", "-reps", "2", "-steps", "1", "-warmup", "1"},
		{"decode", "small", "-reps", "1", "-batch", "2", "-new", "3", "-prompt", "4", "-warmup", "0"},
		{"smmle", "tiny", "-reps", "2", "-steps", "1", "-warmup", "0"},
	} {
		var out bytes.Buffer
		if err := run(args, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var r result
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v: output %q: %v", args, out.String(), err)
		}
		if r.Median <= 0 || r.PeakRSSMB <= 0 || len(r.TokensPerS) == 0 {
			t.Errorf("%v: %+v", args, r)
		}
		if args[0] == "smmle" && (len(r.MLEStepMS) != 2 || len(r.SMStepMS) != 2 || !(r.SMOverMLE > 0) || r.Transitions < 8*20) {
			t.Errorf("smmle: %+v", r)
		}
		if args[0] == "train" && !(r.LastLoss > 5 && r.LastLoss < 6.5) { // ~ln(300) at init
			t.Errorf("train tiny loss %g, want about ln(300) = 5.70", r.LastLoss)
		}
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"train"}, {"train", "huge"}, {"fly", "tiny"}, {"train", "tiny", "-reps", "0"}, {"train", "tiny", "-x"}} {
		var ue usageError
		if err := run(args, &bytes.Buffer{}); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
