package model

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countTask records which chunk ran each item.
type countTask struct {
	runs   []int32
	chunks []int32
	maxC   atomic.Int32
}

func (c *countTask) RunRange(chunk, lo, hi int) {
	for i := lo; i < hi; i++ {
		c.runs[i]++
		c.chunks[i] = int32(chunk)
	}
	for {
		m := c.maxC.Load()
		if int32(chunk) <= m || c.maxC.CompareAndSwap(m, int32(chunk)) {
			return
		}
	}
}

// TestSpinTeamRunsEveryItemOnce: every loop on the team runs each item
// exactly once, in contiguous chunks numbered below the team's size,
// whether the helper is spinning, parked (after spinIdle without work) or
// just waking, and a parked helper does wake and take a chunk.
func TestSpinTeamRunsEveryItemOnce(t *testing.T) {
	tm := decodeTeam()
	if tm == nil {
		t.Skip("one core: no team")
	}
	if !tm.tryAcquire() {
		t.Fatal("team busy")
	}
	defer tm.release()
	if tm.tryAcquire() {
		t.Fatal("a second leader acquired the team")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	helperRan := 0
	for loop := 0; loop < 3000; loop++ {
		if loop%500 == 499 {
			time.Sleep(2 * spinIdle) // the helper parks; the next loops wake it
		}
		n := 1 + rng.IntN(40)
		c := &countTask{runs: make([]int32, n), chunks: make([]int32, n)}
		tm.parallelFor(n, 1+rng.IntN(4), c)
		for i, r := range c.runs {
			if r != 1 {
				t.Fatalf("loop %d: item %d of %d ran %d times", loop, i, n, r)
			}
			if i > 0 && c.chunks[i] != c.chunks[i-1] && c.chunks[i] != c.chunks[i-1]+1 {
				t.Fatalf("loop %d: chunks not contiguous: %v", loop, c.chunks)
			}
		}
		if int(c.maxC.Load()) >= tm.size {
			t.Fatalf("loop %d: chunk %d with a team of %d", loop, c.maxC.Load(), tm.size)
		}
		if c.maxC.Load() > 0 {
			helperRan++
		}
	}
	if helperRan == 0 {
		t.Fatal("no loop was split")
	}
	// A parked helper wakes for the next loop: chunk 0 (the caller's)
	// waits for chunk 1 to start, which only a helper can do meanwhile.
	for rep := 0; rep < 3; rep++ {
		time.Sleep(2 * spinIdle)
		c := &meetTask{started: make(chan struct{})}
		tm.parallelFor(2, 1, c)
		if !c.met {
			t.Fatalf("rep %d: after parking, no helper ran chunk 1 while the caller ran chunk 0", rep)
		}
	}
}

// meetTask's chunk 0 waits (up to a second) for chunk 1 to start.
type meetTask struct {
	started chan struct{}
	met     bool
}

func (m *meetTask) RunRange(chunk, lo, hi int) {
	if chunk == 1 {
		close(m.started)
		return
	}
	select {
	case <-m.started:
		m.met = true
	case <-time.After(time.Second):
	}
}

// TestDecoderTeamSameLogits: decoder steps give bit-identical logits
// whether they run on the spin team (the two halves of a one-row step on
// two cores; a prefill's loops split even when tiny) or all on the
// caller, and two decoders stepping at once (one gets the team, the other
// runs on its own) give what each gives alone. An odd head count and
// vocabulary make the halves unequal.
func TestDecoderTeamSameLogits(t *testing.T) {
	if decodeTeam() == nil {
		t.Skip("one core: no team")
	}
	oldRows, oldGrain, oldFixed := teamMaxRows, teamGrainMACs, team.fixed
	defer func() { teamMaxRows, teamGrainMACs, team.fixed = oldRows, oldGrain, oldFixed }()
	team.fixed = true // every step on the team (not as the tuner picks)
	teamGrainMACs = 1
	for _, cfg := range []Config{
		{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 40, VocabSize: 70, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1},
		{NLayer: 1, NHead: 3, NEmbd: 48, NPositions: 40, VocabSize: 71, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1},
	} {
		t.Run(fmt.Sprintf("H%d", cfg.NHead), func(t *testing.T) { teamSameLogits(t, cfg) })
	}
}

func teamSameLogits(t *testing.T, cfg Config) {
	p, err := NewParams(cfg, F32, rand.New(rand.NewPCG(9, 10)))
	if err != nil {
		t.Fatal(err)
	}
	run := func(seed uint64) [][]float32 {
		rng := rand.New(rand.NewPCG(seed, 1))
		d, err := NewDecoder(p, 1, cfg.NPositions)
		if err != nil {
			t.Error(err)
			return nil
		}
		prompt := make([]int32, 5)
		for i := range prompt {
			prompt[i] = int32(rng.IntN(cfg.VocabSize))
		}
		if err := d.Prefill(0, prompt); err != nil {
			t.Error(err)
			return nil
		}
		var out [][]float32
		for step := 0; step < 30; step++ {
			if d.Len(0) > 1 && rng.IntN(4) == 0 {
				if err := d.Pop(0); err != nil {
					t.Error(err)
					return nil
				}
			} else if err := d.Push([]int{0}, []int32{int32(rng.IntN(cfg.VocabSize))}); err != nil {
				t.Error(err)
				return nil
			}
			out = append(out, append([]float32(nil), d.Logits(0)...))
		}
		return out
	}
	same := func(what string, a, b [][]float32) {
		t.Helper()
		if fmt.Sprint(a) != fmt.Sprint(b) || len(a) == 0 {
			t.Fatalf("%s: logits differ", what)
		}
	}
	teamMaxRows = 16
	withTeam := [2][][]float32{run(1), run(2)}
	teamMaxRows = 0
	alone := [2][][]float32{run(1), run(2)}
	same("team vs caller, seed 1", withTeam[0], alone[0])
	same("team vs caller, seed 2", withTeam[1], alone[1])

	teamMaxRows = 16
	var both [2][][]float32
	var wg sync.WaitGroup
	for i := range both {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := 0; rep < 5; rep++ {
				both[i] = run(uint64(i + 1))
			}
		}()
	}
	wg.Wait()
	same("concurrent decoders, seed 1", both[0], alone[0])
	same("concurrent decoders, seed 2", both[1], alone[1])
}

