package objective

import "math"

// fdiv selects the SequenceMatch variant.
type fdiv uint8

const (
	fChi2Mix   fdiv = iota // −Ê_D[r] + c·Ê_mix[r²]
	fChi2                  // φ(x) = x − c·x² on D (linear and square parts reported apart)
	fKL                    // φ(x) = −exp(−(x+1))
	fJS                    // φ(x) = log(2 − exp(−x)), x > −ln 2
	fHellinger             // φ(x) = x/(1+x), x > −1
	fTV                    // φ(x) = x, |x| ≤ ½
)

var fdivByName = map[string]fdiv{
	"chi2mix":   fChi2Mix,
	"chi2":      fChi2,
	"kl":        fKL,
	"js":        fJS,
	"hellinger": fHellinger,
	"tv":        fTV,
}

// domain returns the closed interval [lo, hi] that r is clamped into before
// φ: eps inside each finite bound of φ's domain.
func (f fdiv) domain(eps float64) (lo, hi float64) {
	switch f {
	case fJS:
		return -math.Ln2 + eps, math.Inf(1)
	case fHellinger:
		return -1 + eps, math.Inf(1)
	case fTV:
		return -0.5 + eps, 0.5 - eps
	}
	return math.Inf(-1), math.Inf(1)
}

// phi returns φ(x) and φ'(x) for the non-χ² variants (x inside the domain).
func (f fdiv) phi(x float64) (v, d float64) {
	switch f {
	case fKL:
		e := math.Exp(-(x + 1))
		return -e, e
	case fJS:
		e := math.Exp(-x)
		return math.Log(2 - e), e / (2 - e)
	case fHellinger:
		return x / (1 + x), 1 / ((1 + x) * (1 + x))
	}
	return x, 1 // fTV (and the linear part of χ²)
}
