//go:build !amd64

package vec

// HaveAVX2 is false off amd64: callers run their portable loops.
const HaveAVX2 = false

// HaveAVX512 is false off amd64.
var HaveAVX512 = false

// GELUForward does nothing off amd64.
func GELUForward(x, y, th []float32) int { return 0 }

// GELUBackward does nothing off amd64.
func GELUBackward(x, th, dy, dx []float32, acc bool) int { return 0 }

// ExpShift does nothing off amd64.
func ExpShift(dst, src []float32, shift float32) (int, float64) { return 0, 0 }

// Gemm4 does nothing off amd64.
func Gemm4(k, n int, x []float32, ldx int, w []float32, ldw int, y []float32, ldy int) int { return 0 }

// DotRows does nothing off amd64.
func DotRows(q, k []float32, ldk, n int, scale float32, out []float32) bool { return false }

// AxpyRows32 does nothing off amd64.
func AxpyRows32(p, v []float32, ldv, n int, out []float32) bool { return false }

// LNForwardRow does nothing off amd64.
func LNForwardRow(x, w, b, y []float32, eps float64) (m, rs float32, ok bool) { return 0, 0, false }

// LNBackwardRow does nothing off amd64.
func LNBackwardRow(x, dy, w, dx, pw, pb []float32, m, rs float32, acc bool) bool { return false }

// Max does nothing off amd64.
func Max(x []float32) (float32, int) { return 0, 0 }

// Scale does nothing off amd64.
func Scale(dst, src []float32, a float32, acc bool) int { return 0 }

// Gemv does nothing off amd64.
func Gemv(x, w []float32, ldw int, y []float32) int { return 0 }

// DotAcc does nothing off amd64.
func DotAcc(x, w []float32, ldw int, y []float32) bool { return false }

// Gemm8 does nothing off amd64.
func Gemm8(k, n int, x []float32, ldx int, w []float32, ldw int, y []float32, ldy int) int { return 0 }

// HaveHalf is false off amd64.
const HaveHalf = false

// GemmHalf does nothing off amd64.
func GemmHalf(rows, k int, x []float32, ldx int, w []uint16, y []float32, ldy int, n int) int {
	return 0
}

// HalfFromFloat32s does nothing off amd64.
func HalfFromFloat32s(dst []uint16, src []float32) int { return 0 }
