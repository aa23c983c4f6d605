//go:build !linux

package model

import "errors"

// exchangeDirs is not available on this OS; replaceDir falls back to two
// renames.
var exchangeDirs = func(a, b string) error { return errors.New("exchange not supported") }
