package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// ItemKind says what an item of an action sequence is.
type ItemKind uint8

const (
	// KindAction is an agent action: a token, <bkspc>, <eos> or <|end|>.
	// Every action is a trained transition.
	KindAction ItemKind = iota
	// KindNoise is a noise token inserted by augmentation. It is pushed
	// like a token and counts in the discount index, but its transition is
	// trained only when the sequence's NoiseAsAction is set.
	KindNoise
	// KindObs is an environment (observation) input: pushed, never an
	// action; after an observation the backspace floor moves up to it.
	KindObs
)

func (k ItemKind) String() string {
	switch k {
	case KindAction:
		return "action"
	case KindNoise:
		return "noise"
	case KindObs:
		return "obs"
	}
	return fmt.Sprintf("ItemKind(%d)", uint8(k))
}

// Item is one element of an action sequence.
type Item struct {
	Tok  int32
	Kind ItemKind
}

// ActionSeq is one episode as a prompt of non-deletable inputs followed by
// agent actions (possibly <bkspc>), noise tokens and observation inputs.
type ActionSeq struct {
	// Prompt are the non-deletable inputs; Prompt[0] is a role marker (chat)
	// or <eos> used as BOS (plain text), so there is always a first state.
	Prompt []int32
	// Items are the actions, noise tokens and observations in order.
	Items []Item
	// Done says the last action is terminal (<eos> or the final <|end|>):
	// its transition has Done and no next state, and it takes no input
	// slot. When false the episode was cut off and its last transition
	// bootstraps from the state after it.
	Done bool
	// NoiseAsAction trains noise-token transitions like actions.
	NoiseAsAction bool
	// Set is SetD (expert data) or SetG (policy generations).
	Set Set
	// T0 is the discount index of the first agent item (non-zero after
	// left truncation dropped earlier agent transitions).
	T0 int32
	// Bkspc and Pad are the ids of <bkspc> and <pad> in the vocabulary.
	Bkspc, Pad int32
}

// Clone returns a deep copy of s.
func (s *ActionSeq) Clone() *ActionSeq {
	c := *s
	c.Prompt = append([]int32(nil), s.Prompt...)
	c.Items = append([]Item(nil), s.Items...)
	return &c
}

// lastAgent returns the index of the last agent (action or noise) item, -1 if none.
func (s *ActionSeq) lastAgent() int {
	for i := len(s.Items) - 1; i >= 0; i-- {
		if s.Items[i].Kind != KindObs {
			return i
		}
	}
	return -1
}

// Validate checks the structural rules Compile relies on: a non-empty
// prompt, known kinds, noise never <bkspc>, backspaces never below the
// floor, and for Done sequences a last item that is a non-backspace action.
func (s *ActionSeq) Validate() error {
	if len(s.Prompt) == 0 {
		return errors.New("empty prompt (need at least a BOS/role marker)")
	}
	for i, t := range s.Prompt {
		if t < 0 {
			return fmt.Errorf("prompt[%d]: negative token id %d", i, t)
		}
	}
	depth, floor := len(s.Prompt), len(s.Prompt)
	for i, it := range s.Items {
		if it.Tok < 0 {
			return fmt.Errorf("item %d: negative token id %d", i, it.Tok)
		}
		switch it.Kind {
		case KindObs:
			depth++
			floor = depth
		case KindAction, KindNoise:
			if it.Tok == s.Bkspc {
				if it.Kind == KindNoise {
					return fmt.Errorf("item %d: a noise item cannot be <bkspc>", i)
				}
				if depth <= floor {
					return fmt.Errorf("item %d: <bkspc> at the prompt/observation floor", i)
				}
				depth--
				continue
			}
			depth++
		default:
			return fmt.Errorf("item %d: unknown kind %d", i, it.Kind)
		}
	}
	if s.Done {
		if len(s.Items) == 0 {
			return errors.New("done sequence without actions")
		}
		last := s.Items[len(s.Items)-1]
		if last.Kind != KindAction || last.Tok == s.Bkspc {
			return errors.New("done sequence must end with a non-backspace action (its terminal action)")
		}
	}
	return nil
}