// TestTeamTuner: fed step times where one mode is faster, the tuner moves
// to it after one trial, then spends few steps on the slower mode (trials
// ever further apart), and follows a change of which mode is faster.
func TestTeamTuner(t *testing.T) {
	u := newTeamTuner()
	cost := map[bool]time.Duration{true: 100, false: 60} // team slower
	run := func(steps int) (onTeam int) {
		for i := 0; i < steps; i++ {
			on := u.pick()
			if on {
				onTeam++
			}
			u.record(cost[on] + time.Duration(i%3)) // a little noise
		}
		return onTeam
	}
	run(2*trialLen + trialLen)
	if u.preferTeam {
		t.Fatal("still prefers the slower team after a trial")
	}
	run(minTrialGap + trialLen) // the next trial: the team 67% slower
	if u.gap != 4*minTrialGap {
		t.Fatalf("gap %d after a clear loss, want %d", u.gap, 4*minTrialGap)
	}
	if n := run(20000); n > 20000/50 {
		t.Fatalf("%d of 20000 steps on the slower mode", n)
	}
	if u.gap != maxTrialGap {
		t.Fatalf("trial gap %d after a stable stretch, want %d", u.gap, maxTrialGap)
	}
	cost[true] = 40 // now the team is faster
	run(maxTrialGap + 2*trialLen)
	if !u.preferTeam {
		t.Fatal("did not move back to the team once it was faster")
	}
	// the preferred team suddenly slows down: a trial comes at once
	for i := 0; i < 3; i++ { // gaps grow on clear wins
		run(u.gap + trialLen)
	}
	if u.gap < 4*minTrialGap {
		t.Fatalf("gap %d after clear wins", u.gap)
	}
	cost[true] = 200
	if n := run(4 * trialLen); n > 3*trialLen {
		t.Fatalf("%d of %d steps on the slowed team", n, 4*trialLen)
	}
	if u.preferTeam {
		t.Fatal("stayed on the slowed team")
	}
	cost[true] = 40
	// equal costs: no flapping
	cost[false] = 40
	before := u.preferTeam
	run(5000)
	if u.preferTeam != before {
		t.Fatal("switched between equally fast modes")
	}
}

