package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// linearPath sets the linear forward's path: "rows" (gemm over row
// chunks), "cols-gemm" (column blocks: AVX2 4-row kernel where it
// applies, else gemm), "cols-blas" (column blocks, gemm only) or
// "cols-gemv" (AVX2 4-row kernel, then one matrix-vector product per
// remaining row), and whether column
// blocks are split across workers. It returns a function restoring the
// defaults.
func linearPath(path string, split bool) func() {
	oldMax, oldGemv, oldGrain, oldVec := colSplitMaxRows, gemvMaxRows, colGrainMACs, vecGemm
	switch path {
	case "cols-blas": // column blocks, BLAS only (no AVX2 4-row kernel)
		colSplitMaxRows, gemvMaxRows, vecGemm = 1<<30, 0, false
	case "rows":
		colSplitMaxRows = -1
	case "cols-gemm":
		colSplitMaxRows, gemvMaxRows = 1<<30, 0
	case "cols-gemv":
		colSplitMaxRows, gemvMaxRows = 1<<30, 1<<30
	}
	colGrainMACs = 1 << 30
	if split {
		colGrainMACs = 1
	}
	return func() { colSplitMaxRows, gemvMaxRows, colGrainMACs, vecGemm = oldMax, oldGemv, oldGrain, oldVec }
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
						defer linearPath(path, split)()
						if f32 {
							k := &linearKernel[float32]{c: c, oc: oc, transW: tw}
							y := make([]float32, n*oc)
							k.forward(to32(x64), to32(w64), to32(b64), to32(r64), y)
							return to64(y)
						}
						k := &linearKernel[float64]{c: c, oc: oc, transW: tw}
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
				defer linearPath(path, split)()
				TestDecoderMatchesFullForward(t)
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