// NumInputs is the number of input slots Compile uses for s: the prompt,
// every pushed token (actions other than <bkspc> and the terminal action,
// noise tokens) and every observation input.
func (s *ActionSeq) NumInputs() int {
	n := len(s.Prompt)
	last := s.lastAgent()
	for i, it := range s.Items {
		if it.Tok == s.Bkspc && it.Kind != KindObs {
			continue
		}
		if s.Done && i == last {
			continue
		}
		n++
	}
	return n
}

// NumActions counts the trained transitions Compile emits for s.
func (s *ActionSeq) NumActions() int {
	n := 0
	for _, it := range s.Items {
		if it.Kind == KindAction || (it.Kind == KindNoise && s.NoiseAsAction) {
			n++
		}
	}
	return n
}

// Actions returns the agent item tokens (actions and noise) in order.
func (s *ActionSeq) Actions() []int32 {
	var out []int32
	for _, it := range s.Items {
		if it.Kind != KindObs {
			out = append(out, it.Tok)
		}
	}
	return out
}

// ---- chat template ----

// marker returns the role marker id of a message role.
func marker(sp Specials, role string) (int32, error) {
	switch role {
	case RoleSystem:
		return sp.System, nil
	case RoleUser:
		return sp.User, nil
	case RoleAssistant:
		return sp.Assistant, nil
	}
	return 0, fmt.Errorf("unknown role %q", role)
}

