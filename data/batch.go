package data

// Set says which distribution a transition belongs to (DESIGN.md 4).
type Set uint8

const (
	// SetD is (augmented) expert data.
	SetD Set = iota
	// SetG is a policy generation from the replay buffer.
	SetG
)

// Transition is one trained action s_i -a_i-> s'_i of a compiled batch.
// State and Next index rows of the flattened [B*T] input arrays.
type Transition struct {
	State  int32 // row index (b*T + j) whose logits choose the action
	Action int32 // token id taken (may be <bkspc>, <eos> or end-of-turn)
	Next   int32 // row index of the next state; -1 when Done
	Done   bool  // terminal: <eos> or the final end-of-turn of an episode
	T      int32 // discount index t_i among the episode's agent transitions
	Set    Set   // SetD or SetG
	Seq    int32 // sequence (row b of the batch) this transition belongs to
}

// Batch is a compiled batch of B sequences padded to T inputs (DESIGN.md 3.1).
// Inputs, Positions, Parents and BkspcAllowed are row-major [B*T].
type Batch struct {
	B, T int
	// Inputs are token ids; padding slots hold PadID.
	Inputs []int32
	// Positions are position ids (= depth in the trie); 0 at padding.
	Positions []int32
	// Parents are the in-row index (0..T-1) of each input's parent in the
	// trie, -1 for the first input of a row and for padding. An input
	// attends to itself and its ancestors.
	Parents []int32
	// Lengths are the number of real (non-padding) inputs of each row.
	Lengths []int
	// BkspcAllowed says, per input row used as a state, whether <bkspc>
	// is a legal action there (false at the prompt/observation floor).
	BkspcAllowed []bool
	// Trans are the trained transitions (loss-masked actions only).
	Trans []Transition
	// PadID is the token id used at padding slots.
	PadID int32
}

// NumTokens is the number of trained actions (the token count used to
// normalise gradient accumulation).
func (b *Batch) NumTokens() int { return len(b.Trans) }
