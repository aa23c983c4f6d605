// Package parallel is smtrain's one parallel loop. For splits [0, n) into
// contiguous chunks and runs them on a process-wide pool of worker
// goroutines (one per GOMAXPROCS at first use; chunk 0 on the caller).
// The model's kernels, the objectives' row passes and the optimizer all
// use it; a loop too small to pay for the hand-off to a worker (a channel
// send, often a futex wake-up: several µs) asks for a grain larger than
// its size and runs on the caller.
//
// Chunks are numbered, so a task can keep per-chunk partial sums and
// reduce them in a fixed order: results are deterministic for a given
// GOMAXPROCS.
package parallel

import (
	"runtime"
	"sync"
)

// Task is a unit of data-parallel work: RunRange processes items [lo, hi)
// as chunk number chunk (0 ≤ chunk < the loop's chunk count, at most
// MaxChunks()).
type Task interface {
	RunRange(chunk, lo, hi int)
}

// Func adapts a function to a Task.
type Func func(chunk, lo, hi int)

// RunRange calls f.
func (f Func) RunRange(chunk, lo, hi int) { f(chunk, lo, hi) }

type job struct {
	t             Task
	chunk, lo, hi int
	wg            *sync.WaitGroup
}

var (
	once   sync.Once
	jobs   chan job
	size   int // chunks a loop may use (GOMAXPROCS at first use)
	wgPool = sync.Pool{New: func() any { return new(sync.WaitGroup) }}
)

func start() {
	size = max(runtime.GOMAXPROCS(0), 1)
	jobs = make(chan job, 4*size)
	for i := 1; i < size; i++ {
		go func() {
			for j := range jobs {
				j.t.RunRange(j.chunk, j.lo, j.hi)
				j.wg.Done()
			}
		}()
	}
}

// MaxChunks is the largest number of chunks For uses; tasks size their
// per-chunk scratch with it.
func MaxChunks() int {
	once.Do(start)
	return size
}

// NumChunks is the number of chunks For splits n items into when each
// chunk should hold at least grain items.
func NumChunks(n, grain int) int {
	return max(1, min(MaxChunks(), n/max(grain, 1)))
}

// For splits [0, n) into NumChunks(n, grain) contiguous chunks, chunk k
// being [k·n/c, (k+1)·n/c), and runs them on the pool (chunk 0 on the
// calling goroutine). It does not allocate in steady state. A task must
// not call For itself (the pool's workers would wait on each other).
func For(n, grain int, t Task) {
	if n <= 0 {
		return
	}
	c := NumChunks(n, grain)
	if c == 1 {
		t.RunRange(0, 0, n)
		return
	}
	wg := wgPool.Get().(*sync.WaitGroup)
	wg.Add(c - 1)
	for k := 1; k < c; k++ {
		jobs <- job{t: t, chunk: k, lo: k * n / c, hi: (k + 1) * n / c, wg: wg}
	}
	t.RunRange(0, 0, n/c)
	wg.Wait()
	wgPool.Put(wg)
}
