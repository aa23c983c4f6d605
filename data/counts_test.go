package data

import (
	"slices"
	"testing"
)

// TestKeysByCount: most counted first, ties in key order, whatever the
// map's iteration order.
func TestKeysByCount(t *testing.T) {
	m := map[string]int{"b": 2, "a": 2, "z": 5, "c": 1, "y": 2}
	want := []string{"z", "a", "b", "y", "c"}
	for range 20 {
		if got := KeysByCount(m); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if got := KeysByCount(nil); len(got) != 0 {
		t.Fatalf("nil map: %v", got)
	}
}
