package vec

import (
	"fmt"
	"testing"
)

// gpt2sShapes are GPT-2 small's decoder products (k, n): c_attn, c_fc,
// the MLP's c_proj and the LM head.
var gpt2sShapes = [][2]int{{768, 2304}, {768, 3072}, {3072, 768}, {768, 50304}}

// copies is how many copies of a matrix a benchmark cycles through, so
// that (as in a decoder step over 12 layers) the weights come from memory
// rather than the cache; they are written, since untouched pages all map
// the one zero page.
func copies(elems, size int) int { return max(1, (128<<20)/(elems*size)) }

// BenchmarkGemmHalf: one row against each packed half matrix, one core
// (bytes/s are the weights').
func BenchmarkGemmHalf(b *testing.B) {
	for _, sh := range gpt2sShapes {
		k, n := sh[0], sh[1]
		ws := make([][]uint16, copies(HalfPackedLen(k, n), 2))
		for c := range ws {
			ws[c] = make([]uint16, HalfPackedLen(k, n))
			for i := range ws[c] {
				ws[c][i] = 0x3c00
			}
		}
		x, y := make([]float32, k), make([]float32, n)
		b.Run(fmt.Sprintf("%dx%d", k, n), func(b *testing.B) {
			b.SetBytes(int64(2 * len(ws[0])))
			c := 0
			for b.Loop() {
				GemmHalf(1, k, x, k, ws[c], y, n, n)
				c = (c + 1) % len(ws)
			}
		})
	}
}

// BenchmarkGemvF32: the float32 kernels the decoder runs on the same
// shapes (Gemv; DotAcc for the LM head's transposed rows).
func BenchmarkGemvF32(b *testing.B) {
	for s, sh := range gpt2sShapes {
		k, n := sh[0], sh[1]
		ws := make([][]float32, copies(k*n, 4))
		for c := range ws {
			ws[c] = make([]float32, k*n)
			for i := range ws[c] {
				ws[c][i] = 1
			}
		}
		x, y := make([]float32, k), make([]float32, n)
		b.Run(fmt.Sprintf("%dx%d", k, n), func(b *testing.B) {
			b.SetBytes(int64(4 * k * n))
			c := 0
			for b.Loop() {
				if s == len(gpt2sShapes)-1 {
					DotAcc(x, ws[c], k, y)
				} else {
					Gemv(x, ws[c], n, y)
				}
				c = (c + 1) % len(ws)
			}
		})
	}
}
