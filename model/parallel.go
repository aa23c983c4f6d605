package model

import (
	"runtime"
	"sync"
)

// rangeTask is a unit of data-parallel work: runRange processes items
// [lo, hi) as chunk number chunk (chunks are numbered 0..nChunks-1, so a
// task can keep per-chunk partial sums and reduce them in a fixed order,
// which keeps results deterministic).
type rangeTask interface {
	runRange(chunk, lo, hi int)
}

type poolJob struct {
	t             rangeTask
	chunk, lo, hi int
	wg            *sync.WaitGroup
}

var (
	poolOnce sync.Once
	poolJobs chan poolJob
	poolSize int // number of chunks a parallel loop may use (GOMAXPROCS at start)
	wgPool   = sync.Pool{New: func() any { return new(sync.WaitGroup) }}
)

func startPool() {
	poolSize = runtime.GOMAXPROCS(0)
	if poolSize < 1 {
		poolSize = 1
	}
	poolJobs = make(chan poolJob, 4*poolSize)
	for i := 1; i < poolSize; i++ {
		go func() {
			for j := range poolJobs {
				j.t.runRange(j.chunk, j.lo, j.hi)
				j.wg.Done()
			}
		}()
	}
}

// maxChunks is the largest number of chunks parallelFor uses; tasks size
// their per-chunk scratch with it.
func maxChunks() int {
	poolOnce.Do(startPool)
	return poolSize
}

// numChunks is the number of chunks parallelFor splits n items into when
// each chunk should hold at least grain items.
func numChunks(n, grain int) int {
	c := maxChunks()
	if grain < 1 {
		grain = 1
	}
	if k := n / grain; k < c {
		c = k
	}
	if c < 1 {
		c = 1
	}
	return c
}

// parallelFor splits [0, n) into numChunks(n, grain) contiguous chunks and
// runs them on the worker pool (chunk 0 on the calling goroutine). It does
// not allocate in steady state. Tasks must not call parallelFor themselves.
func parallelFor(n, grain int, t rangeTask) {
	if n <= 0 {
		return
	}
	c := numChunks(n, grain)
	if c == 1 {
		t.runRange(0, 0, n)
		return
	}
	wg := wgPool.Get().(*sync.WaitGroup)
	wg.Add(c - 1)
	for k := 1; k < c; k++ {
		poolJobs <- poolJob{t: t, chunk: k, lo: k * n / c, hi: (k + 1) * n / c, wg: wg}
	}
	t.runRange(0, 0, n/c)
	wg.Wait()
	wgPool.Put(wg)
}
