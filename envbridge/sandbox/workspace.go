package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
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

// NewWorkspace creates an empty workspace folder (mode 0777, for the
// sandbox uid) under root, named prefix plus a random suffix. Where this
// process may mount file systems (root with CAP_SYS_ADMIN), the folder is
// a tmpfs of c.WorkspaceBytes bytes and c.WorkspaceFiles inodes (nosuid,
// nodev), so agent code that fills it gets ENOSPC ("No space left on
// device") instead of filling the host's disk or inode table; quota tells
// which applies. Remove it with RemoveWorkspace.
func (c Config) NewWorkspace(root, prefix string) (path, quota string, err error) {
	c = c.withDefaults()
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
	quota = "none (" + mountUnavailable() + "; only the per-file size limit applies)"
	if mountErr == nil {
		opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=0777", c.WorkspaceBytes, c.WorkspaceFiles)
		if err := unix.Mount("smtrain-workspace", ws, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fail(fmt.Errorf("tmpfs quota mount: %w", err))
		}
		quota = fmt.Sprintf("tmpfs of %d bytes and %d files", c.WorkspaceBytes, c.WorkspaceFiles)
	}
	if err := os.Chmod(ws, 0o777); err != nil {
		return fail(err)
	}
	return ws, quota, nil
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
	if err := os.RemoveAll(ws); err != nil {
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
