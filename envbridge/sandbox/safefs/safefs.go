// Package safefs is the only way the host touches folders that agent code
// can write (a workspace, its output/ folder). Everything an agent made is
// hostile: a name may be a symbolic link (to the private answers, to
// /dev/zero, through a chain of links that looks harmless as text), a FIFO
// whose open or read blocks forever, a socket, a huge or sparse file, or
// one of a million entries. The rules, applied by every function here:
//
//   - a path is resolved from an already open, host-made directory, one
//     component at a time, and never through a symbolic link at any
//     component: openat2(2) with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
//     RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV, or, where the kernel lacks
//     openat2 (ENOSYS), a walk that opens each component with O_NOFOLLOW
//     relative to the previous descriptor. Names with "..", "." or an
//     empty component are refused before any system call;
//   - a file is read only after fstatat on its parent descriptor says it is
//     a regular file (so a FIFO, device or socket is never opened), then it
//     is opened O_RDONLY|O_NONBLOCK|O_NOFOLLOW, checked again with fstat on
//     the descriptor (same inode, still regular) and read from that
//     descriptor with a size cap;
//   - walks read directories through descriptors, never follow links, and
//     stop at a bound on entries, depth and wall time (ErrLimit).
//
// Errors name the offending path relative to the root, never the root's
// host path, so they can be shown to agent code as they are.
package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Kinds of refusal; test with errors.Is.
var (
	ErrSymlink    = errors.New("is a symbolic link")
	ErrNotRegular = errors.New("is not a regular file")
	ErrNotDir     = errors.New("is not a directory")
	ErrTooLarge   = errors.New("is larger than the limit")
	ErrLimit      = errors.New("walk limit reached")
	ErrBadName    = errors.New("is not a plain relative path")
)

// Error is a refused or failed operation on Name (relative to the root).
type Error struct {
	Op   string // "open", "read", "walk", ...
	Name string // relative to the root
	Err  error  // one of the Err* kinds above, or a system error
}

func (e *Error) Error() string {
	if e.Name == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Name + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// useOpenat2 is false in tests that exercise the O_NOFOLLOW walk.
var useOpenat2 = true

// resolveFlags are openat2's resolve flags for agent-made paths.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// Dir is an open, host-trusted directory; paths under it are agent-made.
type Dir struct {
	fd int
}

// OpenDir opens a directory the host created (a workspace root). The path
// itself is trusted; its last component must not be a symbolic link.
func OpenDir(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("safefs: open %s: %w", path, err)
	}
	return &Dir{fd: fd}, nil
}

// Close releases the directory.
func (d *Dir) Close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// split checks rel and returns its components.
func split(rel string) ([]string, error) {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return nil, ErrBadName
	}
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.IndexByte(p, 0) >= 0 {
			return nil, ErrBadName
		}
	}
	return parts, nil
}

// openBeneath opens rel (a directory when dir is set) without following
// any symbolic link, returning a descriptor.
func (d *Dir) openBeneath(rel string, flags int, dir bool) (int, error) {
	parts, err := split(rel)
	if err != nil {
		return -1, err
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOCTTY
	if dir {
		flags |= unix.O_DIRECTORY
	}
	if useOpenat2 {
		fd, err := unix.Openat2(d.fd, rel, &unix.OpenHow{Flags: uint64(flags), Resolve: resolveFlags})
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS):
			// No openat2 (Linux < 5.6, or filtered): walk below.
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOTDIR):
			// A link, a mount crossing or a non-directory on the way: the
			// walk below finds which component, for the message.
		default:
			return -1, err
		}
	}
	return d.walkOpen(parts, flags)
}

// walkOpen opens parts one component at a time with O_NOFOLLOW.
func (d *Dir) walkOpen(parts []string, flags int) (int, error) {
	var root unix.Stat_t
	if err := unix.Fstat(d.fd, &root); err != nil {
		return -1, err
	}
	cur := d.fd
	closeCur := func() {
		if cur != d.fd {
			unix.Close(cur)
		}
	}
	for i, p := range parts {
		var st unix.Stat_t
		if err := unix.Fstatat(cur, p, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			closeCur()
			return -1, componentErr(parts, i, err)
		}
		last := i == len(parts)-1
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			closeCur()
			return -1, componentErr(parts, i, ErrSymlink)
		case st.Dev != root.Dev:
			// Another mount, as RESOLVE_NO_XDEV refuses.
			closeCur()
			return -1, componentErr(parts, i, unix.EXDEV)
		case !last && st.Mode&unix.S_IFMT != unix.S_IFDIR:
			closeCur()
			return -1, componentErr(parts, i, ErrNotDir)
		}
		f := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if last {
			f = flags
		}
		fd, err := unix.Openat(cur, p, f, 0)
		closeCur()
		if err != nil {
			if errors.Is(err, unix.ELOOP) {
				err = ErrSymlink
			}
			return -1, componentErr(parts, i, err)
		}
		cur = fd
	}
	return cur, nil
}

// componentErr reports err for the first i+1 components of parts; a
// refusal of an inner component names that component.
func componentErr(parts []string, i int, err error) error {
	if i < len(parts)-1 {
		return &Error{Op: "open", Name: strings.Join(parts[:i+1], "/"), Err: err}
	}
	return err
}

// wrap turns err into an *Error naming rel unless it already names an
// inner component.
func wrap(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, unix.ENOENT) {
		err = fs.ErrNotExist
	}
	return &Error{Op: op, Name: rel, Err: err}
}

