//go:build !amd64

package vec

// HaveAVX2 is false off amd64: callers run their portable loops.
const HaveAVX2 = false

// GELUForward does nothing off amd64.
func GELUForward(x, y, th []float32) int { return 0 }

// GELUBackward does nothing off amd64.
func GELUBackward(x, th, dy, dx []float32, acc bool) int { return 0 }

// ExpShift does nothing off amd64.
func ExpShift(dst, src []float32, shift float32) (int, float64) { return 0, 0 }
