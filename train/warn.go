package train

import (
	"fmt"

	"smtrain/objective"
)

// startWarnings returns the warnings New prints before a run starts:
// settings under which the run does not do what its config suggests.
func startWarnings(cfg Config, obj objective.Objective, nTrainEps, nValEps, nValSeqs int) []string {
	var w []string
	// An SM objective trains pure BC (λ 0) during its warm start.
	if obj.UsesReplay() && cfg.WarmStart >= cfg.Steps {
		w = append(w, fmt.Sprintf("warning: objective %s never leaves its BC warm start (warm_start %d >= steps %d): every step trains BC with λ 0, no SequenceMatch; lower -warm_start or raise -steps",
			obj.Name(), cfg.WarmStart, cfg.Steps))
	}
	if nValEps == 0 || nValSeqs == 0 {
		w = append(w, fmt.Sprintf("warning: no validation episodes (%d training episodes, val_fraction %g): no evaluation, no best checkpoint, and 'smtrain eval -ckpt' on this run needs -data; give at least 2 episodes with val_fraction > 0",
			nTrainEps, cfg.ValFraction))
	}
	return w
}
