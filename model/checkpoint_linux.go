//go:build linux

package model

import "golang.org/x/sys/unix"

// exchangeDirs atomically swaps the paths a and b (renameat2
// RENAME_EXCHANGE). A variable so tests can exercise the fallback.
var exchangeDirs = func(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
