package objective

import (
	"math"
	"math/rand/v2"

	"smtrain/data"
)

// Token ids used by the hand-built batches (the data package's tokenizer
// reserves the same ids).
const (
	tPad   = 0
	tEOS   = 1
	tBk    = 2
	tUser  = 3
	tAsst  = 4
	tObs   = 5
	tEnd   = 6
	tFirst = 7 // first ordinary token
)

// builder compiles hand-written action sequences into a data.Batch the way
// DESIGN.md 3.1 describes (stack of inputs, <bkspc> pops, observations are
// inputs but not actions). It is deliberately written from the design text,
// independent of the data package.
type builder struct {
	b    data.Batch
	seq  int
	rows int   // inputs used in the current sequence
	stk  []int // stack of in-row input indices
	flr  int   // backspace floor (stack depth that cannot be popped)
	t    int32 // agent transition counter of the episode
	set  data.Set
	full bool
}

func newBuilder(B, T int) *builder {
	bl := &builder{b: data.Batch{B: B, T: T, PadID: tPad}}
	N := B * T
	bl.b.Inputs = make([]int32, N)
	bl.b.Positions = make([]int32, N)
	bl.b.Parents = make([]int32, N)
	bl.b.BkspcAllowed = make([]bool, N)
	bl.b.Lengths = make([]int, B)
	for i := range bl.b.Parents {
		bl.b.Parents[i] = -1
	}
	bl.seq = -1
	return bl
}

// start begins sequence number seq (in order) with the given prompt.
func (bl *builder) start(set data.Set, prompt ...int32) {
	bl.seq++
	bl.rows, bl.stk, bl.t, bl.set, bl.full = 0, bl.stk[:0], 0, set, false
	for _, x := range prompt {
		bl.push(x, false)
	}
	bl.flr = len(bl.stk)
}

func (bl *builder) row(j int) int32 { return int32(bl.seq*bl.b.T + j) }

func (bl *builder) top() int { return bl.stk[len(bl.stk)-1] }

// push appends an input; reports false when the row is full.
func (bl *builder) push(x int32, allowed bool) bool {
	if bl.rows >= bl.b.T {
		bl.full = true
		return false
	}
	j := bl.rows
	r := bl.row(j)
	bl.b.Inputs[r] = x
	bl.b.Positions[r] = int32(len(bl.stk))
	if len(bl.stk) > 0 {
		bl.b.Parents[r] = int32(bl.top())
	}
	bl.b.BkspcAllowed[r] = allowed
	bl.stk = append(bl.stk, j)
	bl.rows++
	bl.b.Lengths[bl.seq] = bl.rows
	return true
}

// act takes one agent action (ordinary token or <bkspc>); an ordinary token
// that does not fit ends the episode cut off (the transition bootstraps
// from the current top, as the compiler does at the context limit).
func (bl *builder) act(a int32) {
	if bl.full {
		return
	}
	s := bl.top()
	if a == tBk {
		bl.stk = bl.stk[:len(bl.stk)-1]
	} else if !bl.push(a, true) {
		return
	}
	bl.trans(s, a, bl.row(bl.top()), false)
}

func (bl *builder) trans(s int, a int32, next int32, done bool) {
	bl.b.Trans = append(bl.b.Trans, data.Transition{
		State: bl.row(s), Action: a, Next: next, Done: done,
		T: bl.t, Set: bl.set, Seq: int32(bl.seq),
	})
	bl.t++
}

// endTurn takes the end-of-turn action; obs are the environment's inputs
// that follow, the next agent turn starts at the last of them.
func (bl *builder) endTurn(obs ...int32) {
	if bl.full {
		return
	}
	s := bl.top()
	for _, x := range obs {
		if !bl.push(x, false) {
			return
		}
	}
	bl.flr = len(bl.stk)
	bl.trans(s, tEnd, bl.row(bl.top()), false)
}

// finish ends the episode with a terminal action (eos or final end-of-turn).
func (bl *builder) finish(a int32) {
	if bl.full {
		return
	}
	bl.trans(bl.top(), a, -1, true)
}

func (bl *builder) batch() *data.Batch { b := bl.b; return &b }

