//go:build !amd64

package train

const haveAdamAVX2 = false

func adamVec32(p, g, m, v []float32, c *[8]float32) int { return 0 }
