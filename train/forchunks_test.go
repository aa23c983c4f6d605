package train

import (
	"sync"
	"testing"
)

// TestForChunksCoversEachElementOnce checks the optimizer's parallel loop:
// every element of every slice is visited once, in pieces of at most
// chunk elements that stay inside their slice.
func TestForChunksCoversEachElementOnce(t *testing.T) {
	for _, sizes := range [][]int{{0}, {5, 7}, {chunk + 3, 1, 2*chunk + 1, 0, chunk}, {5 * chunk}} {
		xs := make([][]float32, len(sizes))
		for i, n := range sizes {
			xs[i] = make([]float32, n)
		}
		var mu sync.Mutex
		forChunks(xs, func(i, lo, hi int) {
			if lo < 0 || hi > len(xs[i]) || lo > hi || lo == hi && len(xs[i]) > 0 || hi-lo > chunk {
				t.Errorf("sizes %v: piece [%d, %d) of slice %d (len %d)", sizes, lo, hi, i, len(xs[i]))
				return
			}
			mu.Lock()
			for j := lo; j < hi; j++ {
				xs[i][j]++
			}
			mu.Unlock()
		})
		for i, x := range xs {
			for j, v := range x {
				if v != 1 {
					t.Fatalf("sizes %v: element %d of slice %d visited %v times", sizes, j, i, v)
				}
			}
		}
	}
}
