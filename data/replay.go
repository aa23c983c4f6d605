package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"

	"smtrain/internal/atomicfile"
)

// ReplayBuffer holds policy generations (SetG action sequences with their
// own backspaces; every action is trained) in a bounded FIFO: adding to a
// full buffer evicts the oldest entry.
type ReplayBuffer struct {
	cap   int
	items []*ActionSeq // ring buffer
	head  int          // index of the oldest item when full
	added int64
}

// NewReplayBuffer returns an empty buffer holding at most capacity sequences.
func NewReplayBuffer(capacity int) (*ReplayBuffer, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("replay buffer capacity %d", capacity)
	}
	return &ReplayBuffer{cap: capacity}, nil
}

// Cap is the capacity.
func (r *ReplayBuffer) Cap() int { return r.cap }

// Len is the number of sequences held.
func (r *ReplayBuffer) Len() int { return len(r.items) }

// Added is the number of sequences ever added.
func (r *ReplayBuffer) Added() int64 { return r.added }

// Add appends a copy of s marked SetG (noise-as-action set, since a
// generation has no noise items), evicting the oldest when full. The
// sequence must be valid.
func (r *ReplayBuffer) Add(s *ActionSeq) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("replay buffer: %w", err)
	}
	c := s.Clone()
	c.Set = SetG
	c.NoiseAsAction = true
	r.added++
	if len(r.items) < r.cap {
		r.items = append(r.items, c)
		return nil
	}
	r.items[r.head] = c
	r.head = (r.head + 1) % r.cap
	return nil
}

// All returns the sequences oldest first (shared, do not modify).
func (r *ReplayBuffer) All() []*ActionSeq {
	out := make([]*ActionSeq, 0, len(r.items))
	for k := 0; k < len(r.items); k++ {
		out = append(out, r.items[(r.head+k)%len(r.items)])
	}
	return out
}

// Sample draws n sequences uniformly without replacement (all of them, in
// random order, when n >= Len).
func (r *ReplayBuffer) Sample(n int, rng *rand.Rand) []*ActionSeq {
	all := r.All()
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	if n < len(all) {
		all = all[:n]
	}
	return all
}

// replayFileVersion is the version of the saved format.
const replayFileVersion = 1

type replayFile struct {
	Format   string    `json:"format"`
	Version  int       `json:"version"`
	Capacity int       `json:"capacity"`
	Added    int64     `json:"added"`
	Seqs     []seqJSON `json:"seqs"`
}

type seqJSON struct {
	Prompt []int32 `json:"prompt"`
	Toks   []int32 `json:"toks"`
	Kinds  []uint8 `json:"kinds"`
	Done   bool    `json:"done"`
	T0     int32   `json:"t0"`
	Bkspc  int32   `json:"bkspc"`
	Pad    int32   `json:"pad"`
}

// Save writes the buffer (oldest first) to path atomically as JSON
// {"format":"smtrain-replay","version":1,...}.
func (r *ReplayBuffer) Save(path string) error {
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}

// MarshalJSON returns the saved form of the buffer (see Save).
func (r *ReplayBuffer) MarshalJSON() ([]byte, error) {
	f := replayFile{Format: "smtrain-replay", Version: replayFileVersion, Capacity: r.cap, Added: r.added, Seqs: []seqJSON{}}
	for _, s := range r.All() {
		sj := seqJSON{Prompt: s.Prompt, Done: s.Done, T0: s.T0, Bkspc: s.Bkspc, Pad: s.Pad, Toks: []int32{}, Kinds: []uint8{}}
		for _, it := range s.Items {
			sj.Toks = append(sj.Toks, it.Tok)
			sj.Kinds = append(sj.Kinds, uint8(it.Kind))
		}
		f.Seqs = append(f.Seqs, sj)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("replay buffer: %w", err)
	}
	return b, nil
}

// LoadReplayBuffer reads a buffer written by Save.
func LoadReplayBuffer(path string) (*ReplayBuffer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("replay buffer: %w", err)
	}
	r, err := ParseReplayBuffer(raw)
	if err != nil {
		return nil, fmt.Errorf("replay buffer %s: %w", path, err)
	}
	return r, nil
}

// ParseReplayBuffer parses the contents of a saved buffer.
func ParseReplayBuffer(raw []byte) (*ReplayBuffer, error) {
	var f replayFile
	if err := decodeStrict(raw, &f, true); err != nil {
		return nil, err
	}
	if f.Format != "smtrain-replay" {
		return nil, fmt.Errorf("format %q is not smtrain-replay", f.Format)
	}
	if f.Version != replayFileVersion {
		return nil, fmt.Errorf("version %d not supported (this build reads version %d; regenerate the buffer with rollouts)", f.Version, replayFileVersion)
	}
	r, err := NewReplayBuffer(f.Capacity)
	if err != nil {
		return nil, err
	}
	if len(f.Seqs) > f.Capacity {
		return nil, fmt.Errorf("%d sequences exceed the capacity %d", len(f.Seqs), f.Capacity)
	}
	if f.Added < int64(len(f.Seqs)) {
		return nil, errors.New("\"added\" is smaller than the number of sequences")
	}
	for i, sj := range f.Seqs {
		if len(sj.Toks) != len(sj.Kinds) {
			return nil, fmt.Errorf("at seqs[%d]: %d toks but %d kinds", i, len(sj.Toks), len(sj.Kinds))
		}
		s := &ActionSeq{Prompt: sj.Prompt, Done: sj.Done, T0: sj.T0, Bkspc: sj.Bkspc, Pad: sj.Pad, Set: SetG, NoiseAsAction: true}
		for k, t := range sj.Toks {
			s.Items = append(s.Items, Item{t, ItemKind(sj.Kinds[k])})
		}
		if err := r.Add(s); err != nil {
			return nil, fmt.Errorf("at seqs[%d]: %w", i, err)
		}
	}
	r.added = f.Added
	return r, nil
}
