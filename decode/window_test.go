package decode

import (
	"context"
	"testing"
)

// deepest returns how far below its longest length a completion's stack
// ever went (the reach of its backspaces).
func deepest(actions []int32, bkspc int32) int {
	n, high, reach := 0, 0, 0
	for _, a := range actions {
		if a == bkspc {
			n--
		} else {
			n++
		}
		high = max(high, n)
		reach = max(reach, high-n)
	}
	return reach
}

// TestBkspcWindow: with BkspcWindow W no <bkspc> reaches more than W
// tokens below the longest the completion has been (so a stream can send
// older text), while without it a backspace-happy model reaches further.
func TestBkspcWindow(t *testing.T) {
	logits := func([]int32) []float32 {
		l := make([]float32, 16)
		for i := range l {
			l[i] = -30
		}
		l[BkspcID] = 0.9 // about as likely as a token: long runs of <bkspc>
		for i := 10; i < 16; i++ {
			l[i] = 0
		}
		return l
	}
	prompts := [][]int32{{5}, {5}, {5}, {5}}
	o := DefaultOptions()
	o.MaxNewTokens, o.MaxActions, o.Seed = 40, 400, 3
	free, _, err := Generate(context.Background(), fakeFactory(logits), prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	reachFree := 0
	for _, r := range free {
		reachFree = max(reachFree, deepest(r.Actions, BkspcID))
	}
	const W = 3
	if reachFree <= W {
		t.Fatalf("without a window backspaces reach only %d tokens: the test does not exercise the window", reachFree)
	}
	o.BkspcWindow = W
	res, _, err := Generate(context.Background(), fakeFactory(logits), prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if d := deepest(r.Actions, BkspcID); d > W {
			t.Fatalf("sample %d: a backspace reached %d tokens back, window %d", i, d, W)
		}
		if r.NumBkspc == 0 {
			t.Fatalf("sample %d: no backspace at all", i)
		}
		if got := o.FinalTokens(len(r.Tokens) + 1); got != len(r.Tokens)+1-W {
			t.Fatalf("FinalTokens = %d", got)
		}
	}
}
