package decode

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// chooser turns one row of logits into an action. It owns scratch buffers
// reused across steps; one chooser serves one goroutine.
type chooser struct {
	z   []float64 // (V) scores L/T of kept actions, -Inf elsewhere
	e   []float64 // (V) exp(z - max) of kept actions, 0 elsewhere
	idx []int32   // sort buffer of action ids
	sum float64   // sum of e
}

// mask says which actions are legal at one state.
type mask struct {
	bkspc int32  // id of <bkspc> if it may be chosen here, else -1
	block int32  // retry-blocked token at this state, else -1
	allow []bool // the grammar's allowed actions (nil: no grammar); <bkspc> is governed by bkspc
}

// allowed builds the legal-action scores into c.z (L/T, or L for greedy)
// and returns how many actions are legal. A retry block that would leave
// no legal action is ignored.
func (c *chooser) allowed(logits []float32, o *Options, m mask) (int, error) {
	v := len(logits)
	if cap(c.z) < v {
		c.z = make([]float64, v)
		c.e = make([]float64, v)
		c.idx = make([]int32, 0, v)
	}
	c.z, c.e = c.z[:v], c.e[:v]
	inv := 1.0
	if !o.Greedy {
		inv = 1 / o.Temperature
	}
	n := 0
	for a, l := range logits {
		f := float64(l)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("non-finite logit %v at id %d", l, a)
		}
		c.z[a] = f * inv
		n++
	}
	off := func(a int32) {
		if a >= 0 && int(a) < v && !math.IsInf(c.z[a], -1) {
			c.z[a] = math.Inf(-1)
			n--
		}
	}
	for _, a := range o.Banned {
		off(a)
	}
	if m.allow != nil {
		for a, ok := range m.allow {
			if !ok && int32(a) != m.bkspc {
				off(int32(a))
			}
		}
	}
	if o.BkspcID >= 0 && m.bkspc < 0 {
		off(o.BkspcID)
	}
	if m.block >= 0 && int(m.block) < v && !math.IsInf(c.z[m.block], -1) {
		if n > 1 {
			off(m.block)
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("no legal action (vocabulary %d, all masked)", v)
	}
	return n, nil
}

// worse reports whether action a ranks below action b: lower score, or
// equal score and higher id.
func (c *chooser) worse(a, b int32) bool {
	if c.z[a] != c.z[b] {
		return c.z[a] < c.z[b]
	}
	return a > b
}

// sortRanked sorts c.idx best first: score descending, ties by id ascending.
func (c *chooser) sortRanked() {
	slices.SortFunc(c.idx, func(a, b int32) int {
		if r := cmp.Compare(c.z[b], c.z[a]); r != 0 {
			return r
		}
		return cmp.Compare(a, b)
	})
}

