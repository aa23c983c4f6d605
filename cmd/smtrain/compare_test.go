package main

import (
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
