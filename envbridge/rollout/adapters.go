package rollout

import (
	"context"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
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
// (a local one, for example), so tasks are played round-robin.
type RegistrySpec struct {
	Reg   httpenv.Registry
	Tasks []string
	Opts  httpenv.Options
}

var _ EnvSpec = (*RegistrySpec)(nil)

// Open implements EnvSpec.
func (r *RegistrySpec) Open(ctx context.Context, i int) (envbridge.Env, string, error) {
	task := r.Tasks[i%len(r.Tasks)]
	env, err := r.Reg.New(ctx, task, r.Opts)
	return env, task, err
}
