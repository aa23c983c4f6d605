package main

import (
	"path/filepath"

	"smtrain/train"
)

// checkResumeSchedule refuses a resume whose steps or learning-rate keys
// differ from the run's own (OUT/config.json): the cosine schedule would
// restart from another curve at the checkpoint's step (a 100-step run
// resumed with -steps 150 jumps from lr 1.0e-4 to 4.16e-4). -reschedule
// accepts the new schedule.
func checkResumeSchedule(cfg train.Config) error {
	saved := train.DefaultConfig()
	if err := train.LoadConfigFile(filepath.Join(cfg.Out, train.ConfigOutFile), &saved); err != nil {
		return nil // no saved config: train.New reports what is missing
	}
	if saved.Steps == cfg.Steps && saved.WarmupSteps == cfg.WarmupSteps && saved.LR == cfg.LR && saved.MinLR == cfg.MinLR {
		return nil
	}
	ck, err := train.ResolveCheckpoint(cfg.Out)
	if err != nil {
		return nil
	}
	st, err := train.ReadCheckpointState(ck)
	if err != nil {
		return nil
	}
	was := train.LRAt(st.Step, saved.WarmupSteps, saved.Steps, saved.LR, saved.MinLR)
	now := train.LRAt(st.Step, cfg.WarmupSteps, cfg.Steps, cfg.LR, cfg.MinLR)
	return usagef("the run in %s was planned as steps %d, lr %g, min_lr %g, warmup_steps %d; resuming with steps %d, lr %g, min_lr %g, warmup_steps %d changes its learning-rate schedule (at step %d the lr goes from %.3g to %.3g): pass -reschedule to continue on the new schedule, or resume with the run's own values",
		cfg.Out, saved.Steps, saved.LR, saved.MinLR, saved.WarmupSteps, cfg.Steps, cfg.LR, cfg.MinLR, cfg.WarmupSteps, st.Step, was, now)
}
