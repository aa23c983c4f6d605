package data

import (
	"fmt"
)

// Compile lays out action sequences as one batch of B = len(seqs) rows of T
// input slots (DESIGN 3.1 and 4). Per row, with a stack of in-row indices:
//
//	prompt tokens and observation items: push (position = depth, parent =
//	    top); the backspace floor moves up to the stack size
//	token action / noise: state = top; push
//	<bkspc>: state = top; pop (an error below the floor)
//	terminal action (last action of a Done sequence): state = top; no input
//	next state = top after the action and after any observation items that
//	    directly follow it (-1 when terminal)
//
// Every agent item (noise included) advances the discount index T (from
// seq.T0); a transition is emitted for actions, and for noise only when
// seq.NoiseAsAction. BkspcAllowed is true exactly at inputs pushed by the
// agent (above the floor). Padding slots hold the pad id, position 0,
// parent -1. A sequence needing more than T inputs is an error. All
// sequences must share the same pad id.
func Compile(seqs []*ActionSeq, T int) (*Batch, error) {
	if T <= 0 {
		return nil, fmt.Errorf("compile: T = %d", T)
	}
	B := len(seqs)
	b := &Batch{
		B: B, T: T,
		Inputs:       make([]int32, B*T),
		Positions:    make([]int32, B*T),
		Parents:      make([]int32, B*T),
		Lengths:      make([]int, B),
		BkspcAllowed: make([]bool, B*T),
	}
	for i := range b.Parents {
		b.Parents[i] = -1
	}
	if B > 0 {
		b.PadID = seqs[0].Pad
	}
	nTrans := 0
	for _, s := range seqs {
		nTrans += s.NumActions()
	}
	b.Trans = make([]Transition, 0, nTrans)
	for r, s := range seqs {
		if s.Pad != b.PadID {
			return nil, fmt.Errorf("compile: sequence %d has pad id %d, sequence 0 has %d", r, s.Pad, b.PadID)
		}
		if err := compileRow(b, r, s); err != nil {
			return nil, fmt.Errorf("compile: sequence %d: %w", r, err)
		}
	}
	for r := 0; r < B; r++ {
		for j := b.Lengths[r]; j < T; j++ {
			b.Inputs[r*T+j] = b.PadID
		}
	}
	return b, nil
}

func compileRow(b *Batch, r int, s *ActionSeq) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if need := s.NumInputs(); need > b.T {
		return fmt.Errorf("needs %d inputs, more than T = %d (truncate first)", need, b.T)
	}
	T := b.T
	base := r * T
	stack := make([]int32, 0, T)
	n := int32(0)
	floor := 0
	push := func(tok int32, agent bool) {
		k := base + int(n)
		b.Inputs[k] = tok
		b.Positions[k] = int32(len(stack))
		if len(stack) > 0 {
			b.Parents[k] = stack[len(stack)-1]
		}
		b.BkspcAllowed[k] = agent
		stack = append(stack, n)
		n++
	}
	for _, tok := range s.Prompt {
		push(tok, false)
	}
	floor = len(stack)
	last := s.lastAgent()
	t := s.T0
	items := s.Items
	for i := 0; i < len(items); i++ {
		it := items[i]
		if it.Kind == KindObs {
			push(it.Tok, false)
			floor = len(stack)
			continue
		}
		state := int32(base) + stack[len(stack)-1]
		terminal := s.Done && i == last
		switch {
		case it.Tok == s.Bkspc:
			if len(stack) <= floor {
				return fmt.Errorf("item %d: <bkspc> at the floor", i)
			}
			stack = stack[:len(stack)-1]
		case terminal:
		default:
			push(it.Tok, true)
		}
		for i+1 < len(items) && items[i+1].Kind == KindObs {
			i++
			push(items[i].Tok, false)
			floor = len(stack)
		}
		next := int32(-1)
		if !terminal {
			next = int32(base) + stack[len(stack)-1]
		}
		if it.Kind == KindAction || s.NoiseAsAction {
			b.Trans = append(b.Trans, Transition{
				State: state, Action: it.Tok, Next: next, Done: terminal,
				T: t, Set: s.Set, Seq: int32(r),
			})
		}
		t++
	}
	b.Lengths[r] = int(n)
	return nil
}

// Ancestors returns the in-row chain of input j of row r: j, its parent,
// its grandparent, ... up to the first input.
func (b *Batch) Ancestors(r, j int) []int32 {
	var out []int32
	for k := int32(j); k >= 0; k = b.Parents[r*b.T+int(k)] {
		out = append(out, k)
		if len(out) > b.T { // corrupted parents; never loop forever
			break
		}
	}
	return out
}
