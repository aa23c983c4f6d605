package model

import (
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"smtrain/internal/parallel"
)

// spinTeam runs the parallel loops of a latency-bound caller: a decoder
// step of a few rows is a chain of loops of 0.5–5 µs each (a batch-1 step
// is one loop whose chunks sync at barriers, see rowStep), and handing
// each to the channel pool (a goroutine wake-up through the scheduler,
// often a futex) costs about as much as the loop. The team's helper goroutines instead
// spin on an atomic word after each loop, so the next one starts on them
// within a few hundred nanoseconds; after spinIdle without work they park
// on a channel (costing nothing) until a loop wakes them.
//
// Work is claimed, not assigned: the leader publishes a loop's chunks and
// then claims chunks itself like any helper, so a helper that is parked or
// descheduled never holds a loop up unless it has already claimed a chunk.
// One leader at a time: tryAcquire fails while another goroutine leads,
// and that caller uses the channel pool instead.
type spinTeam struct {
	lead sync.Mutex
	size int // workers, the leader included (≤ maxChunks)
	// state is seq<<32 | nChunks<<16 | next: the loop's sequence number,
	// its chunk count and the next chunk to claim, claimed by CAS (a CAS
	// for a past loop fails because seq changed).
	state atomic.Uint64
	done  atomic.Int64  // chunks helpers finished in the current loop
	seq   uint32        // the leader's last loop (only the leader uses it)
	stole int           // chunks the leader took with stealRest in the current loop
	task  parallel.Task // the current loop; stable while any chunk runs
	n     int
	// per helper: parked is 1 while it sleeps on wake
	parked []atomic.Int32
	wake   []chan struct{}
	// whether decoder steps use the team: tuned per step size class
	// (one row; more rows), or fixed by SMTRAIN_DECODE_TEAM=on
	tune  [2]teamTuner
	fixed bool
}

// spinIdle is how long a helper spins without work before it parks.
const spinIdle = 200 * time.Microsecond

// maxTeam caps the team's size: a batch-1 step is cut in two halves
// (rowStep), and a step of a few rows has little more to split, so more
// helpers would mostly spin.
const maxTeam = 2

var (
	teamOnce sync.Once
	team     *spinTeam // nil on one core
)

// decodeTeam returns the process-wide team (nil with GOMAXPROCS 1 or
// SMTRAIN_DECODE_TEAM=off), starting its helpers on first use. Decoder
// steps use it when its tuner says so, always with SMTRAIN_DECODE_TEAM=on.
func decodeTeam() *spinTeam {
	teamOnce.Do(func() {
		n := min(parallel.MaxChunks(), maxTeam)
		mode := os.Getenv("SMTRAIN_DECODE_TEAM")
		if n < 2 || mode == "off" {
			return
		}
		t := &spinTeam{size: n, parked: make([]atomic.Int32, n-1), wake: make([]chan struct{}, n-1),
			tune: [2]teamTuner{newTeamTuner(), newTeamTuner()}, fixed: mode == "on"}
		for i := range t.wake {
			t.wake[i] = make(chan struct{}, 1)
			go t.helper(i)
		}
		team = t
	})
	return team
}

func (t *spinTeam) tryAcquire() bool { return t.lead.TryLock() }
func (t *spinTeam) release()         { t.lead.Unlock() }

// parallelFor is parallel.For on the team, in at most t.size chunks; only
// the goroutine that holds the team may call it.
func (t *spinTeam) parallelFor(n, grain int, task parallel.Task) {
	if n <= 0 {
		return
	}
	c := min(parallel.NumChunks(n, grain), t.size)
	if c == 1 {
		task.RunRange(0, 0, n)
		return
	}
	t.task, t.n, t.stole = task, n, 0
	t.done.Store(0)
	t.seq++
	// chunk 0 is the leader's from the start (no CAS race with a helper
	// reading the new state)
	t.state.Store(uint64(t.seq)<<32 | uint64(c)<<16 | 1)
	for i := range t.parked {
		if t.parked[i].Load() == 1 && t.parked[i].CompareAndSwap(1, 0) {
			select {
			case t.wake[i] <- struct{}{}:
			default:
			}
		}
	}
	task.RunRange(0, 0, n/c)
	mine := 1 + t.claim(t.seq, false) + t.stole
	for spins := 0; mine+int(t.done.Load()) < c; spins++ {
		if spins&(1<<16-1) == 1<<16-1 {
			// ~100 µs: a helper that claimed a chunk was descheduled;
			// let the scheduler run it should it be queued on our P
			runtime.Gosched()
		}
	}
}

