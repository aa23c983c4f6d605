package data

import (
	"cmp"
	"slices"
)

// KeysByCount returns the keys of counts, the most counted first and equal
// counts in key order (deterministic): how skip reasons, rollout failure
// reasons and the words a tokenizer trainer keeps are ranked.
func KeysByCount(counts map[string]int) []string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return keys
}
