package objective

import (
	"fmt"
	"math"

	"smtrain/data"
	"smtrain/internal/parallel"
)

type kind uint8

const (
	kindMLE kind = iota
	kindBC
	kindSM
)

// spec is the resolved description shared by all implementations.
type spec struct {
	kind kind
	name string
	cfg  Config
	f    fdiv // kindSM only
}

// Workspace is scratch memory for one loss evaluation, reused across calls.
type Workspace struct {
	need  []bool    // [N] row is a state or next state of some transition
	v     []float64 // [N] V(row) = logsumexp over allowed actions
	scale []float64 // [N] 1/Σexp(L−max) (softmax normaliser)
	cv    []float64 // [N] dLoss/dV(row)
	cq    []float64 // [len(Trans)] dLoss/dL[s_i][a_i]
	q     []float64 // [len(Trans)] L[s_i][a_i], read before grad is written
}

func (w *Workspace) reset(n, nt int) {
	grow := func(s []float64, n int) []float64 {
		if cap(s) < n {
			return make([]float64, n)
		}
		return s[:n]
	}
	if cap(w.need) < n {
		w.need = make([]bool, n)
	}
	w.need = w.need[:n]
	clear(w.need)
	w.v = grow(w.v, n)
	w.scale = grow(w.scale, n)
	w.cv = grow(w.cv, n)
	clear(w.cv)
	w.cq = grow(w.cq, nt)
	clear(w.cq)
	w.q = grow(w.q, nt)
}

// parallelRows runs fn over [0,n) split into chunks on the cores
// (parallel.For) when the work (n rows of width V) is large enough to pay
// for the hand-off, on the caller otherwise.
func parallelRows(n, width int, fn func(lo, hi int)) {
	grain := n // one chunk
	if n*width >= 1<<16 {
		grain = 1
	}
	parallel.For(n, grain, parallel.Func(func(_, lo, hi int) { fn(lo, hi) }))
}

// checkBatch validates shapes and every transition against the batch.
func checkBatch(s *spec, nLogits, V int, b *data.Batch, p Params, nGrad int, hasGrad bool) error {
	if b == nil {
		return fmt.Errorf("objective %s: nil batch", s.name)
	}
	if b.B < 0 || b.T < 0 || V <= 0 {
		return fmt.Errorf("objective %s: bad sizes B=%d T=%d V=%d", s.name, b.B, b.T, V)
	}
	N := b.B * b.T
	if nLogits != N*V {
		return fmt.Errorf("objective %s: %d logits, want B*T*V = %d*%d*%d = %d", s.name, nLogits, b.B, b.T, V, N*V)
	}
	if hasGrad && nGrad != nLogits {
		return fmt.Errorf("objective %s: grad has %d elements, want %d", s.name, nGrad, nLogits)
	}
	if len(b.BkspcAllowed) != N {
		return fmt.Errorf("objective %s: batch BkspcAllowed has %d entries, want B*T = %d", s.name, len(b.BkspcAllowed), N)
	}
	if len(b.Lengths) != b.B {
		return fmt.Errorf("objective %s: batch Lengths has %d entries, want B = %d", s.name, len(b.Lengths), b.B)
	}
	if p.BkspcID < -1 || p.BkspcID >= V {
		return fmt.Errorf("objective %s: bkspc id %d outside [-1, %d)", s.name, p.BkspcID, V)
	}
	if math.IsNaN(p.Lambda) || p.Lambda < 0 || p.Lambda > 1 {
		return fmt.Errorf("objective %s: lambda %v outside [0, 1]", s.name, p.Lambda)
	}
	row := func(i int, what string, r, seq int32) error {
		if r < 0 || int(r) >= N {
			return fmt.Errorf("objective %s: transition %d: %s row %d outside [0, %d)", s.name, i, what, r, N)
		}
		bi, j := int(r)/b.T, int(r)%b.T
		if bi != int(seq) {
			return fmt.Errorf("objective %s: transition %d: %s row %d is in sequence %d, transition says %d", s.name, i, what, r, bi, seq)
		}
		if j >= b.Lengths[bi] {
			return fmt.Errorf("objective %s: transition %d: %s row %d is padding (sequence %d has %d inputs)", s.name, i, what, r, bi, b.Lengths[bi])
		}
		return nil
	}
	for i := range b.Trans {
		tr := &b.Trans[i]
		if err := row(i, "state", tr.State, tr.Seq); err != nil {
			return err
		}
		if !tr.Done {
			if err := row(i, "next", tr.Next, tr.Seq); err != nil {
				return err
			}
		}
		if tr.Action < 0 || int(tr.Action) >= V {
			return fmt.Errorf("objective %s: transition %d: action %d outside [0, %d)", s.name, i, tr.Action, V)
		}
		if int(tr.Action) == p.BkspcID && !b.BkspcAllowed[tr.State] {
			return fmt.Errorf("objective %s: transition %d: <bkspc> taken at state row %d where it is not allowed", s.name, i, tr.State)
		}
		if tr.Set != data.SetD && tr.Set != data.SetG {
			return fmt.Errorf("objective %s: transition %d: unknown set %d", s.name, i, tr.Set)
		}
		if tr.T < 0 {
			return fmt.Errorf("objective %s: transition %d: negative discount index %d", s.name, i, tr.T)
		}
	}
	return nil
}

