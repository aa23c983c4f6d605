package rollout

import (
	"context"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/envbridge"
)

// ChatPolicy is the Policy of a decode.ChatPolicy: one completion per turn.
type ChatPolicy struct{ CP *decode.ChatPolicy }

var _ Policy = (*ChatPolicy)(nil)

// Act implements Policy.
func (c *ChatPolicy) Act(ctx context.Context, msgs []data.Message, seed uint64) (Reply, error) {
	rs, _, err := c.CP.Complete(ctx, msgs, 1, seed)
	if err != nil {
		return Reply{}, err
	}
	r := rs[0]
	return Reply{Text: r.Text, NumBkspc: r.NumBkspc, NumActions: r.NumActions, HitCap: r.HitCap}, nil
}

// RegistrySpec opens episode i in Tasks[i mod len(Tasks)] of a registry
// (a local one, for example), so tasks are played round-robin. A registry
// with a NewIn method (local.Registry) gets the episode folder as the
// environment's run folder, so the environment writes its history there.
type RegistrySpec struct {
	Reg   envbridge.Registry
	Tasks []string
	Opts  envbridge.Options
}

var _ EnvSpec = (*RegistrySpec)(nil)

// RunDirRegistry is a registry whose environments write their history
// into a given run folder.
type RunDirRegistry interface {
	NewIn(ctx context.Context, task string, opts envbridge.Options, runDir string) (envbridge.Env, error)
}

// Task implements EnvSpec.
func (r *RegistrySpec) Task(i int) string { return r.Tasks[i%len(r.Tasks)] }

// Open implements EnvSpec.
func (r *RegistrySpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	if rd, ok := r.Reg.(RunDirRegistry); ok {
		return rd.NewIn(ctx, r.Task(i), r.Opts, runDir)
	}
	return r.Reg.New(ctx, r.Task(i), r.Opts)
}
