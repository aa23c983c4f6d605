package objective

import (
	"fmt"
	"math"
)

// Weighting schemes for the SequenceMatch weighted means (DESIGN.md 4).
const (
	// WeightDiscounted weights transition i by γ^{t_i} (the default).
	WeightDiscounted = "discounted"
	// WeightUniform weights every transition by 1.
	WeightUniform = "uniform"
)

// Where the SequenceMatch value term Ê[V(s) − γV(s')(1−done)] is estimated.
const (
	// ValueOnMix uses Ê_mix = ½Ê_D + ½Ê_G (Ê_D alone while G is empty,
	// Ê_G alone for a batch without D transitions).
	ValueOnMix = "mix"
	// ValueOnData uses Ê_D only.
	ValueOnData = "data"
)

// Config holds the objective hyperparameters (DESIGN.md 4). The data
// augmentation keys (eta, noise_as_action) belong to the data package's
// config: the objective only sees the transitions it is given.
type Config struct {
	// Gamma is the discount γ in [0, 1].
	Gamma float64 `json:"gamma" yaml:"gamma"`
	// C is the χ² coefficient c ≥ 0 (chi2mix and chi2).
	C float64 `json:"c" yaml:"c"`
	// Lambda is the BC/SM mix λ in [0, 1]: total = (1−λ)·BC + λ·SM.
	Lambda float64 `json:"lambda" yaml:"lambda"`
	// WarmStart is the number of initial steps trained with λ = 0 (pure BC).
	WarmStart int `json:"warm_start" yaml:"warm_start"`
	// Weighting is "discounted" (w_i = γ^{t_i}) or "uniform" (w_i = 1).
	Weighting string `json:"weighting" yaml:"weighting"`
	// ValueOn is "mix" or "data": where the value term is estimated.
	ValueOn string `json:"value_on" yaml:"value_on"`
	// ClampEps is how far inside a φ domain bound r is clamped (ε).
	ClampEps float64 `json:"clamp_eps" yaml:"clamp_eps"`
}

// DefaultConfig returns the DESIGN.md 4 defaults.
func DefaultConfig() Config {
	return Config{
		Gamma:     0.998,
		C:         0.25,
		Lambda:    0.5,
		WarmStart: 200,
		Weighting: WeightDiscounted,
		ValueOn:   ValueOnMix,
		ClampEps:  1e-3,
	}
}

// Validate reports the first invalid field as a one-line error naming the key.
func (c Config) Validate() error {
	bad := func(key string, v any, want string) error {
		return fmt.Errorf("objective config: %s = %v: %s", key, v, want)
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case !finite(c.Gamma) || c.Gamma < 0 || c.Gamma > 1:
		return bad("gamma", c.Gamma, "want 0 ≤ gamma ≤ 1")
	case !finite(c.C) || c.C < 0:
		return bad("c", c.C, "want a finite c ≥ 0")
	case !finite(c.Lambda) || c.Lambda < 0 || c.Lambda > 1:
		return bad("lambda", c.Lambda, "want 0 ≤ lambda ≤ 1")
	case c.WarmStart < 0:
		return bad("warm_start", c.WarmStart, "want warm_start ≥ 0")
	case c.Weighting != WeightDiscounted && c.Weighting != WeightUniform:
		return bad("weighting", fmt.Sprintf("%q", c.Weighting), `want "discounted" or "uniform"`)
	case c.ValueOn != ValueOnMix && c.ValueOn != ValueOnData:
		return bad("value_on", fmt.Sprintf("%q", c.ValueOn), `want "mix" or "data"`)
	case !finite(c.ClampEps) || c.ClampEps <= 0 || c.ClampEps >= 0.25:
		return bad("clamp_eps", c.ClampEps, "want 0 < clamp_eps < 0.25")
	}
	return nil
}

// LambdaAt is the λ to use at optimizer step `step` (0-based): 0 during the
// first WarmStart steps, Lambda afterwards.
func (c Config) LambdaAt(step int) float64 {
	if step < c.WarmStart {
		return 0
	}
	return c.Lambda
}
