package parallel

import (
	"sync/atomic"
	"testing"
)

// TestForCoversEachItemOnce checks that every item is run exactly once, in
// contiguous chunks numbered below NumChunks, for sizes around the grain.
func TestForCoversEachItemOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 64, 1000} {
		for _, grain := range []int{0, 1, 3, 100} {
			hits := make([]atomic.Int32, n)
			var chunks atomic.Int32
			want := NumChunks(n, grain)
			For(n, grain, Func(func(chunk, lo, hi int) {
				chunks.Add(1)
				if chunk < 0 || chunk >= want {
					t.Errorf("n=%d grain=%d: chunk %d outside [0, %d)", n, grain, chunk, want)
				}
				if lo != chunk*n/want || hi != (chunk+1)*n/want {
					t.Errorf("n=%d grain=%d: chunk %d is [%d, %d)", n, grain, chunk, lo, hi)
				}
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			}))
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("n=%d grain=%d: item %d run %d times", n, grain, i, h)
				}
			}
			if n > 0 && int(chunks.Load()) != want {
				t.Errorf("n=%d grain=%d: %d chunks, want %d", n, grain, chunks.Load(), want)
			}
		}
	}
}

func TestNumChunks(t *testing.T) {
	m := MaxChunks()
	for _, c := range []struct{ n, grain, want int }{
		{0, 1, 1}, {1, 1, 1}, {5, 10, 1}, {1 << 20, 1, m}, {1 << 20, 0, m}, {2 * m, 2, m},
	} {
		if got := NumChunks(c.n, c.grain); got != c.want {
			t.Errorf("NumChunks(%d, %d) = %d, want %d", c.n, c.grain, got, c.want)
		}
	}
}

type nop struct{}

func (nop) RunRange(int, int, int) {}

func TestForDoesNotAllocate(t *testing.T) {
	var task Task = nop{}
	if a := testing.AllocsPerRun(100, func() { For(1000, 1, task) }); a != 0 {
		t.Errorf("For allocates %v times per loop", a)
	}
}
