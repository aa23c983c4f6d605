package rollout

import (
	"context"
	"math"
	"strings"

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
	return Reply{Text: r.Text, NumBkspc: r.NumBkspc, NumActions: r.NumActions, HitCap: r.HitCap,
		BkspcInCode: BkspcInCode(c.CP.Tok, r.Actions), PromptCut: len(r.Prompt) < c.fullPromptLen(msgs)}, nil
}

// fullPromptLen is the length of msgs' prompt without truncation (0 when
// it cannot be built: Complete reported that already).
func (c *ChatPolicy) fullPromptLen(msgs []data.Message) int {
	p, err := decode.ChatPrompt(c.CP.Tok, msgs, math.MaxInt)
	if err != nil {
		return 0
	}
	return len(p)
}

// BkspcInCode counts the <bkspc> actions of a reply's action sequence
// taken while the text so far was inside the "code" string of an action
// block (see InCode); the others were in prose or in the JSON around it.
func BkspcInCode(tok *data.Tokenizer, actions []int32) int {
	bk := tok.BkspcID()
	var stack []int32
	n := 0
	for _, a := range actions {
		if a != bk {
			stack = append(stack, a)
			continue
		}
		if InCode(tok.Decode(stack)) {
			n++
		}
		if len(stack) > 0 {
			stack = stack[:len(stack)-1]
		}
	}
	return n
}

// InCode reports whether text ends inside the string value of a "code"
// key: after the last `"code"`, a colon and an opening quote, with no
// unescaped closing quote since.
func InCode(text string) bool {
	i := strings.LastIndex(text, `"code"`)
	if i < 0 {
		return false
	}
	rest := strings.TrimLeft(text[i+len(`"code"`):], " \t\r\n")
	rest, ok := strings.CutPrefix(rest, ":")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " \t\r\n"), `"`)
	if !ok {
		return false
	}
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			j++
		case '"':
			return false
		}
	}
	return true
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