// compute is the shared loss and gradient kernel. It costs O(rows·V):
// one logsumexp per distinct state row (V(s') of one transition is V(s) of
// the next, so it is computed once), an O(transitions) pass that collects
// dLoss/dV(row) and dLoss/dQ(s_i,a_i), and one pass writing
// dLoss/dL[row] = cv[row]·π[row] + Σ cq[i]·onehot(a_i).
//
// grad may be L itself (the loss node computes the gradient in place of
// the logits): L is read only row by row in pass 1 before that row of grad
// is written, and the transitions' logits L[s_i][a_i] that pass 2 needs
// are gathered into the workspace before pass 1. With grad == nil, L is
// not modified.
func compute[F Float](s *spec, L []F, V int, b *data.Batch, p Params, grad []F) (Result, error) {
	if err := checkBatch(s, len(L), V, b, p, len(grad), grad != nil); err != nil {
		return Result{}, err
	}
	N := b.B * b.T
	ws := p.Work
	if ws == nil {
		ws = new(Workspace)
	}
	ws.reset(N, len(b.Trans))
	sm := s.kind == kindSM
	cfg := s.cfg
	gamma := cfg.Gamma

	// Pass 0: rows needed, set sizes and weight sums.
	var nD, nG int
	var wD, wG float64
	weight := func(t int32) float64 {
		if cfg.Weighting == WeightUniform {
			return 1
		}
		return math.Pow(gamma, float64(t))
	}
	for i := range b.Trans {
		tr := &b.Trans[i]
		ws.need[tr.State] = true
		if sm && !tr.Done {
			ws.need[tr.Next] = true
		}
		if tr.Set == data.SetD {
			nD++
			if sm {
				wD += weight(tr.T)
			}
		} else {
			nG++
			if sm {
				wG += weight(tr.T)
			}
		}
	}
	res := Result{NumD: nD, NumG: nG, Components: map[string]float64{"nll": 0}}
	if s.kind != kindMLE {
		res.Components["bc"] = 0
	}
	if sm {
		res.Components["linear"] = 0
		res.Components["square"] = 0
		res.Components["value"] = 0
	}

	// The logit of each transition's action, Q(s_i, a_i), gathered before
	// pass 1 writes grad (which may alias L): nothing reads L after pass 1.
	for i := range b.Trans {
		tr := &b.Trans[i]
		ws.q[i] = float64(L[int(tr.State)*V+int(tr.Action)])
	}

	// Pass 1: V(row) for every needed row; the unnormalised softmax
	// exp(L−max) goes into grad to be rescaled in pass 3. Each row of L is
	// read (max, then exp elementwise) before or as the same row of grad is
	// written, so grad may alias L.
	bk := p.BkspcID
	parallelRows(N, V, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			if !ws.need[r] {
				continue
			}
			row := L[r*V : (r+1)*V]
			skip := -1
			if bk >= 0 && !b.BkspcAllowed[r] {
				skip = bk
			}
			m := math.Inf(-1)
			for a, x := range row {
				if a != skip && float64(x) > m {
					m = float64(x)
				}
			}
			// Sum over the allowed actions: [0, skip) and (skip, V).
			sum := 0.0
			end := V
			if skip >= 0 {
				end = skip
			}
			if grad != nil {
				g := grad[r*V : (r+1)*V]
				sum = expInto(g[:end], row[:end], m)
				if skip >= 0 {
					g[skip] = 0
					sum += expInto(g[skip+1:], row[skip+1:], m)
				}
			} else {
				sum = expSum(row[:end], m)
				if skip >= 0 {
					sum += expSum(row[skip+1:], m)
				}
			}
			ws.v[r] = m + math.Log(sum)
			ws.scale[r] = 1 / sum
		}
	})

	// Pass 2: the loss, dLoss/dV(row) into cv and dLoss/dQ into cq.
	lam := p.Lambda
	bcCoef := 1.0 // weight of the BC/NLL term in the total
	smCoef := 0.0 // weight of the SM term in the total
	if sm {
		bcCoef, smCoef = 1-lam, lam
	}
	hasD, hasG := wD > 0, wG > 0
	var mixD, mixG float64 // Ê_mix coefficient per unit weight
	switch {
	case hasD && hasG:
		mixD, mixG = 0.5/wD, 0.5/wG
	case hasD:
		mixD = 1 / wD
	case hasG:
		mixG = 1 / wG
	}
	lo, hi := s.f.domain(cfg.ClampEps)
	var nll, lin, sq, val float64
	clamped := 0
	for i := range b.Trans {
		tr := &b.Trans[i]
		st := int(tr.State)
		q := ws.q[i]
		vs := ws.v[st]
		isD := tr.Set == data.SetD
		if isD {
			// −log π(a|s) = V(s) − Q(s,a)
			c := 1 / float64(nD)
			nll += c * (vs - q)
			if bcCoef != 0 {
				ws.cq[i] -= bcCoef * c
				ws.cv[st] += bcCoef * c
			}
		}
		if !sm {
			continue
		}
		w := weight(tr.T)
		vn, cont := 0.0, 0.0 // V(s'), (1−done)
		if !tr.Done {
			vn, cont = ws.v[tr.Next], 1
		}
		r := q - gamma*vn*cont
		var aD, mix float64 // Ê_D and Ê_mix weights of this transition
		if isD {
			if hasD {
				aD, mix = w/wD, w*mixD
			}
		} else {
			mix = w * mixG
		}
		dr := 0.0 // dSM/dr
		// Linear/φ term on D.
		if isD {
			switch s.f {
			case fChi2Mix, fChi2:
				lin -= aD * r
				dr -= aD
			default:
				x := r
				isClamped := x < lo || x > hi
				if isClamped {
					x = min(max(x, lo), hi)
					clamped++
				}
				if aD != 0 { // zero-weight transitions: no 0·Inf
					ph, dph := s.f.phi(x)
					lin -= aD * ph
					if !isClamped {
						dr -= aD * dph
					}
				}
			}
		}
		// Square term: on mix (chi2mix) or on D (chi2).
		var sqw float64
		switch s.f {
		case fChi2Mix:
			sqw = mix
		case fChi2:
			sqw = aD
		}
		if sqw != 0 {
			sq += cfg.C * sqw * r * r
			dr += 2 * cfg.C * sqw * r
		}
		// Value term V(s) − γV(s')(1−done), on mix or D.
		beta := mix
		if cfg.ValueOn == ValueOnData {
			beta = aD
		}
		if beta != 0 {
			val += beta * (vs - gamma*vn*cont)
		}
		if smCoef != 0 {
			ws.cq[i] += smCoef * dr
			ws.cv[st] += smCoef * beta
			if cont != 0 {
				ws.cv[tr.Next] -= smCoef * gamma * (dr + beta)
			}
		}
	}
	res.Components["nll"] = nll
	res.Loss = nll
	if s.kind == kindBC {
		res.Components["bc"] = nll
	}
	if sm {
		res.Components["bc"] = nll
		res.Components["linear"] = lin
		res.Components["square"] = sq
		res.Components["value"] = val
		// Terms with a zero coefficient are left out (0·Inf would be NaN).
		res.Loss = 0
		if bcCoef != 0 {
			res.Loss += bcCoef * nll
		}
		if smCoef != 0 {
			res.Loss += smCoef * (lin + sq + val)
		}
		if nD > 0 && s.f != fChi2Mix && s.f != fChi2 {
			res.ClampedFrac = float64(clamped) / float64(nD)
		}
	}
	if grad == nil {
		return res, nil
	}

	// Pass 3: grad[row] = cv[row]·π[row] (rows never used are zeroed).
	parallelRows(N, V, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g := grad[r*V : (r+1)*V]
			c := ws.cv[r]
			if !ws.need[r] || c == 0 {
				clear(g)
				continue
			}
			k := c * ws.scale[r]
			for a := range g {
				g[a] = F(float64(g[a]) * k)
			}
		}
	})
	for i := range b.Trans {
		if c := ws.cq[i]; c != 0 {
			idx := int(b.Trans[i].State)*V + int(b.Trans[i].Action)
			grad[idx] = F(float64(grad[idx]) + c)
		}
	}
	return res, nil
}

// expInto writes exp(x−m) into dst and returns the sum (float64).
func expInto[F Float](dst, x []F, m float64) float64 {
	sum := 0.0
	for a, v := range x {
		e := math.Exp(float64(v) - m)
		dst[a] = F(e)
		sum += e
	}
	return sum
}

// expSum returns Σ exp(x−m) (float64).
func expSum[F Float](x []F, m float64) float64 {
	sum := 0.0
	for _, v := range x {
		sum += math.Exp(float64(v) - m)
	}
	return sum
}
