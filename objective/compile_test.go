package objective

import (
	"math"
	"math/rand/v2"
	"testing"

	"smtrain/data"
)

// compiledBatch compiles random multi-turn action sequences with the data
// package's compiler: complete (Done) episodes with backspaces and
// observations, noise trained as actions (so every agent item is a
// transition), and one cut-off G sequence.
func compiledBatch(t *testing.T, rng *rand.Rand, T, V int) (*data.Batch, []int32) {
	t.Helper()
	var seqs []*data.ActionSeq
	var starts []int32 // first state row of each complete D episode
	for s := 0; s < 4; s++ {
		seq := &data.ActionSeq{Prompt: []int32{tUser, int32(tFirst + rng.IntN(V-tFirst)), tAsst},
			Done: s < 3, NoiseAsAction: true, Bkspc: tBk, Pad: tPad}
		if s == 3 {
			seq.Set = data.SetG
		}
		depth, floor := 3, 3
		for turn := 0; turn < 2; turn++ {
			for k := 0; k < 4+rng.IntN(4); k++ {
				if depth > floor && rng.IntN(4) == 0 {
					seq.Items = append(seq.Items, data.Item{Tok: tBk, Kind: data.KindAction})
					depth--
					continue
				}
				kind := data.KindAction
				if rng.IntN(6) == 0 {
					kind = data.KindNoise
				}
				seq.Items = append(seq.Items, data.Item{Tok: int32(tFirst + rng.IntN(V-tFirst)), Kind: kind})
				depth++
			}
			if turn == 0 {
				seq.Items = append(seq.Items, data.Item{Tok: tEnd, Kind: data.KindAction},
					data.Item{Tok: tObs, Kind: data.KindObs}, data.Item{Tok: 8, Kind: data.KindObs},
					data.Item{Tok: tAsst, Kind: data.KindObs})
				depth += 4
				floor = depth
			}
		}
		if seq.Done {
			seq.Items = append(seq.Items, data.Item{Tok: tEnd, Kind: data.KindAction})
			starts = append(starts, int32(s*T+2))
		}
		seqs = append(seqs, seq)
	}
	b, err := data.Compile(seqs, T)
	if err != nil {
		t.Fatal(err)
	}
	return b, starts
}

// TestCompiledBatches runs the objectives on batches made by data.Compile:
// they must be accepted, agree with the reference, and the value term must
// telescope over the complete multi-turn D episodes.
func TestCompiledBatches(t *testing.T) {
	const T, V = 40, 12
	for seed := uint64(1); seed <= 3; seed++ {
		rng := rand.New(rand.NewPCG(seed, 77))
		b, starts := compiledBatch(t, rng, T, V)
		L := randomLogits(rng, b.B*T*V, 1.5)
		for _, name := range Names {
			res, g := evalLoss(t, mustNew(t, name, DefaultConfig()), L, V, b, 0.5)
			want, _, wantG := refLoss(name, DefaultConfig(), L, V, b, tBk, 0.5)
			if !close(res.Loss, want, 1e-12) {
				t.Errorf("seed %d %s: loss %v, reference %v", seed, name, res.Loss, want)
			}
			if d, at := maxDiff(g, wantG); d > 1e-12 {
				t.Errorf("seed %d %s: grad differs from reference by %g at %d", seed, name, d, at)
			}
		}
		// Telescoping over the D episodes (the G one is cut off and in G).
		cfg := DefaultConfig()
		cfg.Gamma = 0.9
		want := 0.0
		for _, r := range starts {
			want += lse(L[int(r)*V:int(r+1)*V], tBk)
		}
		if got := valueSum(t, cfg, L, V, b); math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("seed %d: compiled multi-turn value sum %.15g, Σ V(s_0) = %.15g", seed, got, want)
		}
	}
}
