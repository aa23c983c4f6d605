package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"smtrain/envbridge/sandbox/safefs"
)

// Workspace quota defaults (Config.WorkspaceBytes, Config.WorkspaceFiles).
const (
	DefaultWorkspaceBytes = 1 << 30
	DefaultWorkspaceFiles = 50_000
)

// wsLockSuffix names the lock file next to each workspace: the owning
// process holds an exclusive flock on it for the workspace's lifetime, so
// a later process can tell a dead owner's workspace from a live one.
const wsLockSuffix = ".lock"

var (
	wsMu    sync.Mutex
	wsLocks = map[string]*os.File{} // workspace path -> its held lock

	mountOnce sync.Once
	mountErr  error // why workspaces cannot be quota mounts here
)

// Workspace file systems (Config.WorkspaceFS).
const (
	// WorkspaceFSAuto uses an ext4 image when this process can make and
	// mount one, else a tmpfs, else no quota.
	WorkspaceFSAuto = "auto"
	// WorkspaceFSExt4 is a sparse ext4 image of WorkspaceBytes with
	// WorkspaceFiles inodes, loop-mounted on the workspace: on disk, and
	// its page cache can be reclaimed, so it does not count against the
	// run's memory limit the way tmpfs pages do.
	WorkspaceFSExt4 = "ext4"
	// WorkspaceFSTmpfs is a tmpfs: no image or tools needed, but memory.
	WorkspaceFSTmpfs = "tmpfs"
	// WorkspaceFSNone is a plain folder: no quota.
	WorkspaceFSNone = "none"
)

// wsImageSuffix names the ext4 image next to a workspace.
const wsImageSuffix = ".img"

// NewWorkspace creates an empty workspace folder (mode 0777, for the
// sandbox uid) under root, named prefix plus a random suffix. Where this
// process may mount file systems (root with CAP_SYS_ADMIN), the folder is
// its own file system of c.WorkspaceBytes bytes and c.WorkspaceFiles
// inodes (nosuid, nodev; see Config.WorkspaceFS), so agent code that
// fills it gets ENOSPC ("No space left on device") instead of filling the
// host's disk or inode table; quota tells which applies. Remove it with
// RemoveWorkspace.
func (c Config) NewWorkspace(root, prefix string) (path, quota string, err error) {
	c = c.withDefaults()
	fsType, why := c.workspaceFS()
	ws, err := os.MkdirTemp(root, prefix)
	if err != nil {
		return "", "", fmt.Errorf("sandbox: workspace: %w", err)
	}
	fail := func(err error) (string, string, error) {
		_ = RemoveWorkspace(ws)
		return "", "", fmt.Errorf("sandbox: workspace: %w", err)
	}
	if err := lockDir(ws); err != nil {
		return fail(err)
	}
	switch fsType {
	case WorkspaceFSExt4:
		if err := mountExt4(ws, c.WorkspaceBytes, c.WorkspaceFiles); err != nil {
			return fail(err)
		}
		quota = fmt.Sprintf("ext4 image of %d bytes and %d files", c.WorkspaceBytes, c.WorkspaceFiles)
	case WorkspaceFSTmpfs:
		opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=0777", c.WorkspaceBytes, c.WorkspaceFiles)
		if err := unix.Mount("smtrain-workspace", ws, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fail(fmt.Errorf("tmpfs quota mount: %w", err))
		}
		quota = fmt.Sprintf("tmpfs of %d bytes and %d files", c.WorkspaceBytes, c.WorkspaceFiles)
	default:
		quota = "none (" + why + "; only the per-file size limit applies)"
	}
	if err := os.Chmod(ws, 0o777); err != nil {
		return fail(err)
	}
	return ws, quota, nil
}

// workspaceFS picks the workspace file system, or "" with the reason
// there is none.
func (c Config) workspaceFS() (string, string) {
	want := c.WorkspaceFS
	switch want {
	case "":
		want = WorkspaceFSAuto
	case WorkspaceFSNone:
		return "", "quota off (WorkspaceFS none)"
	}
	if why := mountUnavailable(); why != "" {
		return "", why
	}
	if want == WorkspaceFSTmpfs {
		return WorkspaceFSTmpfs, ""
	}
	if why := ext4Unavailable(); why != "" {
		if want == WorkspaceFSExt4 {
			return "", why
		}
		return WorkspaceFSTmpfs, ""
	}
	return WorkspaceFSExt4, ""
}

var (
	ext4Once sync.Once
	ext4Err  error
)

// ext4Unavailable tests once whether this process can make and mount an
// ext4 image (mkfs.ext4 and mount -o loop) and returns why not.
func ext4Unavailable() string {
	ext4Once.Do(func() {
		d, err := os.MkdirTemp("", "smtrain-ext4-probe-")
		if err != nil {
			ext4Err = err
			return
		}
		defer os.Remove(d)
		if err := mountExt4(d, 4<<20, 64); err != nil {
			ext4Err = err
			os.Remove(d + wsImageSuffix)
			return
		}
		ext4Err = unix.Unmount(d, unix.MNT_DETACH)
		os.Remove(d + wsImageSuffix)
	})
	if ext4Err != nil {
		return "no ext4 workspace image: " + ext4Err.Error()
	}
	return ""
}

