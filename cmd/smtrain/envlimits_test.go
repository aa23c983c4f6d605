package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
)

// TestEnvServeLimits: env serve's -workspace_files reaches the sandbox
// (agent code past it gets ENOSPC, when the server may mount a tmpfs) and
// bad limit values are usage errors naming the flags.
func TestEnvServeLimits(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"env", "serve", "-builtin", "-workspace_bytes", "0"}, &so, &se); code != 2 ||
		!strings.Contains(se.String(), "-workspace_bytes and -workspace_files must be > 0") {
		t.Fatalf("bad quota: exit %d %s", code, se.String())
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: workspace quotas need a tmpfs mount (root)")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("SKIP: no /usr/bin/python3")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"env", "serve", "-builtin", "-addr", "127.0.0.1:0", "-workspace_files", "50", "-max_submission_bytes", "1000"}, pw, &se)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no banner: %v (%s)", err, se.String())
	}
	go io.Copy(io.Discard, pr)
	url := regexp.MustCompile(`http://[0-9.:]+`).FindString(line)
	c, err := httpenv.Dial(ctx, url, "loan-default", envbridge.Options{MaxSteps: 3, TimeBudget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Reset(ctx, 0); err != nil {
		t.Fatal(err)
	}
	code := "import os, errno\nn = 0\ntry:\n    for i in range(200):\n        open('/workspace/output/f%d' % i, 'w').close()\n        n += 1\n" +
		"except OSError as e:\n    print('files', n, errno.errorcode[e.errno])\nfor i in range(n):\n    os.remove('/workspace/output/f%d' % i)\n" +
		"open('/workspace/output/submission.csv', 'w').write('x' * 2000)\n"
	res, err := c.Step(ctx, envbridge.Action{Name: envbridge.ActExecuteCode, Params: map[string]any{"code": code}})
	if err != nil {
		t.Fatal(err)
	}
	fb := envbridge.FeedbackText(res.Obs)
	if !strings.Contains(fb, "ENOSPC") || strings.Contains(fb, "files 200") {
		t.Fatalf("-workspace_files 50 not applied:\n%s", fb)
	}
	if !strings.Contains(fb, "larger than the submission size limit of 1000 bytes") {
		t.Fatalf("-max_submission_bytes 1000 not applied:\n%s", fb)
	}
	c.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("env serve exit %d: %s", code, se.String())
	}
}
