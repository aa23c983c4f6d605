// Package decode samples from a policy with a backspace action over an
// incremental KV-cache decoder (DESIGN.md 3.3).
//
// Each sequence keeps a stack of (token, KV entries, logits) inside the
// decoder. At every step the sampler draws one action from softmax(L/T)
// over the vocabulary, <bkspc> included:
//
//   - an ordinary token is pushed: one incremental forward step (batched
//     over all live sequences with Stepper.Push);
//   - <bkspc> pops the top entry: no forward pass, the cached logits of the
//     new top choose the next action;
//   - a stop token or a stop string ends the sample.
//
// <bkspc> is masked at the prompt floor (it cannot delete the prompt) and is
// never removed by top-k/top-p filtering unless an option allows it. Total
// actions are capped (default 4x MaxNewTokens) so backspace loops end, and
// greedy decoding blocks the token just deleted at the state it was deleted
// from ("retry block") by default.
//
// Every sample draws from its own random stream derived from (Seed, sample
// index), and samples are grouped into fixed batches by index, so results
// do not depend on the number of workers or on scheduling.
package decode

// Stepper is the incremental decoder the sampler drives. It is the method
// set of model.Decoder; tests use a fake.
//
// A Stepper holds a fixed number of sequence slots, each a stack of
// entries (one per input token, with its KV entries and output logits).
type Stepper interface {
	// Prefill resets slot seq and runs the whole prompt in one causal pass.
	Prefill(seq int, tokens []int32) error
	// Push appends tokens[i] to slot seqs[i] for every i in one batched
	// forward step.
	Push(seqs []int, tokens []int32) error
	// Pop drops the top entry of slot seq without a forward pass.
	Pop(seq int) error
	// Logits returns the logits (V) at the top of slot seq. The slice is
	// read-only and valid until the next call that changes the slot.
	Logits(seq int) []float32
	// Len is the number of entries of slot seq (prompt included).
	Len(seq int) int
	// Reset empties slot seq.
	Reset(seq int)
}

// Factory makes a Stepper with nseq slots of at most maxLen entries each.
// Generate calls it once per worker.
type Factory func(nseq, maxLen int) (Stepper, error)
