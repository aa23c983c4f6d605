package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"smtrain/data"
	"smtrain/envbridge/expert"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
	"smtrain/train"
)

// dojoInputs collects expert trajectories in the built-in environments into
// OUT/builtin-data (finished episodes are kept, so a rerun or resume reuses
// them) and loads them back with the MLE-Dojo run-folder loader.
func dojoInputs(ctx context.Context, cfg train.Config, stderr io.Writer) (train.Inputs, error) {
	dir := filepath.Join(cfg.Out, "builtin-data")
	opts := expert.CollectOptions{Tasks: tasks.Names(), Episodes: cfg.DojoEpisodes, Seed: uint64(cfg.Seed), Out: dir, Expert: expert.Options{Style: cfg.DojoStyle},
		Parallel: 2, MaxSteps: 10, Sandbox: sandbox.Config{Timeout: 60 * time.Second}}
	start := time.Now()
	s, err := expert.Collect(ctx, opts)
	if err != nil {
		return train.Inputs{}, fmt.Errorf("collecting built-in expert data: %w", err)
	}
	fmt.Fprintf(stderr, "built-in data: %d expert episodes on %d tasks in %s (%.1fs)\n", cfg.DojoEpisodes, len(opts.Tasks), dir, time.Since(start).Seconds())
	_ = s
	res, err := data.Load([]string{dir}, false)
	if err != nil {
		return train.Inputs{}, err
	}
	return train.Inputs{Train: filterReward(res.Episodes, cfg.MinReward), Describe: "built-in MLE-Dojo expert episodes"}, nil
}