// parent opens the directory holding rel and returns it with rel's last
// component. Close the descriptor unless it is d.fd.
func (d *Dir) parent(rel string) (int, string, error) {
	parts, err := split(rel)
	if err != nil {
		return -1, "", err
	}
	if len(parts) == 1 {
		return d.fd, parts[0], nil
	}
	dir := strings.Join(parts[:len(parts)-1], "/")
	fd, err := d.openBeneath(dir, unix.O_RDONLY, true)
	if err != nil {
		return -1, "", wrap("open", dir, err)
	}
	return fd, parts[len(parts)-1], nil
}

func (d *Dir) closeFD(fd int) {
	if fd != d.fd && fd >= 0 {
		unix.Close(fd)
	}
}

// Lstat describes rel itself (a symbolic link is reported as one), with
// every directory on the way resolved without following links.
func (d *Dir) Lstat(rel string) (fs.FileMode, int64, error) {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return 0, 0, wrap("stat", rel, err)
	}
	defer d.closeFD(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, 0, wrap("stat", rel, err)
	}
	return fileMode(st.Mode), st.Size, nil
}

// fileMode converts a stat mode to fs.FileMode's type bits and permissions.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	return mode
}

// Refusal is the refusal (ErrSymlink or ErrNotRegular with the kind) for
// a non-regular file of mode m.
func Refusal(m fs.FileMode) error {
	switch {
	case m&fs.ModeSymlink != 0:
		return ErrSymlink
	case m.IsDir():
		return fmt.Errorf("%w (a directory)", ErrNotRegular)
	case m&fs.ModeNamedPipe != 0:
		return fmt.Errorf("%w (a FIFO)", ErrNotRegular)
	case m&fs.ModeSocket != 0:
		return fmt.Errorf("%w (a socket)", ErrNotRegular)
	case m&fs.ModeDevice != 0:
		return fmt.Errorf("%w (a device node)", ErrNotRegular)
	}
	return ErrNotRegular
}

// OpenRegular opens rel for reading if, and only if, it is a regular file
// reached without any symbolic link. A FIFO, socket or device node is
// refused without being opened. The caller closes the file.
func (d *Dir) OpenRegular(rel string) (*os.File, int64, error) {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return nil, 0, wrap("open", rel, err)
	}
	defer d.closeFD(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, 0, wrap("open", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, 0, wrap("open", rel, Refusal(fileMode(st.Mode)))
	}
	sub := &Dir{fd: pfd}
	fd, err := sub.openBeneath(name, unix.O_RDONLY|unix.O_NONBLOCK, false)
	if err != nil {
		return nil, 0, wrap("open", rel, err)
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil {
		unix.Close(fd)
		return nil, 0, wrap("open", rel, err)
	}
	if st2.Mode&unix.S_IFMT != unix.S_IFREG || st2.Ino != st.Ino || st2.Dev != st.Dev {
		unix.Close(fd)
		return nil, 0, wrap("open", rel, fmt.Errorf("%w (it changed while being opened)", ErrNotRegular))
	}
	return os.NewFile(uintptr(fd), rel), st2.Size, nil
}

// LimitError is ErrTooLarge with the limit, for messages.
type LimitError struct{ Limit int64 }

func (e *LimitError) Error() string {
	return fmt.Sprintf("is larger than the limit of %d bytes", e.Limit)
}

func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// LimitReader returns a reader of f that fails with a *LimitError once
// more than limit bytes were read, and with ErrLimit past the deadline
// (zero: none), checked between reads.
func LimitReader(r io.Reader, limit int64, deadline time.Time) io.Reader {
	return &limitReader{r: r, left: limit, limit: limit, deadline: deadline}
}

type limitReader struct {
	r           io.Reader
	left, limit int64
	deadline    time.Time
}

func (l *limitReader) Read(p []byte) (int, error) {
	if !l.deadline.IsZero() && time.Now().After(l.deadline) {
		return 0, fmt.Errorf("%w: read deadline passed", ErrLimit)
	}
	if l.left < 0 {
		return 0, &LimitError{l.limit}
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n - int(-l.left), &LimitError{l.limit}
	}
	return n, err
}

// ReadFile reads the regular file rel, refusing it (*LimitError, which
// matches ErrTooLarge) when it holds more than limit bytes.
func (d *Dir) ReadFile(rel string, limit int64) ([]byte, error) {
	f, size, err := d.OpenRegular(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > limit {
		return nil, wrap("read", rel, &LimitError{limit})
	}
	b, err := io.ReadAll(LimitReader(f, limit, time.Time{}))
	if err != nil {
		return nil, wrap("read", rel, err)
	}
	return b, nil
}

// Rename renames oldRel to newRel; both must be in the same directory
// (one name component each under a common parent).
func (d *Dir) Rename(oldRel, newRel string) error {
	pfd, oldName, err := d.parent(oldRel)
	if err != nil {
		return wrap("rename", oldRel, err)
	}
	defer d.closeFD(pfd)
	i, j := strings.LastIndexByte(oldRel, '/'), strings.LastIndexByte(newRel, '/')
	if oldRel[:i+1] != newRel[:j+1] {
		return wrap("rename", newRel, fmt.Errorf("%w (not in the same directory as %s)", ErrBadName, oldRel))
	}
	newName := newRel[j+1:]
	if _, err := split(newName); err != nil {
		return wrap("rename", newRel, err)
	}
	return wrap("rename", oldRel, unix.Renameat(pfd, oldName, pfd, newName))
}

// Mkdir creates the directory rel with mode perm (not masked by the
// umask), without following links on the way.
func (d *Dir) Mkdir(rel string, perm fs.FileMode) error {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return wrap("mkdir", rel, err)
	}
	defer d.closeFD(pfd)
	if err := unix.Mkdirat(pfd, name, uint32(perm.Perm())); err != nil {
		return wrap("mkdir", rel, err)
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return wrap("mkdir", rel, err)
	}
	defer unix.Close(fd)
	return wrap("mkdir", rel, unix.Fchmod(fd, uint32(perm.Perm())))
}