// TestDecoderSeesNewParamsAfterPrefill: after the parameters change, a
// Prefill (or Reset) makes the next steps use them (no step keeps a copy
// of any weight): logits equal a new decoder's, bit for bit.
func TestDecoderSeesNewParamsAfterPrefill(t *testing.T) {
	cfg := Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 40, VocabSize: 70, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
	p, err := NewParams(cfg, F32, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(p, 1, cfg.NPositions)
	if err != nil {
		t.Fatal(err)
	}
	steps := func(d *Decoder) []float32 {
		if err := d.Prefill(0, []int32{3, 4, 5}); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []int32{6, 7, 8} {
			if err := d.Push([]int{0}, []int32{tok}); err != nil {
				t.Fatal(err)
			}
		}
		return append([]float32(nil), d.Logits(0)...)
	}
	before := steps(d)
	for _, q := range p.List { // new weights, c_attn's among them
		for j := range q.F32 {
			q.F32[j] *= 1.5
		}
	}
	after := steps(d)
	d2, err := NewDecoder(p, 1, cfg.NPositions)
	if err != nil {
		t.Fatal(err)
	}
	if fresh := steps(d2); fmt.Sprint(after) != fmt.Sprint(fresh) || fmt.Sprint(after) == fmt.Sprint(before) {
		t.Fatal("after a Prefill the decoder does not give a new decoder's logits for the changed parameters")
	}
}

// TestRowStepHelperLate: when the helper is parked as a batch-1 step
// starts (it parks after spinIdle without work), the caller takes the
// helper's half itself rather than wait; the logits are still those of
// the caller alone, and over a run both ways occur.
func TestRowStepHelperLate(t *testing.T) {
	if decodeTeam() == nil {
		t.Skip("one core: no team")
	}
	oldRows, oldFixed := teamMaxRows, team.fixed
	defer func() { teamMaxRows, team.fixed = oldRows, oldFixed }()
	team.fixed = true
	cfg := Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 64, VocabSize: 70, LayerNormEpsilon: 1e-5, BkspcTokenID: 2, EOSTokenID: 1}
	p, err := NewParams(cfg, F32, rand.New(rand.NewPCG(11, 12)))
	if err != nil {
		t.Fatal(err)
	}
	run := func(late bool) (out []string, stolen, steps int) {
		d, err := NewDecoder(p, 1, cfg.NPositions)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Prefill(0, []int32{3, 4, 5}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 40; i++ {
			if late && i%8 == 0 {
				time.Sleep(3 * spinIdle) // the helper parks
			}
			if err := d.Push([]int{0}, []int32{int32(i*7) % 70}); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(d.Logits(0)))
		}
		return out, d.row.stolen, 40
	}
	teamMaxRows = 0
	alone, _, _ := run(false)
	teamMaxRows = 16
	stolen, ran := 0, 0
	for try := 0; try < 20 && (stolen == 0 || ran == 0); try++ {
		got, s, n := run(true)
		for i := range got {
			if got[i] != alone[i] {
				t.Fatalf("try %d, step %d: logits differ from the caller alone's", try, i)
			}
		}
		stolen, ran = stolen+s, ran+n-s
	}
	if stolen == 0 || ran == 0 {
		t.Fatalf("steps with the helper's half taken by the caller: %d, run by the helper: %d; want both", stolen, ran)
	}
	t.Logf("caller took the helper's half in %d steps, the helper ran it in %d", stolen, ran)
}