// mountExt4 makes a sparse ext4 image of size bytes with files inodes next
// to dir (dir + ".img") and loop-mounts it on dir (nosuid, nodev, discard:
// deleted files give their blocks back to the host's disk; the loop device
// is freed when the mount goes).
func mountExt4(dir string, size, files int64) error {
	img := dir + wsImageSuffix
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, argv := range [][]string{
		{"mkfs.ext4", "-q", "-F", "-m", "0", "-N", strconv.FormatInt(files, 10), "-O", "^has_journal",
			"-E", "lazy_itable_init=0,root_owner=0:0", img},
		{"mount", "-t", "ext4", "-o", "loop,nosuid,nodev,discard", img, dir},
	} {
		bin, err := lookPath(argv[0])
		if err != nil {
			return fmt.Errorf("%s not found (e2fsprogs, mount): %w", argv[0], err)
		}
		cmd := exec.CommandContext(ctx, bin, argv[1:]...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", argv[0], err, oneLine(string(out)))
		}
	}
	if err := os.Remove(filepath.Join(dir, "lost+found")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// NewOwnedDir creates an empty folder under root, named prefix plus a
// random suffix, with the same owner lock as a workspace (no quota mount):
// CleanStaleWorkspaces removes it once this process is gone. Remove it
// with RemoveWorkspace.
func NewOwnedDir(root, prefix string) (string, error) {
	d, err := os.MkdirTemp(root, prefix)
	if err != nil {
		return "", err
	}
	if err := lockDir(d); err != nil {
		_ = RemoveWorkspace(d)
		return "", err
	}
	return d, nil
}

// lockDir creates dir's lock file and holds an exclusive flock on it
// until RemoveWorkspace(dir) or the process's end.
func lockDir(dir string) error {
	lock, err := os.OpenFile(dir+wsLockSuffix, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return err
	}
	wsMu.Lock()
	wsLocks[dir] = lock
	wsMu.Unlock()
	return nil
}

// mountUnavailable tests once whether this process can mount a tmpfs and
// returns why not ("" when it can).
func mountUnavailable() string {
	mountOnce.Do(func() {
		d, err := os.MkdirTemp("", "smtrain-mount-probe-")
		if err != nil {
			mountErr = err
			return
		}
		defer os.Remove(d)
		if err := unix.Mount("smtrain-probe", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,nr_inodes=16"); err != nil {
			mountErr = fmt.Errorf("cannot mount a tmpfs: %w", err)
			return
		}
		mountErr = unix.Unmount(d, unix.MNT_DETACH)
	})
	if mountErr != nil {
		return "no workspace quota: " + mountErr.Error()
	}
	return ""
}

// RemoveWorkspace unmounts (when it is a quota mount) and deletes a
// workspace made by NewWorkspace (or a folder made by NewOwnedDir), and
// drops its lock.
func RemoveWorkspace(ws string) error {
	var errs []error
	if isMountPoint(ws) {
		if err := unix.Unmount(ws, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount: %w", err))
		}
	}
	// The workspace holds agent-made files: remove them through safefs
	// (never following a link, within its entry, depth and time bounds).
	if parent, err := safefs.OpenDir(filepath.Dir(ws)); err != nil {
		errs = append(errs, err)
	} else {
		if err := parent.RemoveAll(filepath.Base(ws), safefs.Limits{}); err != nil {
			errs = append(errs, err)
		}
		parent.Close()
	}
	if err := os.Remove(ws + wsImageSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	wsMu.Lock()
	lock := wsLocks[ws]
	delete(wsLocks, ws)
	wsMu.Unlock()
	if err := os.Remove(ws + wsLockSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if lock != nil {
		lock.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sandbox: removing workspace %s: %w", filepath.Base(ws), err)
	}
	return nil
}

// isMountPoint reports whether dir is the root of a mount (its device
// differs from its parent's).
func isMountPoint(dir string) bool {
	var a, b unix.Stat_t
	if unix.Lstat(dir, &a) != nil || unix.Lstat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// CleanStaleWorkspaces removes the workspaces (and NewOwnedDir folders)
// under root whose owning process is gone (their lock file is not held):
// a killed environment server leaves its quota mounts and files behind,
// and the next server on the same root removes them at start. Workspaces of live processes are
// left alone. It returns the names removed.
func CleanStaleWorkspaces(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: stale workspaces: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), wsLockSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		lockPath := filepath.Join(root, e.Name())
		f, err := os.OpenFile(lockPath, os.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // a live owner
			continue
		}
		ws := filepath.Join(root, name)
		wsMu.Lock()
		_, ours := wsLocks[ws]
		wsMu.Unlock()
		if ours {
			f.Close()
			continue
		}
		if err := RemoveWorkspace(ws); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, name)
		}
		f.Close()
	}
	return removed, errors.Join(errs...)
}