// rankTop fills c.idx with the k best finite-score actions, best first,
// using a size-k min-heap (O(V log k)).
func (c *chooser) rankTop(k int) {
	h := c.idx[:0]
	down := func(i int) {
		for {
			l, m := 2*i+1, i
			if l < len(h) && c.worse(h[l], h[m]) {
				m = l
			}
			if r := l + 1; r < len(h) && c.worse(h[r], h[m]) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for a, sc := range c.z {
		if math.IsInf(sc, -1) {
			continue
		}
		id := int32(a)
		if len(h) < k {
			h = append(h, id)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if !c.worse(h[i], h[p]) {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
			continue
		}
		if c.worse(h[0], id) {
			h[0] = id
			down(0)
		}
	}
	c.idx = h
	c.sortRanked()
}

// rankAbove fills c.idx with the actions whose weight c.e is at least tau,
// best first.
func (c *chooser) rankAbove(tau float64) {
	c.idx = c.idx[:0]
	for a, e := range c.e {
		if e > 0 && e >= tau {
			c.idx = append(c.idx, int32(a))
		}
	}
	c.sortRanked()
}

// filter applies top-k then top-p to c.z (removed actions get -Inf) and
// computes c.e and c.sum. <bkspc> (m.bkspc >= 0) survives a filter unless
// the matching BkspcInTop* option allows removing it.
func (c *chooser) filter(o *Options, m mask, n int) {
	ranked := false
	if o.TopK > 0 && o.TopK < n {
		c.rankTop(o.TopK)
		ranked = true
		kth := c.idx[len(c.idx)-1]
		for a, sc := range c.z {
			if math.IsInf(sc, -1) || int32(a) == m.bkspc && !o.BkspcInTopK {
				continue
			}
			if c.worse(int32(a), kth) {
				c.z[a] = math.Inf(-1)
			}
		}
		if m.bkspc >= 0 && !o.BkspcInTopK && !math.IsInf(c.z[m.bkspc], -1) && !slices.Contains(c.idx, m.bkspc) {
			// Keep the ranked order: <bkspc> is the lowest of the kept.
			c.idx = append(c.idx, m.bkspc)
		}
	}
	c.exp()
	if o.TopP > 0 && o.TopP < 1 {
		if !ranked {
			// The actions of weight below tau = (1-P)/V hold less than 1-P
			// of the mass, so the nucleus lies among the others.
			c.rankAbove((1 - o.TopP) / float64(len(c.e)) * c.sum)
		}
		if !c.nucleus(o, m) && !ranked {
			c.idx = c.idx[:0] // rounding: rank everything and retry
			for a, e := range c.e {
				if e > 0 {
					c.idx = append(c.idx, int32(a))
				}
			}
			c.sortRanked()
			c.nucleus(o, m)
		}
		c.exp()
	}
}

// nucleus walks c.idx (ranked) and removes every action after the
// smallest prefix whose probability reaches P (<bkspc> excepted unless
// BkspcInTopP), including the unranked actions. It reports false, changing
// nothing, when the ranked actions do not reach P.
func (c *chooser) nucleus(o *Options, m mask) bool {
	cum, cut := 0.0, -1
	for i, a := range c.idx {
		cum += c.e[a] / c.sum
		if cum >= o.TopP {
			cut = i
			break
		}
	}
	if cut < 0 {
		return false
	}
	// Everything ranking below the last kept action goes.
	last := c.idx[cut]
	for a := range c.z {
		id := int32(a)
		if math.IsInf(c.z[a], -1) || id == m.bkspc && !o.BkspcInTopP {
			continue
		}
		if c.worse(id, last) {
			c.z[a] = math.Inf(-1)
		}
	}
	return true
}

// exp computes c.e = exp(c.z - max) and c.sum (stable softmax numerator).
func (c *chooser) exp() {
	mx := math.Inf(-1)
	for _, s := range c.z {
		if s > mx {
			mx = s
		}
	}
	c.sum = 0
	for a, s := range c.z {
		if math.IsInf(s, -1) {
			c.e[a] = 0
			continue
		}
		c.e[a] = math.Exp(s - mx)
		c.sum += c.e[a]
	}
}

// choose returns the next action for logits under o at a state with mask m.
func (c *chooser) choose(logits []float32, o *Options, m mask, rng *rand.Rand) (int32, error) {
	n, err := c.allowed(logits, o, m)
	if err != nil {
		return 0, err
	}
	if o.Greedy {
		best := -1
		for a, s := range c.z {
			if !math.IsInf(s, -1) && (best < 0 || s > c.z[best]) {
				best = a
			}
		}
		return int32(best), nil
	}
	c.filter(o, m, n)
	u := rng.Float64() * c.sum
	cum, last := 0.0, -1
	for a, e := range c.e {
		if e == 0 {
			continue
		}
		cum += e
		last = a
		if u < cum {
			return int32(a), nil
		}
	}
	return int32(last), nil // rounding: u landed at the very end
}

// Distribution returns the probability of every action (V) that the
// sampler uses for logits under o, at a state where <bkspc> is legal
// (bkspcAllowed, and o.AllowBkspc) or not. Actions removed by masking or
// filtering have probability 0. For greedy decoding the chosen action has
// probability 1.
func Distribution(logits []float32, o Options, bkspcAllowed bool) ([]float64, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var c chooser
	m := stateMask(&o, len(logits), bkspcAllowed, -1)
	p := make([]float64, len(logits))
	if o.Greedy {
		a, err := c.choose(logits, &o, m, nil)
		if err != nil {
			return nil, err
		}
		p[a] = 1
		return p, nil
	}
	n, err := c.allowed(logits, &o, m)
	if err != nil {
		return nil, err
	}
	c.filter(&o, m, n)
	for a, e := range c.e {
		p[a] = e / c.sum
	}
	return p, nil
}

// stateMask builds the mask of a state: <bkspc> legal when the vocabulary
// (V) has it, the options allow it and the state is above the prompt
// floor; block is the retry-blocked token or -1.
func stateMask(o *Options, v int, aboveFloor bool, block int32) mask {
	m := mask{bkspc: -1, block: block}
	if o.AllowBkspc && aboveFloor && o.BkspcID >= 0 && int(o.BkspcID) < v {
		m.bkspc = o.BkspcID
	}
	return m
}
