package rollout

import (
	"context"
	"errors"
	"testing"

	"smtrain/envbridge"
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
