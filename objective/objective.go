// Package objective implements the training losses of DESIGN.md 4: MLE, BC
// and the SequenceMatch family (chi2mix, chi2, kl, js, hellinger, tv), as
// plain functions over flat logits with an exact analytic gradient and as
// one fused gorgonia op (see op.go).
//
// Logits are soft-Q values: Q(s,a) = L_s[a], V(s) = logsumexp_a L_s[a]
// (excluding <bkspc> where it is not allowed), π = softmax(L_s).
//
// Use from a trainer:
//
//	obj, err := objective.New("chi2mix", cfg)          // cfg: objective.Config
//	h := objective.NewHandle(bkspcID)
//	loss, err := objective.NewLossNode(g.Logits, obj, h) // g: the model graph; logits (B*T, V)
//	grads, err := G.Grad(loss, params...)
//	for step := ... {
//		err := h.Set(g, batch, cfg.LambdaAt(step)) // the graph's and the loss's batch; λ = 0 during the warm start
//		machine.RunAll()                           // then h.Result() for metrics
//	}
//
// obj.Augmented() says whether to feed noise+backspace augmented expert
// data (everything but mle), obj.UsesReplay() whether G-set transitions
// (replay-buffer generations) are used. Losses are batch means: with
// gradient accumulation over micro-batches, the weighted SM means are
// per micro-batch.
package objective

import (
	"fmt"
	"sort"
	"strings"

	"smtrain/data"
)

// Float is the element type of logits and gradients.
type Float interface{ ~float32 | ~float64 }

// Params are the per-step inputs of a loss evaluation besides the logits
// and the batch.
type Params struct {
	// BkspcID is the token id of <bkspc>; -1 if the vocabulary has none.
	BkspcID int
	// Lambda is the BC/SM mix λ for this step (0 during warm start, see
	// Config.LambdaAt). Ignored by mle and bc.
	Lambda float64
	// Work is optional scratch memory reused across calls (nil allocates).
	// A Workspace must not be used by two evaluations at once.
	Work *Workspace
}

// Result is the outcome of one loss evaluation.
type Result struct {
	// Loss is the total loss that the gradient differentiates.
	Loss float64
	// Components are the named parts for metrics (unweighted by λ):
	// "nll" (token-mean −log π on D), "bc" (bc and SM objectives),
	// "linear" (−Ê_D[φ(r)], or −Ê_D[r] for chi2/chi2mix), "square"
	// (c·Ê[r²] for chi2/chi2mix, else 0), "value" (Ê[V(s) − γV(s')(1−done)]).
	Components map[string]float64
	// ClampedFrac is the fraction of D transitions whose r was clamped into
	// the domain of φ (0 for objectives without a bounded domain).
	ClampedFrac float64
	// NumD and NumG count the D-set and G-set transitions of the batch.
	NumD, NumG int
}

// Objective is a training loss selected by name.
type Objective interface {
	// Name is the registry name (mle, bc, chi2mix, ...).
	Name() string
	// Augmented reports whether the objective wants noise+backspace
	// augmented expert data (false only for mle).
	Augmented() bool
	// UsesReplay reports whether the objective uses G-set transitions
	// (policy generations from the replay buffer); mle and bc ignore them.
	UsesReplay() bool
	// Config is the resolved configuration.
	Config() Config
	// Loss evaluates the loss over float64 logits (B*T, V) row-major, with
	// row b*T+j holding the logits of input j of sequence b. If grad is not
	// nil (same length as logits) it is overwritten with dLoss/dlogits.
	Loss(logits []float64, V int, b *data.Batch, p Params, grad []float64) (Result, error)
	// Loss32 is Loss over float32 logits (accumulation is float64).
	Loss32(logits []float32, V int, b *data.Batch, p Params, grad []float32) (Result, error)
}

// Compile-time interface checks.
var (
	_ Objective = (*MLE)(nil)
	_ Objective = (*BC)(nil)
	_ Objective = (*SM)(nil)
)

// Names lists the valid objective names; DefaultName is the default.
var Names = []string{"mle", "bc", "chi2mix", "chi2", "kl", "js", "hellinger", "tv"}

// DefaultName is the objective used when none is given.
const DefaultName = "chi2mix"

// New returns the objective called name with configuration cfg.
func New(name string, cfg Config) (Objective, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch name {
	case "mle":
		return &MLE{spec{kind: kindMLE, name: name, cfg: cfg}}, nil
	case "bc":
		return &BC{spec{kind: kindBC, name: name, cfg: cfg}}, nil
	}
	f, ok := fdivByName[name]
	if !ok {
		valid := append([]string(nil), Names...)
		sort.Strings(valid)
		return nil, fmt.Errorf("objective: unknown objective %q (valid: %s)", name, strings.Join(valid, ", "))
	}
	return &SM{spec{kind: kindSM, name: name, cfg: cfg, f: f}}, nil
}

// MLE is −mean_D log π(a|s), the unweighted token mean over clean expert data.
type MLE struct{ s spec }

// BC is the MLE formula on noise+backspace augmented expert data.
type BC struct{ s spec }

// SM is a SequenceMatch objective: (1−λ)·BC + λ·SM-f (DESIGN.md 4).
type SM struct{ s spec }

// Name implements Objective.
func (o *MLE) Name() string { return o.s.name }

// Augmented implements Objective.
func (o *MLE) Augmented() bool { return false }

// UsesReplay implements Objective.
func (o *MLE) UsesReplay() bool { return false }

// Config implements Objective.
func (o *MLE) Config() Config { return o.s.cfg }

// Loss implements Objective.
func (o *MLE) Loss(l []float64, V int, b *data.Batch, p Params, g []float64) (Result, error) {
	return compute(&o.s, l, V, b, p, g)
}

// Loss32 implements Objective.
func (o *MLE) Loss32(l []float32, V int, b *data.Batch, p Params, g []float32) (Result, error) {
	return compute(&o.s, l, V, b, p, g)
}

// Name implements Objective.
func (o *BC) Name() string { return o.s.name }

// Augmented implements Objective.
func (o *BC) Augmented() bool { return true }

// UsesReplay implements Objective.
func (o *BC) UsesReplay() bool { return false }

// Config implements Objective.
func (o *BC) Config() Config { return o.s.cfg }

// Loss implements Objective.
func (o *BC) Loss(l []float64, V int, b *data.Batch, p Params, g []float64) (Result, error) {
	return compute(&o.s, l, V, b, p, g)
}

// Loss32 implements Objective.
func (o *BC) Loss32(l []float32, V int, b *data.Batch, p Params, g []float32) (Result, error) {
	return compute(&o.s, l, V, b, p, g)
}

// Name implements Objective.
func (o *SM) Name() string { return o.s.name }

// Augmented implements Objective.
func (o *SM) Augmented() bool { return true }

// UsesReplay implements Objective.
func (o *SM) UsesReplay() bool { return true }

// Config implements Objective.
func (o *SM) Config() Config { return o.s.cfg }

// Loss implements Objective.
func (o *SM) Loss(l []float64, V int, b *data.Batch, p Params, g []float64) (Result, error) {
	return compute(&o.s, l, V, b, p, g)
}

// Loss32 implements Objective.
func (o *SM) Loss32(l []float32, V int, b *data.Batch, p Params, g []float32) (Result, error) {
	return compute(&o.s, l, V, b, p, g)
}
