package decode

import (
	"fmt"
	"hash/fnv"
)

// fakeModel is a Stepper whose logits are a deterministic function of the
// prefix. It checks the sampler's use of the cache: it refuses to pop into
// the prompt, to grow past maxLen, and counts forward evaluations.
type fakeModel struct {
	nseq, maxLen int
	fn           func(prefix []int32) []float32
	stacks       [][]int32     // per slot: the full prefix, prompt included
	logits       [][][]float32 // per slot: logits at every entry
	floor        []int         // per slot: prompt length
	forwards     int           // prefix evaluations (prefill tokens + pushes)
	pushCalls    int
	maxBatch     int
}

var _ Stepper = (*fakeModel)(nil)

func newFake(nseq, maxLen int, fn func([]int32) []float32) *fakeModel {
	return &fakeModel{nseq: nseq, maxLen: maxLen, fn: fn,
		stacks: make([][]int32, nseq), logits: make([][][]float32, nseq), floor: make([]int, nseq)}
}

func fakeFactory(fn func([]int32) []float32) Factory {
	return func(nseq, maxLen int) (Stepper, error) { return newFake(nseq, maxLen, fn), nil }
}

func (f *fakeModel) check(seq int) error {
	if seq < 0 || seq >= f.nseq {
		return fmt.Errorf("slot %d out of range %d", seq, f.nseq)
	}
	return nil
}

func (f *fakeModel) push(seq int, t int32) error {
	if len(f.stacks[seq]) >= f.maxLen {
		return fmt.Errorf("slot %d full (%d)", seq, f.maxLen)
	}
	f.stacks[seq] = append(f.stacks[seq], t)
	prefix := append([]int32(nil), f.stacks[seq]...)
	f.logits[seq] = append(f.logits[seq], f.fn(prefix))
	f.forwards++
	return nil
}

func (f *fakeModel) Prefill(seq int, tokens []int32) error {
	if err := f.check(seq); err != nil {
		return err
	}
	f.Reset(seq)
	for _, t := range tokens {
		if err := f.push(seq, t); err != nil {
			return err
		}
	}
	f.floor[seq] = len(tokens)
	return nil
}

func (f *fakeModel) Push(seqs []int, tokens []int32) error {
	if len(seqs) != len(tokens) {
		return fmt.Errorf("%d slots, %d tokens", len(seqs), len(tokens))
	}
	f.pushCalls++
	f.maxBatch = max(f.maxBatch, len(seqs))
	for i, s := range seqs {
		if err := f.check(s); err != nil {
			return err
		}
		if err := f.push(s, tokens[i]); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeModel) Pop(seq int) error {
	if err := f.check(seq); err != nil {
		return err
	}
	n := len(f.stacks[seq])
	if n <= f.floor[seq] {
		return fmt.Errorf("pop into the prompt of slot %d", seq)
	}
	f.stacks[seq] = f.stacks[seq][:n-1]
	f.logits[seq] = f.logits[seq][:n-1]
	return nil
}

func (f *fakeModel) Logits(seq int) []float32 {
	l := f.logits[seq]
	if len(l) == 0 {
		return nil
	}
	return l[len(l)-1]
}

func (f *fakeModel) Len(seq int) int { return len(f.stacks[seq]) }

func (f *fakeModel) Reset(seq int) {
	f.stacks[seq] = f.stacks[seq][:0]
	f.logits[seq] = f.logits[seq][:0]
	f.floor[seq] = 0
}

// hashLogits gives every prefix its own pseudo-random logits (V) in
// [-scale, scale).
func hashLogits(v int, scale float32) func([]int32) []float32 {
	return func(prefix []int32) []float32 {
		h := fnv.New64a()
		for _, t := range prefix {
			h.Write([]byte{byte(t), byte(t >> 8), byte(t >> 16), byte(t >> 24)})
		}
		x := h.Sum64()
		out := make([]float32, v)
		for i := range out {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			out[i] = scale * (float32(x>>40)/float32(1<<24)*2 - 1)
		}
		return out
	}
}
