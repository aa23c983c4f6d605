package serve

import (
	"strings"
	"unicode/utf8"
)

// streamable returns the part of final text that may be sent as content
// now: cut at a stop string, less the last holdBack bytes (the start of a
// stop string that may still complete) and an incomplete UTF-8 character
// at the end.
func streamable(text string, stops []string, holdBack int) string {
	cut := -1
	for _, st := range stops {
		if i := strings.Index(text, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		return text[:cut] // the reply ends there
	}
	text = text[:max(0, len(text)-holdBack)]
	for k := 1; k <= utf8.UTFMax && k <= len(text); k++ {
		if utf8.RuneStart(text[len(text)-k]) {
			if !utf8.FullRuneInString(text[len(text)-k:]) {
				text = text[:len(text)-k]
			}
			break
		}
	}
	return text
}
