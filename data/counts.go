package data

import (
	"cmp"
	"slices"
)

// KeysByCount returns the keys of counts, the most counted first and equal
// counts in key order (deterministic): how skip reasons, rollout failure
// reasons and the words a tokenizer trainer keeps are ranked.
func KeysByCount(counts map[string]int) []string {
	// Sort (key, count) pairs: a comparator that looks counts up in the
	// map made ranking a tokenizer trainer's million words take seconds.
	type keyCount struct {
		k string
		n int
	}
	all := make([]keyCount, 0, len(counts))
	for k, n := range counts {
		all = append(all, keyCount{k, n})
	}
	slices.SortFunc(all, func(a, b keyCount) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		return cmp.Compare(a.k, b.k)
	})
	keys := make([]string, len(all))
	for i, c := range all {
		keys[i] = c.k
	}
	return keys
}
