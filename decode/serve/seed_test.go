package serve

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSeedsRoundTrip: the seeds the server derives fit in 2^53 (JavaScript
// numbers hold them exactly), and every seed the server reports is
// accepted back and reproduces the reply, including client seeds >= 2^63
// and negative ones (both used to fail or be reported out of int64 range).
func TestSeedsRoundTrip(t *testing.T) {
	_, ts := tinyServer(t, nil)
	body := `{"model":"tiny-test","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"n":2,"temperature":1%s}`
	for i := range 20 {
		st, b := post(t, context.Background(), ts.URL, fmt.Sprintf(body, ""))
		if st != 200 {
			t.Fatalf("request %d: status %d: %s", i, st, b)
		}
		if c := decodeCompletion(t, b); c.Ext.Seed < 0 || c.Ext.Seed >= 1<<53 {
			t.Fatalf("request %d: derived seed %d is not in [0, 2^53)", i, c.Ext.Seed)
		}
	}
	for _, seed := range []string{"18446744073709551615", "9223372036854775808", "-5", "0", "9007199254740993"} {
		st, b := post(t, context.Background(), ts.URL, fmt.Sprintf(body, `,"seed":`+seed))
		if st != 200 {
			t.Fatalf("seed %s: status %d: %s", seed, st, b)
		}
		c := decodeCompletion(t, b)
		st2, b2 := post(t, context.Background(), ts.URL, fmt.Sprintf(body, fmt.Sprintf(`,"seed":%d`, c.Ext.Seed)))
		if st2 != 200 {
			t.Fatalf("seed %s reported as %d: sending it back gives status %d: %s", seed, c.Ext.Seed, st2, b2)
		}
		c2 := decodeCompletion(t, b2)
		for i := range c.Choices {
			if !slices.Equal(c.Choices[i].Ext.Actions, c2.Choices[i].Ext.Actions) {
				t.Fatalf("seed %s reported as %d does not reproduce choice %d", seed, c.Ext.Seed, i)
			}
		}
	}
	for _, bad := range []string{"1.5", "18446744073709551616", `"7"`} {
		st, b := post(t, context.Background(), ts.URL, fmt.Sprintf(body, `,"seed":`+bad))
		if st != 400 || !strings.Contains(string(b), "seed") {
			t.Fatalf("seed %s: status %d %s, want 400 naming seed", bad, st, b)
		}
	}
}