// ChatSeq applies the chat template to messages:
//
//	prompt = for each message before the first assistant turn:
//	             role marker + content tokens;  then <|assistant|>
//	for each assistant turn:
//	    actions      = content tokens + <|end|>
//	    observation  = for each following non-assistant message: role
//	                   marker + content tokens; then <|assistant|> (only
//	                   when another assistant turn follows)
//
// Message contents are encoded with EncodeOrdinary (special strings in data
// stay plain text). Non-assistant messages after the last assistant turn
// are dropped; the last <|end|> is terminal (Done). The loss mask is thus 1
// exactly on assistant content tokens and their <|end|>.
func ChatSeq(tok *Tokenizer, msgs []Message) (*ActionSeq, error) {
	sp := tok.Specials()
	first, last := -1, -1
	for i, m := range msgs {
		if _, err := marker(sp, m.Role); err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		if m.Role == RoleAssistant {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil, errors.New("no assistant message (nothing to train on)")
	}
	s := &ActionSeq{Done: true, Bkspc: sp.Bkspc, Pad: sp.Pad, Set: SetD}
	for _, m := range msgs[:first] {
		mk, _ := marker(sp, m.Role)
		s.Prompt = append(s.Prompt, mk)
		s.Prompt = append(s.Prompt, tok.EncodeOrdinary(m.Content)...)
	}
	s.Prompt = append(s.Prompt, sp.Assistant)
	for i := first; i <= last; i++ {
		m := msgs[i]
		if m.Role == RoleAssistant {
			if i > first && msgs[i-1].Role == RoleAssistant {
				// two assistant turns in a row: the observation is just the marker
				s.Items = append(s.Items, Item{sp.Assistant, KindObs})
			}
			for _, id := range tok.EncodeOrdinary(m.Content) {
				s.Items = append(s.Items, Item{id, KindAction})
			}
			s.Items = append(s.Items, Item{sp.End, KindAction})
			continue
		}
		mk, _ := marker(sp, m.Role)
		s.Items = append(s.Items, Item{mk, KindObs})
		for _, id := range tok.EncodeOrdinary(m.Content) {
			s.Items = append(s.Items, Item{id, KindObs})
		}
		if i+1 <= last && msgs[i+1].Role == RoleAssistant {
			s.Items = append(s.Items, Item{sp.Assistant, KindObs})
		}
	}
	return s, nil
}

// TextSeq is a plain-text sequence: prompt = <eos> (as BOS) + prompt
// tokens, actions = completion tokens + <eos> (terminal).
func TextSeq(tok *Tokenizer, prompt, completion string) *ActionSeq {
	sp := tok.Specials()
	s := &ActionSeq{Done: true, Bkspc: sp.Bkspc, Pad: sp.Pad, Set: SetD}
	s.Prompt = append([]int32{sp.EOS}, tok.EncodeOrdinary(prompt)...)
	for _, id := range tok.EncodeOrdinary(completion) {
		s.Items = append(s.Items, Item{id, KindAction})
	}
	s.Items = append(s.Items, Item{sp.EOS, KindAction})
	return s
}

// GenSeq wraps a policy generation (prompt and the sampled actions,
// including its own backspaces) as a SetG sequence; all actions are
// trained. done says the generation ended with its terminal action.
func GenSeq(prompt, actions []int32, done bool, sp Specials) *ActionSeq {
	s := &ActionSeq{Prompt: append([]int32(nil), prompt...), Done: done, Set: SetG, Bkspc: sp.Bkspc, Pad: sp.Pad}
	for _, a := range actions {
		s.Items = append(s.Items, Item{a, KindAction})
	}
	return s
}

// ---- truncation ----

// TruncInfo says what Truncate removed.
type TruncInfo struct {
	// DroppedRounds is the number of leading rounds (assistant turn +
	// following observation) removed whole.
	DroppedRounds int
	// DroppedContext is the number of prompt/observation tokens removed
	// from the context kept in front of the first kept assistant turn.
	DroppedContext int
	// CutActions is the number of agent items cut from the end when even
	// the last assistant turn alone did not fit (the episode then is not
	// Done and bootstraps).
	CutActions int
}

// Truncated reports whether anything was removed.
func (ti TruncInfo) Truncated() bool {
	return ti.DroppedRounds > 0 || ti.DroppedContext > 0 || ti.CutActions > 0
}

type round struct {
	agent []Item // actions and noise
	obs   []Item // following observation items
}

// Truncate fits s into T input slots (see NumInputs) by left truncation,
// keeping whole turns where possible:
//
//  1. The sequence is split into a context C0 (the prompt after its first
//     input, plus any observation before the first action) and rounds
//     R_k = (agent items of assistant turn k, the observation after it).
//  2. The result always starts with the original first input Prompt[0]
//     (the first system/user role marker, or BOS). It keeps the smallest
//     k such that Prompt[0] + O_{k-1} (as the new non-deletable prompt,
//     with O_0 = C0) + R_k ... R_n fits; O_{k-1} ends with the
//     <|assistant|> marker that opens turn k.
//  3. If even the last round alone does not fit with all of O_{n-1}, the
//     oldest tokens of O_{n-1} are dropped (keeping at least its last
//     token); if it still does not fit, the last assistant turn is cut on
//     the right and the sequence is no longer Done (it bootstraps).
//
// T0 is advanced by the number of agent items dropped, so discount indices
// keep counting from the start of the episode.
func Truncate(s *ActionSeq, T int) (*ActionSeq, TruncInfo, error) {
	var info TruncInfo
	if T < 2 {
		return nil, info, fmt.Errorf("context %d too small (need at least 2 inputs)", T)
	}
	if err := s.Validate(); err != nil {
		return nil, info, err
	}
	if s.NumInputs() <= T {
		return s, info, nil
	}
	// split
	c0 := append([]int32(nil), s.Prompt[1:]...)
	i := 0
	for i < len(s.Items) && s.Items[i].Kind == KindObs {
		c0 = append(c0, s.Items[i].Tok)
		i++
	}
	var rounds []round
	for i < len(s.Items) {
		var r round
		for i < len(s.Items) && s.Items[i].Kind != KindObs {
			r.agent = append(r.agent, s.Items[i])
			i++
		}
		for i < len(s.Items) && s.Items[i].Kind == KindObs {
			r.obs = append(r.obs, s.Items[i])
			i++
		}
		rounds = append(rounds, r)
	}
	if len(rounds) == 0 {
		// only context: keep the first input and the newest context tokens
		out := s.Clone()
		keep := T - 1
		out.Prompt = append([]int32{s.Prompt[0]}, c0[len(c0)-keep:]...)
		out.Items = nil
		info.DroppedContext = len(c0) - keep
		return out, info, nil
	}
	ctxOf := func(k int) []int32 { // O_{k-1} as tokens
		if k == 0 {
			return c0
		}
		obs := rounds[k-1].obs
		out := make([]int32, len(obs))
		for j, it := range obs {
			out[j] = it.Tok
		}
		return out
	}
	build := func(k int, ctx []int32, done bool) *ActionSeq {
		out := s.Clone()
		out.Prompt = append([]int32{s.Prompt[0]}, ctx...)
		out.Items = nil
		for _, r := range rounds[k:] {
			out.Items = append(out.Items, r.agent...)
			out.Items = append(out.Items, r.obs...)
		}
		out.Done = done
		dropped := 0
		for _, r := range rounds[:k] {
			dropped += len(r.agent)
		}
		out.T0 = s.T0 + int32(dropped)
		return out
	}
	for k := 0; k < len(rounds); k++ {
		cand := build(k, ctxOf(k), s.Done)
		if cand.NumInputs() <= T {
			info.DroppedRounds = k
			if k > 0 {
				info.DroppedContext = len(c0)
				for _, r := range rounds[:k-1] {
					info.DroppedContext += len(r.obs)
				}
			}
			return cand, info, nil
		}
	}
	// last round only, shrink its context
	k := len(rounds) - 1
	ctx := ctxOf(k)
	info.DroppedRounds = k
	if k > 0 {
		info.DroppedContext = len(c0)
		for _, r := range rounds[:k-1] {
			info.DroppedContext += len(r.obs)
		}
	}
	base := build(k, nil, s.Done)
	need := base.NumInputs() // Prompt[0] + the round
	if need+1 <= T {
		keep := T - need
		info.DroppedContext += len(ctx) - keep
		return build(k, ctx[len(ctx)-keep:], s.Done), info, nil
	}
	// cut the last assistant turn on the right; keep the context's last token
	keepCtx := ctx
	if len(ctx) > 1 {
		keepCtx = ctx[len(ctx)-1:]
		info.DroppedContext += len(ctx) - 1
	}
	out := build(k, keepCtx, false)
	out.Items = nil
	n := len(out.Prompt)
	agent := rounds[k].agent
	kept := 0
	for _, it := range agent {
		if it.Tok != s.Bkspc {
			if n+1 > T {
				break
			}
			n++
		}
		out.Items = append(out.Items, it)
		kept++
	}
	info.CutActions = len(agent) - kept + 0
	return out, info, nil
}

// ---- augmentation ----

// NoiseKind selects how noise tokens are drawn.
type NoiseKind string

const (
	// NoiseRandom draws uniformly from the ordinary (non-special) tokens.
	NoiseRandom NoiseKind = "random"
	// NoiseGroundTruth draws a token from elsewhere in the same sequence.
	NoiseGroundTruth NoiseKind = "ground-truth"
	// NoiseUnigram draws from the frequencies of the tokens the expert
	// writes (the ordinary tokens at action positions of the training
	// data, AugmentOptions.Unigram), excluding the expert token.
	NoiseUnigram NoiseKind = "unigram"
	// NoisePolicy draws from the current policy's own next-token
	// distribution at the position (AugmentOptions.Policy, at temperature
	// AugmentOptions.Temperature) over the ordinary tokens, excluding the
	// expert token: the mistakes the policy itself is likely to make.
	NoisePolicy NoiseKind = "policy"
)

// NoiseKinds lists the noise kinds in documentation order.
var NoiseKinds = []NoiseKind{NoiseRandom, NoiseGroundTruth, NoiseUnigram, NoisePolicy}

// ParseNoiseKind checks a noise kind name ("" is random).
func ParseNoiseKind(s string) (NoiseKind, error) {
	if s == "" {
		return NoiseRandom, nil
	}
	for _, k := range NoiseKinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown noise kind %q (want random, ground-truth, unigram or policy)", s)
}

// TokenDist is a discrete distribution over token ids: Toks[i] has weight
// W[i] (>= 0, not necessarily normalised).
type TokenDist struct {
	Toks []int32
	W    []float64
}

// Draw samples a token other than exclude with probability proportional to
// its weight; false when no other token has positive weight.
func (d *TokenDist) Draw(exclude int32, rng *rand.Rand) (int32, bool) {
	if d == nil {
		return 0, false
	}
	total := 0.0
	for i, t := range d.Toks {
		if t != exclude {
			total += d.W[i]
		}
	}
	if !(total > 0) {
		return 0, false
	}
	u := rng.Float64() * total
	last := int32(-1)
	for i, t := range d.Toks {
		if t == exclude || !(d.W[i] > 0) {
			continue
		}
		last = t
		if u -= d.W[i]; u < 0 {
			return t, true
		}
	}
	return last, last >= 0 // rounding: the last positive-weight token
}

// ActionUnigram counts the ordinary tokens at action positions of seqs
// (the tokens an expert writes; specials and <bkspc> excluded), in token
// order: the distribution of unigram noise.
func ActionUnigram(seqs []*ActionSeq, sp Specials) *TokenDist {
	counts := map[int32]float64{}
	for _, s := range seqs {
		for _, it := range s.Items {
			if it.Kind == KindAction && it.Tok != s.Bkspc && !sp.IsSpecial(it.Tok) {
				counts[it.Tok]++
			}
		}
	}
	d := &TokenDist{}
	for t := range counts {
		d.Toks = append(d.Toks, t)
	}
	slices.Sort(d.Toks)
	for _, t := range d.Toks {
		d.W = append(d.W, counts[t])
	}
	return d
}

// NoiseQuery asks for the policy's next-token logits before item Item of
// sequence Seq (an index into the slice given to AugmentBatch).
type NoiseQuery struct{ Seq, Item int }

// PolicyLogits returns, for each query, the policy's logits (vocabulary
// size) at the state before the queried action of the clean sequence. The
// slices may alias a buffer that is valid until the next call.
type PolicyLogits func(seqs []*ActionSeq, qs []NoiseQuery) ([][]float32, error)

// drawPolicy samples a token from softmax(logits/temp) restricted to the
// ordinary tokens other than exclude; false when there is none.
func drawPolicy(logits []float32, temp float64, exclude int32, sp Specials, rng *rand.Rand) (int32, bool) {
	mx := math.Inf(-1)
	for i, l := range logits {
		if int32(i) != exclude && !sp.IsSpecial(int32(i)) && float64(l) > mx {
			mx = float64(l)
		}
	}
	if math.IsInf(mx, -1) || math.IsNaN(mx) {
		return 0, false
	}
	total := 0.0
	for i, l := range logits {
		if int32(i) != exclude && !sp.IsSpecial(int32(i)) {
			total += math.Exp((float64(l) - mx) / temp)
		}
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return 0, false
	}
	u := rng.Float64() * total
	last := int32(-1)
	for i, l := range logits {
		if int32(i) == exclude || sp.IsSpecial(int32(i)) {
			continue
		}
		w := math.Exp((float64(l) - mx) / temp)
		if w > 0 {
			last = int32(i)
		}
		if u -= w; u < 0 {
			return int32(i), true
		}
	}
	return last, last >= 0
}

// AugmentOptions configure noise+backspace augmentation (DESIGN 3.2).
type AugmentOptions struct {
	// Eta is the probability of inserting "noise <bkspc>" before each
	// expert action, in [0, 1] (0 inserts nothing; DefaultEta is 0.05).
	Eta float64
	// Kind is NoiseRandom (default), NoiseGroundTruth, NoiseUnigram or
	// NoisePolicy (AugmentBatch only).
	Kind NoiseKind
	// NoiseAsAction trains the noise transitions too (default false).
	NoiseAsAction bool
	// Vocab are the ordinary token ids random noise is drawn from
	// (Tokenizer.OrdinaryIDs); also the fallback of ground-truth noise.
	Vocab []int32
	// Specials of the vocabulary (ground-truth, unigram and policy noise
	// never draw them).
	Specials Specials
	// Unigram is the distribution of unigram noise (ActionUnigram of the
	// training data).
	Unigram *TokenDist
	// Policy supplies the logits of policy noise (AugmentBatch only).
	Policy PolicyLogits
	// Temperature of policy noise (0 means 1).
	Temperature float64
}

// DefaultEta is the default augmentation rate.
const DefaultEta = 0.05

// Augment returns a copy of s in which, before each expert action x_j
// (including <|end|>/<eos>, but never before an existing <bkspc>), with
// probability Eta a noise token n followed by <bkspc> is inserted:
// "… n ⌫ x_j …". n is never equal to x_j (redrawn up to 16 times, else the
// insertion is skipped). Ground-truth noise is drawn uniformly from the
// ordinary tokens at the other positions of the sequence (prompt,
// observations, actions), falling back to random noise when there are
// none. Deterministic given rng.
func Augment(s *ActionSeq, opt AugmentOptions, rng *rand.Rand) (*ActionSeq, error) {
	eta := opt.Eta
	if !(eta >= 0 && eta <= 1) {
		return nil, fmt.Errorf("noise rate %g not in [0, 1]", eta)
	}
	kind, err := ParseNoiseKind(string(opt.Kind))
	if err != nil {
		return nil, err
	}
	switch {
	case kind == NoisePolicy:
		return nil, errors.New("policy noise needs the batch's policy logits: use AugmentBatch")
	case kind == NoiseRandom && len(opt.Vocab) == 0 && eta > 0:
		return nil, errors.New("random noise needs a vocabulary (AugmentOptions.Vocab)")
	case kind == NoiseUnigram && opt.Unigram == nil && eta > 0:
		return nil, errors.New("unigram noise needs the action-token distribution (AugmentOptions.Unigram)")
	}
	out := s.Clone()
	out.NoiseAsAction = opt.NoiseAsAction
	out.Items = make([]Item, 0, len(s.Items)+int(float64(len(s.Items))*eta*2)+4)
	// positions of ordinary tokens for ground-truth noise: prompt then items
	type pos struct {
		tok int32
		at  int // -1 for prompt positions, else item index
	}
	var pool []pos
	if kind == NoiseGroundTruth {
		for _, t := range s.Prompt {
			if !opt.Specials.IsSpecial(t) {
				pool = append(pool, pos{t, -1})
			}
		}
		for i, it := range s.Items {
			if it.Tok != s.Bkspc && !opt.Specials.IsSpecial(it.Tok) {
				pool = append(pool, pos{it.Tok, i})
			}
		}
	}
	draw := func(j int) (int32, bool) {
		if kind == NoiseUnigram {
			return opt.Unigram.Draw(s.Items[j].Tok, rng)
		}
		useRandom := kind == NoiseRandom || len(pool) < 2
		for try := 0; try < 16; try++ {
			var n int32
			if useRandom {
				if len(opt.Vocab) == 0 {
					return 0, false
				}
				n = opt.Vocab[rng.IntN(len(opt.Vocab))]
			} else {
				p := pool[rng.IntN(len(pool))]
				if p.at == j {
					continue
				}
				n = p.tok
			}
			if n != s.Items[j].Tok {
				return n, true
			}
		}
		return 0, false
	}
	for j, it := range s.Items {
		if it.Kind == KindAction && it.Tok != s.Bkspc && eta > 0 && rng.Float64() < eta {
			if n, ok := draw(j); ok {
				out.Items = append(out.Items, Item{n, KindNoise}, Item{s.Bkspc, KindAction})
			}
		}
		out.Items = append(out.Items, it)
	}
	return out, nil
}

// AugmentBatch augments seqs with one random stream, in order. For every
// kind but policy it is Augment applied to each sequence in turn (the same
// draws). Policy noise first decides every sequence's noise positions (one
// draw per expert action, probability Eta), then asks opt.Policy once for
// the logits at all of them (one forward of the clean sequences), then
// draws each noise token from the policy's distribution at temperature
// opt.Temperature over the ordinary tokens other than the expert token (a
// position where no such token has positive probability gets no noise).
// Deterministic given rng and the policy.
func AugmentBatch(seqs []*ActionSeq, opt AugmentOptions, rng *rand.Rand) ([]*ActionSeq, error) {
	kind, err := ParseNoiseKind(string(opt.Kind))
	if err != nil {
		return nil, err
	}
	out := make([]*ActionSeq, len(seqs))
	if kind != NoisePolicy {
		for i, s := range seqs {
			if out[i], err = Augment(s, opt, rng); err != nil {
				return nil, fmt.Errorf("sequence %d: %w", i, err)
			}
		}
		return out, nil
	}
	eta := opt.Eta
	if !(eta >= 0 && eta <= 1) {
		return nil, fmt.Errorf("noise rate %g not in [0, 1]", eta)
	}
	temp := opt.Temperature
	if temp == 0 {
		temp = 1
	}
	if !(temp > 0) || math.IsInf(temp, 0) {
		return nil, fmt.Errorf("policy noise temperature %g must be positive", temp)
	}
	var qs []NoiseQuery
	for i, s := range seqs {
		for j, it := range s.Items {
			if it.Kind == KindAction && it.Tok != s.Bkspc && eta > 0 && rng.Float64() < eta {
				qs = append(qs, NoiseQuery{Seq: i, Item: j})
			}
		}
	}
	noise := map[NoiseQuery]int32{}
	if len(qs) > 0 {
		if opt.Policy == nil {
			return nil, errors.New("policy noise needs the policy (AugmentOptions.Policy)")
		}
		logits, err := opt.Policy(seqs, qs)
		if err != nil {
			return nil, fmt.Errorf("policy noise: %w", err)
		}
		if len(logits) != len(qs) {
			return nil, fmt.Errorf("policy noise: %d logit rows for %d positions", len(logits), len(qs))
		}
		for k, q := range qs {
			if logits[k] == nil {
				continue // the policy could not score this position (sequence too long)
			}
			if n, ok := drawPolicy(logits[k], temp, seqs[q.Seq].Items[q.Item].Tok, opt.Specials, rng); ok {
				noise[q] = n
			}
		}
	}
	for i, s := range seqs {
		o := s.Clone()
		o.NoiseAsAction = opt.NoiseAsAction
		o.Items = o.Items[:0]
		for j, it := range s.Items {
			if n, ok := noise[NoiseQuery{Seq: i, Item: j}]; ok {
				o.Items = append(o.Items, Item{n, KindNoise}, Item{s.Bkspc, KindAction})
			}
			o.Items = append(o.Items, it)
		}
		out[i] = o
	}
	return out, nil
}

// SplitTurns splits a multi-turn sequence into one sequence per assistant
// turn, so that a long episode yields every turn as training data instead
// of only the turns that fit the context. Sequence k has as its
// non-deletable prompt the state at the start of turn k (the original
// prompt, the earlier turns with their backspaces applied, and the
// observations), and as items the agent items of turn k followed by the
// observation after it. Each action appears in exactly one sequence; T0 of
// sequence k counts the agent items of the earlier turns. The last sequence
// keeps Done; the others are not Done: their end-of-turn transition links
// to the last input of the following observation and bootstraps there, as
// in the whole episode. A sequence without observations is returned as is.
func SplitTurns(s *ActionSeq) ([]*ActionSeq, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	prefix := append([]int32(nil), s.Prompt...)
	i := 0
	for i < len(s.Items) && s.Items[i].Kind == KindObs {
		prefix = append(prefix, s.Items[i].Tok)
		i++
	}
	var out []*ActionSeq
	t0 := s.T0
	last := s.lastAgent()
	for i < len(s.Items) {
		start := i
		seq := s.Clone()
		seq.Prompt = append([]int32(nil), prefix...)
		seq.T0 = t0
		for i < len(s.Items) && s.Items[i].Kind != KindObs {
			it := s.Items[i]
			switch {
			case it.Tok == s.Bkspc:
				prefix = prefix[:len(prefix)-1]
			case s.Done && i == last:
			default:
				prefix = append(prefix, it.Tok)
			}
			t0++
			i++
		}
		for i < len(s.Items) && s.Items[i].Kind == KindObs {
			prefix = append(prefix, s.Items[i].Tok)
			i++
		}
		seq.Items = append([]Item(nil), s.Items[start:i]...)
		seq.Done = s.Done && i == len(s.Items)
		out = append(out, seq)
	}
	if len(out) == 0 {
		return []*ActionSeq{s}, nil
	}
	return out, nil
}
