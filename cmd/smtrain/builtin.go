package main

import (
	"context"
	"errors"
	"io"

	"smtrain/train"
)

// dojoInputs collects expert trajectories in the built-in environments.
func dojoInputs(ctx context.Context, cfg train.Config, stderr io.Writer) (train.Inputs, error) {
	return train.Inputs{}, errors.New("task dojo: the expert collector is not wired in yet; use -task arith or -data")
}
