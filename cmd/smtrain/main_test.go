package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrorsExit2(t *testing.T) {
	cases := [][]string{
		{},
		{"nosuchcommand"},
		{"fit", "-nosuchflag"},
		{"fit", "-steps", "many"},
		{"fit", "-objective", "chi3"},
		{"fit", "-lr", "-1"},
		{"fit", "stray-argument"},
		{"rollout", "-out", "x"},
		{"version", "extra"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(c...)
		if code != 2 {
			t.Errorf("smtrain %s: exit %d, want 2 (stderr %q)", strings.Join(c, " "), code, stderr)
		}
		if stderr == "" {
			t.Errorf("smtrain %s: nothing on stderr", strings.Join(c, " "))
		}
		if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
			t.Errorf("smtrain %s: stack trace on stderr: %s", strings.Join(c, " "), stderr)
		}
	}
}

func TestFitUsageLineOnBadFlag(t *testing.T) {
	_, _, stderr := runCLI("fit", "-bogus")
	if !strings.Contains(stderr, "usage: smtrain fit") {
		t.Fatalf("no usage line: %q", stderr)
	}
}

func TestRuntimeErrorExit1(t *testing.T) {
	code, _, stderr := runCLI("fit", "-data", t.TempDir()+"/missing.jsonl", "-out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "missing.jsonl") {
		t.Fatalf("exit %d stderr %q, want 1 naming the file", code, stderr)
	}
	if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
		t.Fatalf("want one line on stderr, got %q", stderr)
	}
}

func TestHelpForEveryCommand(t *testing.T) {
	code, out, _ := runCLI("help")
	if code != 0 {
		t.Fatalf("help exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out, c.Name) {
			t.Errorf("help does not list %s", c.Name)
		}
		code, hout, herr := runCLI(append([]string{"help"}, strings.Fields(c.Name)...)...)
		if code != 0 || !strings.Contains(hout, "usage: ") {
			t.Errorf("help %s: exit %d out %q err %q", c.Name, code, hout, herr)
		}
		if c.Short == "" || c.Long == "" || c.UsageLine == "" {
			t.Errorf("%s: missing help text", c.Name)
		}
	}
}

func TestHelpForCommandGroups(t *testing.T) {
	for _, g := range []string{"data", "env"} {
		code, out, errb := runCLI("help", g)
		if code != 0 {
			t.Fatalf("help %s: exit %d (%s)", g, code, errb)
		}
		for _, c := range commands {
			if strings.HasPrefix(c.Name, g+" ") && !strings.Contains(out, c.Name) {
				t.Errorf("help %s does not list %s:\n%s", g, c.Name, out)
			}
		}
	}
	if code, _, _ := runCLI("help", "nosuchgroup"); code != 2 {
		t.Errorf("help nosuchgroup: exit %d, want 2", code)
	}
}
