package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"smtrain/model"
	"smtrain/model/gguf"
)

func TestRunSmoke(t *testing.T) {
	for _, args := range [][]string{
		{"train", "tiny", "-reps", "2", "-steps", "1", "-warmup", "1"},
		{"decode", "small", "-reps", "1", "-batch", "2", "-new", "3", "-prompt", "4", "-warmup", "0"},
		{"decode", "small", "-reps", "1", "-new", "3", "-prompt", "4", "-warmup", "0", "-weights", "f16"},
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
		if want := model.WeightsF32; args[0] == "decode" {
			if args[len(args)-2] == "-weights" {
				want = args[len(args)-1]
			}
			if r.Weights != want {
				t.Errorf("decode %v: weights %q, want %q", args, r.Weights, want)
			}
		}
		if args[0] == "train" && !(r.LastLoss > 5 && r.LastLoss < 6.5) { // ~ln(300) at init
			t.Errorf("train tiny loss %g, want about ln(300) = 5.70", r.LastLoss)
		}
	}
}

func TestExportMatchesDecodeWeights(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := run([]string{"export", "tiny", "-type", "f32", "-out", path, "-seed", "3"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The exported weights are the ones decode draws from the same seed.
	p, err := model.NewParams(model.Tiny, model.F32, rand.New(rand.NewPCG(3, 1)))
	if err != nil {
		t.Fatal(err)
	}
	tt, _ := f.Tensor("token_embd.weight")
	x, _ := tt.Float32s()
	if want := p.Get("wte.weight").F32; len(x) != len(want) || x[5] != want[5] || x[len(x)-1] != want[len(want)-1] {
		t.Errorf("token_embd differs from the decode weights of seed 3")
	}
	if err := run([]string{"export", "tiny"}, &bytes.Buffer{}); err == nil {
		t.Error("export without -out: no error")
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"train"}, {"train", "huge"}, {"fly", "tiny"}, {"train", "tiny", "-reps", "0"}, {"train", "tiny", "-x"}, {"decode", "tiny", "-weights", "bf16"}} {
		var ue usageError
		if err := run(args, &bytes.Buffer{}); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
