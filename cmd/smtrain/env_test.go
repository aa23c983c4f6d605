package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
)

func TestEnvServeAndList(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"env", "list", "-builtin"}, &so, &se); code != 0 {
		t.Fatalf("env list: exit %d %s", code, se.String())
	}
	if !strings.Contains(so.String(), "loan-default") || !strings.Contains(so.String(), "auc") {
		t.Fatalf("env list: %s", so.String())
	}
	if code := run(context.Background(), []string{"env", "serve", "-builtin", "-root", "x"}, &so, &se); code != 2 {
		t.Fatalf("exclusive flags: exit %d", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"env", "serve", "-builtin", "-addr", "127.0.0.1:0"}, pw, &se)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no banner: %v (%s)", err, se.String())
	}
	go io.Copy(io.Discard, pr)
	url := regexp.MustCompile(`http://[0-9.:]+`).FindString(line)
	if url == "" {
		t.Fatalf("banner %q", line)
	}
	c, err := httpenv.Dial(ctx, url, "house-prices-lite", envbridge.Options{MaxSteps: 3, TimeBudget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Reset(ctx, 0); err != nil {
		t.Fatal(err)
	}
	res, err := c.Step(ctx, envbridge.Action{Name: envbridge.ActRequestInfo, Params: map[string]any{"info_type": "metadata"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(envbridge.FeedbackText(res.Obs), "'higher_is_better': False") {
		t.Fatalf("metadata: %q", envbridge.FeedbackText(res.Obs))
	}
	c.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d: %s", code, se.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
