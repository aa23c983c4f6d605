package rollout

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/envbridge"
	"smtrain/model"
)

type recordReg struct{ opened []string }

func (r *recordReg) Tasks() []string { return []string{"a", "b", "c"} }

func (r *recordReg) New(ctx context.Context, task string, opts envbridge.Options) (envbridge.Env, error) {
	r.opened = append(r.opened, task)
	if opts.MaxSteps != 7 {
		return nil, errors.New("options not passed on")
	}
	return nil, nil
}

// TestRegistrySpecRoundRobin: episode i opens Tasks[i mod n] with the
// spec's options.
func TestRegistrySpecRoundRobin(t *testing.T) {
	reg := &recordReg{}
	spec := &RegistrySpec{Reg: reg, Tasks: []string{"a", "c"}, Opts: envbridge.Options{MaxSteps: 7}}
	var got []string
	for i := 0; i < 5; i++ {
		if _, err := spec.Open(context.Background(), i, ""); err != nil {
			t.Fatal(err)
		}
		got = append(got, spec.Task(i))
	}
	want := []string{"a", "c", "a", "c", "a"}
	for i := range want {
		if got[i] != want[i] || reg.opened[i] != want[i] {
			t.Fatalf("opened %v (reported %v), want %v", reg.opened, got, want)
		}
	}
}

// TestInCode: the end of a reply is inside code only within the string
// value of a "code" key, escaped quotes included.
func TestInCode(t *testing.T) {
	for _, c := range []struct {
		text string
		want bool
	}{
		{"I will run it.\n\n```json\n{\"action\": \"execute_code\", \"params\": {\"code\": \"import csv\\nx = ", true},
		{"{\"code\":\"print(\\\"a", true},
		{"{\"code\": \"print(1)\"", false},
		{"{\"code\": \"print(1)\"}\n```\n", false},
		{"Let me write the \"code\"", false},
		{"no json here", false},
		{"{\"code\": ", false},
	} {
		if got := InCode(c.text); got != c.want {
			t.Errorf("InCode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

// TestBkspcInCode replays an action sequence: a <bkspc> counts as in code
// when the text it deletes from ends inside the code string.
func TestBkspcInCode(t *testing.T) {
	tok := data.ByteTokenizer()
	enc := func(s string) []int32 { return tok.EncodeOrdinary(s) }
	bk := tok.BkspcID()
	var acts []int32
	acts = append(acts, enc("Hi")...)
	acts = append(acts, bk)                        // prose
	acts = append(acts, enc(`i {"code": "pri`)...) // into code
	acts = append(acts, bk, bk)                    // two in code
	acts = append(acts, enc(`rint(1)"}`)...)       // out again
	acts = append(acts, bk)                        // deletes the '}' after the string: prose
	if got := BkspcInCode(tok, acts); got != 2 {
		t.Fatalf("BkspcInCode = %d, want 2", got)
	}
}

// TestChatPolicyPromptCut: a reply whose history does not fit the context
// with the reply budget says so; one that fits does not.
func TestChatPolicyPromptCut(t *testing.T) {
	tok := data.ByteTokenizer()
	cfg := model.Tiny
	cfg.VocabSize, cfg.NPositions = tok.VocabSize(), 96
	p, err := model.NewParams(cfg, model.F32, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	o := decode.DefaultOptions()
	o.MaxNewTokens = 16
	pol := &ChatPolicy{CP: decode.NewChatPolicy(p, tok, o)}
	for _, c := range []struct {
		obs string
		cut bool
	}{{"short", false}, {strings.Repeat("a long observation ", 6), true}} {
		msgs := []data.Message{{Role: data.RoleUser, Content: c.obs}}
		rep, err := pol.Act(context.Background(), msgs, 3)
		if err != nil {
			t.Fatal(err)
		}
		if rep.PromptCut != c.cut {
			t.Fatalf("history of %d bytes: PromptCut %v, want %v", len(c.obs), rep.PromptCut, c.cut)
		}
	}
}
