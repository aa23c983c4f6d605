package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Limits bound a walk. Zero fields mean the defaults.
type Limits struct {
	// MaxEntries bounds the entries visited (default DefaultMaxEntries).
	MaxEntries int
	// MaxDepth bounds the directory depth (default DefaultMaxDepth).
	MaxDepth int
	// Timeout bounds the walk's wall time (default DefaultWalkTimeout).
	Timeout time.Duration
}

// Walk defaults: far above what a task needs (the workspace quota keeps
// the count of files lower still), low enough that a walk of an agent's
// million empty files ends in bounded time.
const (
	DefaultMaxEntries  = 200_000
	DefaultMaxDepth    = 256
	DefaultWalkTimeout = 20 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultWalkTimeout
	}
	return l
}

// Entry is one visited name. Dir is the descriptor of the directory that
// holds it, valid during the callback only, for *at system calls on Name.
type Entry struct {
	Rel  string // path relative to the walk's root
	Name string // last component
	Dir  int    // descriptor of the parent directory
	Mode fs.FileMode
	Stat unix.Stat_t
}

// SkipDir, returned by the callback for a directory, skips its contents.
var SkipDir = fs.SkipDir

// Walk visits every entry under the directory rel ("" or "." for the root
// itself, which is not visited), parents before children, without
// following symbolic links. Directories are visited before their contents
// and are read through descriptors, so an agent cannot redirect the walk.
// Mount points (entries on another device) are skipped. It stops with an
// error wrapping ErrLimit when a bound is reached; fn's error (other than
// SkipDir) stops it too.
func (d *Dir) Walk(rel string, lim Limits, fn func(e Entry) error) error {
	lim = lim.withDefaults()
	w := &walker{fn: fn, lim: lim, deadline: time.Now().Add(lim.Timeout)}
	var fd int
	var err error
	if rel == "" || rel == "." {
		// A new open file description of the root: its own read offset.
		rel = ""
		fd, err = unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		fd, err = d.openBeneath(rel, unix.O_RDONLY, true)
	}
	if err != nil {
		return wrap("walk", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	return w.dir(f, fd, rel, 0)
}

type walker struct {
	fn       func(Entry) error
	lim      Limits
	deadline time.Time
	n        int
}

// count counts one more entry and checks the entry and time bounds.
func (w *walker) count(op, rel string) error {
	w.n++
	if w.n > w.lim.MaxEntries {
		return &Error{Op: op, Name: rel, Err: fmt.Errorf("%w: more than %d entries", ErrLimit, w.lim.MaxEntries)}
	}
	if w.n%64 == 0 && time.Now().After(w.deadline) {
		return &Error{Op: op, Name: rel, Err: fmt.Errorf("%w: took longer than %v", ErrLimit, w.lim.Timeout)}
	}
	return nil
}

// deep checks the depth bound.
func (w *walker) deep(op, rel string, depth int) error {
	if depth >= w.lim.MaxDepth {
		return &Error{Op: op, Name: rel, Err: fmt.Errorf("%w: deeper than %d directories", ErrLimit, w.lim.MaxDepth)}
	}
	return nil
}

// dir visits the entries of the open directory f (descriptor fd, path rel).
func (w *walker) dir(f *os.File, fd int, rel string, depth int) error {
	if err := w.deep("walk", rel, depth); err != nil {
		return err
	}
	var self unix.Stat_t
	if err := unix.Fstat(fd, &self); err != nil {
		return &Error{Op: "walk", Name: rel, Err: err}
	}
	for {
		names, err := f.Readdirnames(256)
		for _, name := range names {
			if err := w.count("walk", rel); err != nil {
				return err
			}
			p := name
			if rel != "" {
				p = rel + "/" + name
			}
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return &Error{Op: "walk", Name: p, Err: err}
			}
			if st.Dev != self.Dev {
				continue // a mount point: another file system is not walked
			}
			e := Entry{Rel: p, Name: name, Dir: fd, Mode: fileMode(st.Mode), Stat: st}
			err := w.fn(e)
			if errors.Is(err, SkipDir) {
				continue
			}
			if err != nil {
				return err
			}
			if !e.Mode.IsDir() {
				continue
			}
			cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return &Error{Op: "walk", Name: p, Err: err}
			}
			cf := os.NewFile(uintptr(cfd), p)
			err = w.dir(cf, cfd, p, depth+1)
			cf.Close()
			if err != nil {
				return err
			}
		}
		if err == io.EOF || (err == nil && len(names) == 0) {
			return nil
		}
		if err != nil {
			return &Error{Op: "walk", Name: rel, Err: err}
		}
	}
}

// Usage is what a walk counted.
type Usage struct {
	Bytes   int64 // allocated bytes (st_blocks*512) of every entry
	Entries int
}

// Usage walks rel and sums its entries and allocated bytes.
func (d *Dir) Usage(rel string, lim Limits) (Usage, error) {
	var u Usage
	err := d.Walk(rel, lim, func(e Entry) error {
		u.Entries++
		u.Bytes += e.Stat.Blocks * 512
		return nil
	})
	return u, err
}

// RemoveAll removes rel (a file, link, FIFO, ... or a directory with
// everything under it; a missing rel is not an error), never following a
// link, within lim's entry, depth and time bounds.
func (d *Dir) RemoveAll(rel string, lim Limits) error {
	lim = lim.withDefaults()
	pfd, name, err := d.parent(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return wrap("remove", rel, err)
	}
	defer d.closeFD(pfd)
	w := &walker{lim: lim, deadline: time.Now().Add(lim.Timeout)}
	return w.removeAt(pfd, name, rel, 0)
}

// removeAt removes name (rel) in the directory pfd, emptying it first when
// it is a directory.
func (w *walker) removeAt(pfd int, name, rel string, depth int) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return &Error{Op: "remove", Name: rel, Err: err}
	}
	if err := w.deep("remove", rel, depth); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &Error{Op: "remove", Name: rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	for pass := 0; ; pass++ {
		if err := w.emptyDir(f, fd, rel, depth); err != nil {
			return err
		}
		err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.ENOTEMPTY) && pass == 0:
			// Entries the first read skipped: read again from the start.
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return &Error{Op: "remove", Name: rel, Err: err}
			}
		default:
			return &Error{Op: "remove", Name: rel, Err: err}
		}
	}
}

// emptyDir removes every entry of the open directory f (descriptor fd).
func (w *walker) emptyDir(f *os.File, fd int, rel string, depth int) error {
	for {
		names, rerr := f.Readdirnames(256)
		for _, n := range names {
			if err := w.count("remove", rel); err != nil {
				return err
			}
			if err := w.removeAt(fd, n, rel+"/"+n, depth+1); err != nil {
				return err
			}
		}
		if len(names) == 0 || rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return &Error{Op: "remove", Name: rel, Err: rerr}
		}
	}
}
