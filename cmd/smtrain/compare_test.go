package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareBadFlagsExit2(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmp")
	cases := [][]string{
		{"compare"}, // no -out
		{"compare", "-out", out, "-noise", "x"},
		{"compare", "-out", out, "-noise", "1.5"},
		{"compare", "-out", out, "-noise", "0.1,0.1"},
		{"compare", "-out", out, "-seeds", "0"},
		{"compare", "-out", out, "-seeds", "1,a"},
		{"compare", "-out", out, "-objectives", "mle,chi3"},
		{"compare", "-out", out, "-objectives", ","},
		{"compare", "-out", out, "-eta", "0.1"},
		{"compare", "-out", out, "-seed", "3"},
		{"compare", "-out", out, "-objective", "bc"},
		{"compare", "-out", out, "-task", "mnist"},
		{"compare", "-out", out, "-task", "data:"},
		{"compare", "-out", out, "-parallel", "0"},
		{"compare", "-out", out, "-steps", "-3"},
		{"compare", "-out", out, "-arith_digits", "40"},
		{"compare", "-out", out, "-val", "0"},
		{"compare", "-out", out, "-nosuchflag"},
		{"compare", "-out", out, "stray"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(c...)
		if code != 2 {
			t.Errorf("smtrain %s: exit %d, want 2 (stderr %q)", strings.Join(c, " "), code, stderr)
		}
		if stderr == "" || strings.Contains(stderr, "goroutine") {
			t.Errorf("smtrain %s: stderr %q", strings.Join(c, " "), stderr)
		}
	}
}

func TestCompareTinyCLI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmp")
	args := []string{"compare", "-out", out, "-objectives", "mle,bc", "-seeds", "1", "-noise", "0.1", "-steps", "4",
		"-arith_digits", "1", "-arith_ops", "add", "-arith_train", "30", "-arith_test", "10", "-val", "5",
		"-n_layer", "1", "-n_embd", "16", "-n_positions", "32", "-batch_size", "4", "-warmup_steps", "1",
		"-eval_every", "2", "-ckpt_every", "2", "-parallel", "1"}
	code, stdout, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "acc_sample_bk") || !strings.Contains(stdout, "wrote results.json") {
		t.Fatalf("stdout:\n%s", stdout)
	}
	// same command again: both runs reused
	code, _, stderr = runCLI(args...)
	if code != 0 || strings.Count(stderr, "result reused") != 2 {
		t.Fatalf("rerun: exit %d, stderr:\n%s", code, stderr)
	}
	if code, _, _ := runCLI("help", "compare"); code != 0 {
		t.Fatalf("help compare: exit %d", code)
	}
}

func TestCommandLineQuoting(t *testing.T) {
	got := commandLine("smtrain compare", []string{"-out", "a b", "-noise", "0,0.1", "-x", "it's"})
	want := `smtrain compare -out 'a b' -noise 0,0.1 -x 'it'\''s'`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestCompareDojoConstrained runs a tiny dojo comparison end to end: built-in
// expert data, a few training steps, rollouts in the built-in environments
// decoded under the action grammar (every action valid), results.json with
// the dojo metrics.
func TestCompareDojoConstrained(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmp")
	args := []string{"compare", "-task", "dojo", "-constrain", "action", "-out", out, "-objectives", "mle", "-seeds", "1", "-noise", "0",
		"-steps", "4", "-dojo_episodes", "3", "-rollouts", "1", "-rollout_steps", "2",
		"-n_layer", "1", "-n_embd", "16", "-n_head", "2", "-n_positions", "128", "-batch_size", "2", "-warmup_steps", "1",
		"-eval_every", "2", "-ckpt_every", "2", "-parallel", "1"}
	code, stdout, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Rows []struct {
			Metrics map[string]float64 `json:"metrics"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &res); err != nil || len(res.Rows) != 1 {
		t.Fatalf("results.json: %v\n%s", err, b)
	}
	m := res.Rows[0].Metrics
	if m["valid_action_rate"] != 1 || m["failed_episodes"] != 0 {
		t.Fatalf("constrained dojo run: %v", m)
	}
	if code, _, errs := runCLI("compare", "-task", "arith", "-constrain", "action", "-out", out); code != 2 || !strings.Contains(errs, "dojo only") {
		t.Fatalf("-constrain with arith: exit %d: %s", code, errs)
	}
}

// TestCompareDojoEnvReplay: a NAME+env run of a dojo comparison fills its
// replay buffer with episodes played in the environments (its run folder
// holds their rollouts), the same label without +env does not.
func TestCompareDojoEnvReplay(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmp")
	args := []string{"compare", "-task", "dojo", "-out", out, "-objectives", "chi2mix,chi2mix+env", "-seeds", "1", "-noise", "0.1",
		"-steps", "3", "-warm_start", "0", "-dojo_episodes", "3", "-rollouts", "1", "-rollout_steps", "1",
		"-replay_every", "2", "-replay_samples", "1", "-replay_max_new", "24",
		"-n_layer", "1", "-n_embd", "16", "-n_head", "2", "-n_positions", "128", "-batch_size", "2", "-warmup_steps", "1",
		"-eval_every", "10", "-ckpt_every", "10", "-parallel", "1"}
	code, stdout, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	envDir := filepath.Join(out, "runs", "chi2mix+env-s1-eta0.1", "replay_env")
	if ents, err := os.ReadDir(envDir); err != nil || len(ents) == 0 {
		t.Fatalf("chi2mix+env played no replay episodes in %s (%v)", envDir, err)
	}
	if _, err := os.Stat(filepath.Join(out, "runs", "chi2mix-s1-eta0.1", "replay_env")); !os.IsNotExist(err) {
		t.Fatalf("plain chi2mix played replay episodes (%v)", err)
	}
}