// claim runs chunks of loop seq until none is left and returns how many
// it ran; a helper (report) adds each finished chunk to done at once.
func (t *spinTeam) claim(seq uint32, report bool) int {
	ran := 0
	for {
		st := t.state.Load()
		if uint32(st>>32) != seq {
			return ran
		}
		nc, next := int(st>>16&0xffff), int(st&0xffff)
		if next >= nc {
			return ran
		}
		if !t.state.CompareAndSwap(st, st+1) {
			continue
		}
		// chunk next of loop seq is ours: the leader does not touch task
		// or n before every chunk is done
		task, n := t.task, t.n
		task.RunRange(next, next*n/nc, (next+1)*n/nc)
		ran++
		if report {
			t.done.Add(1)
		}
	}
}

// stealRest lets the leader, from inside its chunk of the current loop,
// take every chunk no helper has claimed yet, for a task whose chunks
// wait for each other (rowStep's halves): it reports whether it took any,
// and the leader then runs them itself.
func (t *spinTeam) stealRest() bool {
	for {
		st := t.state.Load()
		nc, next := int(st>>16&0xffff), int(st&0xffff)
		if uint32(st>>32) != t.seq || next >= nc {
			return false
		}
		if t.state.CompareAndSwap(st, st&^0xffff|uint64(nc)) {
			t.stole += nc - next
			return true
		}
	}
}

func (t *spinTeam) helper(id int) {
	var seen uint32
	last := time.Now()
	for spins := 0; ; spins++ {
		st := t.state.Load()
		if s := uint32(st >> 32); s != seen {
			seen = s
			t.claim(s, true)
			last, spins = time.Now(), 0
			continue
		}
		if spins&255 != 255 || time.Since(last) < spinIdle {
			continue
		}
		// park: announce it, then look once more for a loop published
		// before the announcement was visible
		t.parked[id].Store(1)
		if uint32(t.state.Load()>>32) != seen && t.parked[id].CompareAndSwap(1, 0) {
			continue
		}
		<-t.wake[id] // a leader took parked back to 0 and sends (or sent) this
		last = time.Now()
	}
}

// teamTuner decides, step by step, whether a decoder step runs on the
// team or all on the caller. Both give bit-identical results; which is
// faster depends on the machine of the moment (on a shared virtual machine
// we measured the team 1.9× faster per batch-1 step in one period and 1.4×
// slower in another, when cross-core traffic was slow), so it measures:
// runs of steps in the preferred mode alternate with short trials of the
// other, and the medians of the last trialLen steps of each are compared.
// The preference flips when the trial is clearly faster; otherwise the
// next trial comes twice as late, four times when the trial was more than
// 25% slower (up to maxTrialGap steps), and at once when the preferred
// mode's median has grown by half since the last decision (the machine
// changed). Only the goroutine holding the team uses it.
type teamTuner struct {
	preferTeam bool
	gap, left  int // steps between trials, steps left before the next one
	trial      int // steps left in the current trial (0: none)
	base, try  [trialLen]time.Duration
	nb, nt     int
	ref        time.Duration // the preferred mode's median at the last decision
}

const (
	trialLen    = 8
	minTrialGap = 32
	maxTrialGap = 4096
)

func newTeamTuner() teamTuner {
	return teamTuner{preferTeam: true, gap: minTrialGap, left: 2 * trialLen}
}

// pick says whether the next step runs on the team.
func (u *teamTuner) pick() bool {
	if u.trial > 0 {
		return !u.preferTeam
	}
	return u.preferTeam
}

// record takes the duration of the step pick was asked about.
func (u *teamTuner) record(d time.Duration) {
	if u.trial > 0 {
		u.try[u.nt%trialLen] = d
		u.nt++
		if u.trial--; u.trial > 0 {
			return
		}
		try, base := medianDur(u.try), medianDur(u.base)
		switch u.ref = base; {
		case try < base*19/20:
			u.preferTeam = !u.preferTeam
			u.gap, u.ref = minTrialGap, try
		case try > base*5/4: // a clear loss: the next trial comes 4× later
			u.gap = min(4*u.gap, maxTrialGap)
		default:
			u.gap = min(2*u.gap, maxTrialGap)
		}
		u.left, u.nb = u.gap, 0
		return
	}
	u.base[u.nb%trialLen] = d
	u.nb++
	if u.nb%trialLen == 0 && u.ref > 0 && medianDur(u.base) > u.ref*3/2 {
		u.left = 0 // the preferred mode got much slower: try the other now
	}
	if u.left--; u.left <= 0 && u.nb >= trialLen {
		u.trial, u.nt = trialLen, 0
	}
}

// medianDur is the median of a window (sorted in its own copy).
func medianDur(v [trialLen]time.Duration) time.Duration {
	slices.Sort(v[:])
	return v[trialLen/2]
}
