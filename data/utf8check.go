package data

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// LoadOptions configure LoadWith.
type LoadOptions struct {
	// SkipBad reports and skips malformed files and lines instead of
	// failing.
	SkipBad bool
	// StrictUTF8 makes bytes that are not UTF-8 an error naming the file
	// and the first offset; otherwise they become U+FFFD (as JSON
	// decoding does) and are counted per file in LoadResult.InvalidUTF8.
	StrictUTF8 bool
	// Progress, when set, is called after each file with the files done,
	// the files in all and the bytes read so far.
	Progress func(done, total int, bytes int64)
}

// InvalidUTF8 counts a file's invalid UTF-8 sequences (each becomes one
// U+FFFD when the file is decoded).
type InvalidUTF8 struct {
	File  string `json:"file"`
	Count int    `json:"count"`
	First int64  `json:"first_offset"` // byte offset of the first one
}

// String describes the count for a console line.
func (u InvalidUTF8) String() string {
	return fmt.Sprintf("%s: %d invalid UTF-8 sequences (first at byte %d) read as U+FFFD", u.File, u.Count, u.First)
}

// countInvalidUTF8 counts the invalid UTF-8 sequences of the file at path,
// streaming it.
func countInvalidUTF8(path string) (InvalidUTF8, error) {
	u := InvalidUTF8{File: path, First: -1}
	f, err := os.Open(path)
	if err != nil {
		return u, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	for {
		c, size, err := r.ReadRune()
		if err == io.EOF {
			return u, nil
		}
		if err != nil {
			return u, fmt.Errorf("%s: %w", path, err)
		}
		if c == utf8.RuneError && size == 1 {
			if u.Count == 0 {
				u.First = off
			}
			u.Count++
		}
		off += int64(size)
	}
}