// randomBatch builds B random sequences with backspaces, multi-turn
// observations, cut-offs, and D/G sets.
func randomBatch(rng *rand.Rand, B, T, V int) *data.Batch {
	bl := newBuilder(B, T)
	for s := 0; s < B; s++ {
		set := data.SetD
		if s == 1 || (s > 1 && rng.IntN(3) == 0) {
			set = data.SetG
		}
		bl.start(set, tUser, int32(tFirst+rng.IntN(V-tFirst)), tAsst)
		turns := 1 + rng.IntN(2)
		for turn := 0; turn < turns; turn++ {
			n := 1 + rng.IntN(T/3)
			for k := 0; k < n; k++ {
				if len(bl.stk) > bl.flr && rng.IntN(4) == 0 {
					bl.act(tBk)
				} else {
					bl.act(int32(tFirst + rng.IntN(V-tFirst)))
				}
			}
			if turn < turns-1 {
				bl.endTurn(tObs, int32(tFirst+rng.IntN(V-tFirst)), tAsst)
			}
		}
		if rng.IntN(2) == 0 {
			bl.finish(tEOS)
		} else {
			bl.finish(tEnd)
		}
	}
	return bl.batch()
}

func randomLogits(rng *rand.Rand, n int, scale float64) []float64 {
	l := make([]float64, n)
	for i := range l {
		l[i] = scale * rng.NormFloat64()
	}
	return l
}

// dual is a value with its dense gradient over all logits (forward mode),
// used by the slow reference implementation.
type dual struct {
	v float64
	g []float64
}

func constDual(n int, v float64) dual { return dual{v: v, g: make([]float64, n)} }

func (d dual) scale(k float64) dual {
	o := dual{v: k * d.v, g: make([]float64, len(d.g))}
	for i, x := range d.g {
		o.g[i] = k * x
	}
	return o
}

func (d dual) add(e dual) dual {
	o := dual{v: d.v + e.v, g: make([]float64, len(d.g))}
	for i := range d.g {
		o.g[i] = d.g[i] + e.g[i]
	}
	return o
}

func (d dual) sub(e dual) dual { return d.add(e.scale(-1)) }

func (d dual) mul(e dual) dual {
	o := dual{v: d.v * e.v, g: make([]float64, len(d.g))}
	for i := range d.g {
		o.g[i] = d.g[i]*e.v + d.v*e.g[i]
	}
	return o
}

// apply maps d through f with derivative df (chain rule).
func (d dual) apply(f, df func(float64) float64) dual {
	o := dual{v: f(d.v), g: make([]float64, len(d.g))}
	k := df(d.v)
	for i, x := range d.g {
		o.g[i] = k * x
	}
	return o
}

