package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// linearPath is the tuning that puts the linear forward on a path: "rows"
// (gemm over row chunks), "cols-gemm" (column blocks: the assembly 4/8-row
// kernels where they apply, else gemm), "cols-blas" (column blocks, gemm
// only) or "cols-gemv" (the 4/8-row kernels, then one matrix-vector
// product per remaining row), with column blocks split across workers or
// not.
func linearPath(path string, split bool) *tuning {
	t := defaultTuning
	switch path {
	case "cols-blas":
		t.colSplitMaxRows, t.gemvMaxRows, t.vecGemm = 1<<30, 0, false
	case "rows":
		t.colSplitMaxRows = -1
	case "cols-gemm":
		t.colSplitMaxRows, t.gemvMaxRows = 1<<30, 0
	case "cols-gemv":
		t.colSplitMaxRows, t.gemvMaxRows = 1<<30, 1<<30
	}
	t.colGrainMACs = 1 << 30
	if split {
		t.colGrainMACs = 1
	}
	return &t
}

// TestLinearForwardPaths: the decoder-oriented forward paths (per-row
// matrix-vector products, column-block gemm, split across workers or not)
// equal the row-chunked gemm path, for every bias/residual combination and
// the transposed (LM head) layout, in float32 (to 1e-6 relative to the
// output scale) and float64 (1e-12).
func TestLinearForwardPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for _, n := range []int{1, 2, 3, 4, 5, 8, 33} {
		for _, tw := range []bool{false, true} {
			for _, br := range []int{0, 1, 2, 3} { // bit 0: bias, bit 1: residual
				c, oc := 37, 70 // oc not a multiple of the column block
				name := fmt.Sprintf("n%d/transW=%v/bias=%v/res=%v", n, tw, br&1 != 0, br&2 != 0)
				x64, w64 := randSlice(rng, n*c, 1), randSlice(rng, c*oc, 1)
				var b64, r64 []float64
				if br&1 != 0 {
					b64 = randSlice(rng, oc, 1)
				}
				if br&2 != 0 {
					r64 = randSlice(rng, n*oc, 1)
				}
				for _, f32 := range []bool{true, false} {
					run := func(path string, split bool) []float64 {
						tune := linearPath(path, split)
						if f32 {
							k := &linearKernel[float32]{c: c, oc: oc, transW: tw, tune: tune}
							y := make([]float32, n*oc)
							k.forward(to32(x64), to32(w64), to32(b64), to32(r64), y)
							return to64(y)
						}
						k := &linearKernel[float64]{c: c, oc: oc, transW: tw, tune: tune}
						y := make([]float64, n*oc)
						k.forward(x64, w64, b64, r64, y)
						return y
					}
					want := run("rows", false)
					scale := 0.0
					for _, v := range want {
						scale = math.Max(scale, math.Abs(v))
					}
					tol := 1e-12
					if f32 {
						tol = 1e-6
					}
					for _, path := range []string{"cols-gemm", "cols-gemv", "cols-blas"} {
						for _, split := range []bool{false, true} {
							got := run(path, split)
							for j := range want {
								if d := math.Abs(got[j] - want[j]); d > tol*scale {
									t.Fatalf("%s f32=%v %s split=%v: y[%d] = %v, rows path %v (|Δ|/scale %.2g)",
										name, f32, path, split, j, got[j], want[j], d/scale)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestDecoderPaths reruns the decoder-equals-full-forward test with the
// linear forward forced onto each path and with column splitting.
func TestDecoderPaths(t *testing.T) {
	for _, path := range []string{"rows", "cols-gemm", "cols-gemv", "cols-blas"} {
		for _, split := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/split=%v", path, split), func(t *testing.T) {
				decoderMatchesFullForward(t, 3, linearPath(path, split))
			})
		}
	}
}

func to32(x []float64) []float32 {
	if x == nil {
		return nil
	}
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}