// refLoss recomputes the loss from scratch, transition by transition,
// following DESIGN.md 4 literally. It returns the total, the components
// and the gradient.
func refLoss(name string, cfg Config, L []float64, V int, b *data.Batch, bkspc int, lambda float64) (float64, map[string]float64, []float64) {
	n := len(L)
	logit := func(row, a int) dual {
		d := constDual(n, L[row*V+a])
		d.g[row*V+a] = 1
		return d
	}
	allowed := func(row, a int) bool { return a != bkspc || b.BkspcAllowed[row] }
	// Vf is logsumexp over allowed actions, with gradient softmax.
	Vf := func(row int) dual {
		m := math.Inf(-1)
		for a := 0; a < V; a++ {
			if allowed(row, a) {
				m = math.Max(m, L[row*V+a])
			}
		}
		z := 0.0
		for a := 0; a < V; a++ {
			if allowed(row, a) {
				z += math.Exp(L[row*V+a] - m)
			}
		}
		d := constDual(n, m+math.Log(z))
		for a := 0; a < V; a++ {
			if allowed(row, a) {
				d.g[row*V+a] = math.Exp(L[row*V+a]-m) / z
			}
		}
		return d
	}
	var D, G []int
	for i, tr := range b.Trans {
		if tr.Set == data.SetD {
			D = append(D, i)
		} else {
			G = append(G, i)
		}
	}
	w := func(i int) float64 {
		if cfg.Weighting == WeightUniform {
			return 1
		}
		return math.Pow(cfg.Gamma, float64(b.Trans[i].T))
	}
	E := func(X []int, f func(i int) dual) (dual, bool) {
		num, den := constDual(n, 0), 0.0
		for _, i := range X {
			num = num.add(f(i).scale(w(i)))
			den += w(i)
		}
		if den == 0 {
			return num, false
		}
		return num.scale(1 / den), true
	}
	Emix := func(f func(i int) dual) dual {
		d, okD := E(D, f)
		g, okG := E(G, f)
		switch {
		case okD && okG:
			return d.scale(0.5).add(g.scale(0.5))
		case okD:
			return d
		case okG:
			return g
		}
		return constDual(n, 0)
	}
	notDone := func(i int) float64 {
		if b.Trans[i].Done {
			return 0
		}
		return 1
	}
	Vnext := func(i int) dual {
		if b.Trans[i].Done {
			return constDual(n, 0)
		}
		return Vf(int(b.Trans[i].Next))
	}
	r := func(i int) dual {
		tr := b.Trans[i]
		return logit(int(tr.State), int(tr.Action)).sub(Vnext(i).scale(cfg.Gamma * notDone(i)))
	}
	// −log π on D, token mean.
	nll := constDual(n, 0)
	for _, i := range D {
		tr := b.Trans[i]
		lp := logit(int(tr.State), int(tr.Action)).sub(Vf(int(tr.State)))
		nll = nll.sub(lp.scale(1 / float64(len(D))))
	}
	comps := map[string]float64{"nll": nll.v}
	if name == "mle" || name == "bc" {
		if name == "bc" {
			comps["bc"] = nll.v
		}
		return nll.v, comps, nll.g
	}
	value := func(i int) dual {
		return Vf(int(b.Trans[i].State)).sub(Vnext(i).scale(cfg.Gamma * notDone(i)))
	}
	var valTerm dual
	if cfg.ValueOn == ValueOnData {
		valTerm, _ = E(D, value)
	} else {
		valTerm = Emix(value)
	}
	sq := func(i int) dual { ri := r(i); return ri.mul(ri).scale(cfg.C) }
	var lin, sqTerm dual
	sqTerm = constDual(n, 0)
	switch name {
	case "chi2mix":
		lin, _ = E(D, r)
		lin = lin.scale(-1)
		sqTerm = Emix(sq)
	case "chi2":
		lin, _ = E(D, r)
		lin = lin.scale(-1)
		sqTerm, _ = E(D, sq)
	default:
		var f, df func(float64) float64
		var lo, hi float64 = math.Inf(-1), math.Inf(1)
		eps := cfg.ClampEps
		switch name {
		case "kl":
			f = func(x float64) float64 { return -math.Exp(-(x + 1)) }
			df = func(x float64) float64 { return math.Exp(-(x + 1)) }
		case "js":
			f = func(x float64) float64 { return math.Log(2 - math.Exp(-x)) }
			df = func(x float64) float64 { return math.Exp(-x) / (2 - math.Exp(-x)) }
			lo = -math.Log(2) + eps
		case "hellinger":
			f = func(x float64) float64 { return x / (1 + x) }
			df = func(x float64) float64 { return 1 / ((1 + x) * (1 + x)) }
			lo = -1 + eps
		case "tv":
			f = func(x float64) float64 { return x }
			df = func(x float64) float64 { return 1 }
			lo, hi = -0.5+eps, 0.5-eps
		default:
			panic("refLoss: unknown objective " + name)
		}
		phi := func(i int) dual {
			ri := r(i)
			if ri.v < lo {
				return constDual(n, f(lo)) // clamped: no gradient through φ
			}
			if ri.v > hi {
				return constDual(n, f(hi))
			}
			return ri.apply(f, df)
		}
		lin, _ = E(D, phi)
		lin = lin.scale(-1)
	}
	smTerm := lin.add(sqTerm).add(valTerm)
	total := nll.scale(1 - lambda).add(smTerm.scale(lambda))
	comps["bc"] = nll.v
	comps["linear"] = lin.v
	comps["square"] = sqTerm.v
	comps["value"] = valTerm.v
	return total.v, comps, total.g
}
