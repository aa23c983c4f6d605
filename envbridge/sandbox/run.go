package sandbox

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"smtrain/envbridge/sandbox/safefs"
)

// launcherSrc is run with `python3 -I -S -c` as the first process inside
// the sandbox. It sets the resource limits (lowering, never raising, the
// inherited hard limits), drops to the given uid/gid when they are >= 0,
// and execs the interpreter on the agent script. Setup failures exit 125
// with a line starting with launcherTag.
const launcherSrc = `import os, resource, sys
TAG = "smtrain-sandbox-launcher:"
def fail(msg):
    sys.stderr.write(TAG + " " + msg + "\n"); sys.stderr.flush(); os._exit(125)
try:
    cpu, mem, fsize, nproc, uid, gid, ppid = (int(x) for x in sys.argv[1:8])
    script = sys.argv[8]
    def lim(res, soft, hard):
        cur_soft, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        resource.setrlimit(res, (soft, hard))
    lim(resource.RLIMIT_CORE, 0, 0)
    lim(resource.RLIMIT_CPU, cpu, cpu + 1)
    lim(resource.RLIMIT_AS, mem, mem)
    lim(resource.RLIMIT_FSIZE, fsize, fsize)
    lim(resource.RLIMIT_NPROC, nproc, nproc)
    if uid >= 0:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
            fail("uid drop did not take effect")
except Exception as e:
    fail("setup: %r" % (e,))
if ppid > 0:
    # Die with smtrain (the parent-death signal is cleared by the uid
    # change above, so set it again); exit if the parent is already gone.
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass
    if os.getppid() != ppid:
        os._exit(137)
try:
    os.execv(sys.executable, [sys.executable, script])
except Exception as e:
    fail("exec %s: %r" % (sys.executable, e))
`

const launcherTag = "smtrain-sandbox-launcher:"

// launcherExit is the launcher's exit code on setup failure.
const launcherExit = 125

// uidBlock is this process's private range of 1024 uids for runs as root,
// chosen at random among 3 million blocks above 10^9 (far above system and
// subordinate-uid ranges) so that two smtrain processes on one machine
// practically never share uids (a shared uid would share RLIMIT_NPROC and
// the post-run sweep).
var uidBlock = func() int {
	var b [4]byte
	_, _ = crand.Read(b[:])
	n := int(binary.LittleEndian.Uint32(b[:]) % 3_000_000)
	return 1_000_000_000 + n*1024
}()

var (
	slotMu    sync.Mutex
	slotsUsed = map[int]bool{}
	slotNext  int
	// slotOf remembers the slot of the last bwrap run on each work
	// directory (at most maxSlotMemory directories).
	slotOf = map[string]int{}
	// cutWalk holds the work directories whose last chown walk stopped at
	// its bound.
	cutWalk = map[string]bool{}
)

const maxSlotMemory = 4096

// acquireUID reserves a uid for one run on workDir; release it with
// releaseUID. Slots are handed out round-robin so that a uid is reused
// only after 1023 other runs: zombies of a killed run (reaped by the
// host's init in the fallback mode) still count against RLIMIT_NPROC of
// their uid. With bwrap (reuse set) the PID namespace leaves no zombie,
// and a work directory gets the uid of its previous run when that is free,
// so its files are already the sandbox uid's and the chown walk can be
// skipped (see prepare).
func acquireUID(workDir string, reuse bool) (int, error) {
	slotMu.Lock()
	defer slotMu.Unlock()
	if s, ok := slotOf[workDir]; ok && reuse && !slotsUsed[s] {
		slotsUsed[s] = true
		return uidBlock + s, nil
	}
	for i := 0; i < 1024; i++ {
		s := (slotNext + i) % 1024
		if !slotsUsed[s] {
			slotsUsed[s] = true
			slotNext = s + 1
			if reuse {
				if len(slotOf) >= maxSlotMemory {
					clear(slotOf)
				}
				slotOf[workDir] = s
			}
			return uidBlock + s, nil
		}
	}
	return 0, errors.New("sandbox: more than 1024 concurrent runs")
}

func releaseUID(uid int) {
	slotMu.Lock()
	defer slotMu.Unlock()
	delete(slotsUsed, uid-uidBlock)
}

// runner holds the state of one run.
type runner struct {
	cfg    Config
	job    Job
	python string
	bwrap  bool
	iso    string

	uid, gid int // -1: no uid drop
	tmp      string
	cg       *cgroup  // nil when cgroups are unavailable
	links    []string // symlinks created in the work dir (none mode)
	// files are handed to bwrap as fds 4, 5, ... (after the status fd)
	// and copied into the sandbox's root tmpfs with --file, so that no
	// host path of them shows in the sandbox's mountinfo.
	files []*os.File
	// walkErr is a walk bound reached before the run (Result.WorkspaceError).
	walkErr string
}

func (r *runner) run(ctx context.Context) (res Result, err error) {
	res.Isolation = r.iso
	r.uid, r.gid = -1, -1
	root := os.Geteuid() == 0
	if root {
		uid, err := acquireUID(r.job.WorkDir, r.bwrap)
		if err != nil {
			return res, err
		}
		defer releaseUID(uid)
		r.uid, r.gid = uid, uid
		if err := checkReadable(r.job.ReadOnly); err != nil {
			return res, err
		}
	}
	r.tmp, err = os.MkdirTemp("", "smtrain-sandbox-")
	if err != nil {
		return res, fmt.Errorf("sandbox: temp dir: %w", err)
	}
	defer os.RemoveAll(r.tmp)
	if err := r.prepare(); err != nil {
		return res, err
	}
	defer r.cleanupLinks()

	r.cg = newCgroup(filepath.Base(r.tmp), r.cfg.MemoryBytes, r.cfg.MaxProcs+4)
	defer r.cg.destroy()

	cmd, err := r.command()
	if err != nil {
		return res, err
	}
	defer r.closeFiles()
	half := max(r.cfg.MaxOutputBytes/2, 1)
	stdout, stderr := newCapture(half), newCapture(half)
	// Own pipes (not exec's copying goroutines) so that Wait returns when
	// the process exits even if escaped grandchildren hold the pipes; the
	// leftovers are killed before the readers are drained.
	outR, outW, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("sandbox: pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return res, fmt.Errorf("sandbox: pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// bwrap reports {"exit-code": N} on fd 3 only when the sandbox was set
	// up and the code ran; its absence tells a bwrap failure from agent code
	// that exits 1.
	var statusR, statusW *os.File
	status := newCapture(4096)
	if r.bwrap {
		statusR, statusW, err = os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			errR.Close()
			errW.Close()
			return res, fmt.Errorf("sandbox: pipe: %w", err)
		}
		cmd.ExtraFiles = append([]*os.File{statusW}, r.files...)
	}

	start := time.Now()
	// Start and Wait on one goroutine locked to its OS thread: Pdeathsig
	// fires when the thread that forked exits, and a locked thread that is
	// unlocked again only after Wait cannot exit early.
	done := make(chan error, 1)
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	err = <-started
	outW.Close()
	errW.Close()
	if statusW != nil {
		statusW.Close()
	}
	if err != nil {
		outR.Close()
		errR.Close()
		if statusR != nil {
			statusR.Close()
		}
		return res, fmt.Errorf("sandbox: start: %w", err)
	}
	var readers sync.WaitGroup
	if statusR != nil {
		readers.Add(1)
		go func() {
			defer readers.Done()
			_, _ = io.Copy(status, statusR)
		}()
	}
	for _, p := range []struct {
		r *os.File
		c *capture
	}{{outR, stdout}, {errR, stderr}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			_, _ = io.Copy(p.c, p.r)
		}()
	}
	drain := func() {
		ch := make(chan struct{})
		go func() { readers.Wait(); close(ch) }()
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
			// Something outside our reach still holds the pipes.
			outR.Close()
			errR.Close()
			if statusR != nil {
				statusR.Close()
			}
			<-ch
		}
		outR.Close()
		errR.Close()
		if statusR != nil {
			statusR.Close()
		}
	}
	timer := time.NewTimer(r.cfg.Timeout)
	defer timer.Stop()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-timer.C:
		res.TimedOut = true
		r.kill(cmd.Process.Pid)
		waitErr = <-done
	case <-ctx.Done():
		r.kill(cmd.Process.Pid)
		<-done
		r.kill(cmd.Process.Pid)
		drain()
		return res, fmt.Errorf("sandbox: run cancelled: %w", ctx.Err())
	}
	res.Duration = time.Since(start)
	// Leftover processes (none mode: daemons that left the process group).
	r.kill(cmd.Process.Pid)
	drain()

	r.cleanupLinks()
	removed, werr := removeEscapingLinks(r.job.WorkDir, r.walkLimits())
	res.RemovedLinks = removed
	res.WorkspaceError = r.walkErr
	if werr != nil {
		res.WorkspaceError = werr.Error()
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	res.Truncated = stdout.truncated() || stderr.truncated()
	var sig syscall.Signal
	if ps := cmd.ProcessState; ps != nil {
		ws, _ := ps.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			sig = ws.Signal()
			res.ExitCode = 128 + int(sig)
		default:
			res.ExitCode = ps.ExitCode()
			if r.bwrap && res.ExitCode > 128 && res.ExitCode < 128+65 {
				// bwrap reports a child killed by signal N as 128+N.
				sig = syscall.Signal(res.ExitCode - 128)
			}
		}
	} else if waitErr != nil {
		return res, fmt.Errorf("sandbox: wait: %w", waitErr)
	}
	if res.TimedOut {
		sig = syscall.SIGKILL
	}
	if sig != 0 {
		res.Signal = sig.String()
	}
	if r.bwrap && !res.TimedOut && !strings.Contains(status.String(), `"exit-code"`) &&
		(r.cg == nil || !r.cg.oomKilled()) {
		return res, fmt.Errorf("sandbox: bwrap could not run the code (exit %d): %s", res.ExitCode, oneLine(res.Stderr))
	}
	if res.ExitCode == launcherExit && strings.HasPrefix(strings.TrimSpace(res.Stderr), launcherTag) {
		return res, fmt.Errorf("sandbox: %s", oneLine(res.Stderr))
	}
	if !r.bwrap && res.ExitCode == 127 && res.Stdout == "" && res.Stderr == "" {
		return res, fmt.Errorf("sandbox: could not execute %s", r.python)
	}
	res.Limit = r.classify(res, sig, cmd.ProcessState)
	return res, nil
}

// classify names the limit that ended the run, if it can be told.
func (r *runner) classify(res Result, sig syscall.Signal, ps *os.ProcessState) string {
	if res.TimedOut {
		return "timeout"
	}
	cpu := time.Duration(0)
	if ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	errTail := res.Stderr
	if len(errTail) > 4096 {
		errTail = errTail[len(errTail)-4096:]
	}
	switch {
	case sig == syscall.SIGXCPU,
		sig == syscall.SIGKILL && cpu >= time.Duration(r.cfg.CPUSeconds)*time.Second-200*time.Millisecond:
		return "cpu"
	case sig == syscall.SIGXFSZ, strings.Contains(errTail, "File too large"):
		return "file-size"
	case r.cg != nil && r.cg.oomKilled(),
		strings.Contains(errTail, "MemoryError"), strings.Contains(errTail, "Cannot allocate memory"),
		strings.Contains(errTail, "std::bad_alloc"):
		return "memory"
	case r.cg != nil && r.cg.pidsLimitHit(),
		strings.Contains(errTail, "Resource temporarily unavailable") && (strings.Contains(errTail, "fork") ||
			strings.Contains(errTail, "BlockingIOError") || strings.Contains(errTail, "thread")):
		return "processes"
	case res.Truncated:
		return "output"
	}
	return ""
}

// prepare writes the script and identity files and, for a uid drop, hands
// the work directory to the sandbox uid.
func (r *runner) prepare() error {
	if err := os.Chmod(r.tmp, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.tmp, "code.py"), []byte(r.job.Code), 0o644); err != nil {
		return fmt.Errorf("sandbox: write code: %w", err)
	}
	uid, gid := r.uid, r.gid
	if uid < 0 {
		uid, gid = os.Getuid(), os.Getgid()
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:%d:%d:sandbox:/workspace:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", uid, gid)
	group := fmt.Sprintf("root:x:0:\nsandbox:x:%d:\nnogroup:x:65534:\n", gid)
	if err := os.WriteFile(filepath.Join(r.tmp, "passwd"), []byte(passwd), 0o644); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.tmp, "group"), []byte(group), 0o644); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if !r.bwrap {
		if err := os.Mkdir(filepath.Join(r.tmp, "tmp"), 0o700); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		if r.uid >= 0 {
			if err := os.Chown(filepath.Join(r.tmp, "tmp"), r.uid, r.gid); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
		}
		for _, b := range r.job.ReadOnly {
			rel, err := filepath.Rel("/workspace", b.Dst)
			if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
				continue // only binds under /workspace can be emulated
			}
			link := filepath.Join(r.job.WorkDir, rel)
			if _, err := os.Lstat(link); err == nil {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
			if err := os.Symlink(b.Src, link); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
			r.links = append(r.links, link)
		}
	}
	if r.bwrap {
		// Mount points inside the work directory are created on the host;
		// create them (and their parents) here with usable modes.
		for _, b := range r.job.ReadOnly {
			rel, err := filepath.Rel("/workspace", b.Dst)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			mp := filepath.Join(r.job.WorkDir, rel)
			if err := os.MkdirAll(filepath.Dir(mp), 0o755); err != nil {
				return fmt.Errorf("sandbox: mount point for %s: %w", b.Dst, err)
			}
			if _, err := os.Lstat(mp); err == nil {
				continue
			}
			st, err := os.Stat(b.Src)
			if err != nil {
				return fmt.Errorf("sandbox: bind source: %w", err)
			}
			if st.IsDir() {
				err = os.Mkdir(mp, 0o755)
			} else {
				err = os.WriteFile(mp, nil, 0o644)
			}
			if err != nil {
				return fmt.Errorf("sandbox: mount point for %s: %w", b.Dst, err)
			}
		}
	}
	if r.uid >= 0 && !r.ownedAlready() {
		chownWalks.Add(1)
		err := chownTree(r.job.WorkDir, r.uid, r.gid, r.walkLimits())
		slotMu.Lock()
		if errors.Is(err, safefs.ErrLimit) {
			cutWalk[r.job.WorkDir] = true
		} else {
			delete(cutWalk, r.job.WorkDir)
		}
		slotMu.Unlock()
		switch {
		case errors.Is(err, safefs.ErrLimit):
			// Agent code made more entries than a walk visits: the rest
			// keeps its old owner (the code's own problem), the run goes on.
			r.walkErr = err.Error()
		case err != nil:
			return fmt.Errorf("sandbox: chown work dir to sandbox uid %d: %w", r.uid, err)
		}
	}
	return nil
}

// chownWalks counts the chown walks (for tests).
var chownWalks atomic.Int64

// ownedAlready reports a bwrap run whose work directory already belongs to
// the run's uid: the previous run on it had the same uid (acquireUID), so
// everything agent code made is the uid's, and what the host made since
// (output/, mode 0777) is usable as it is. A walk that stopped at its
// bound last time is redone.
func (r *runner) ownedAlready() bool {
	if !r.bwrap {
		return false
	}
	var st unix.Stat_t
	if err := unix.Lstat(r.job.WorkDir, &st); err != nil {
		return false
	}
	slotMu.Lock()
	cut := cutWalk[r.job.WorkDir]
	slotMu.Unlock()
	return int(st.Uid) == r.uid && int(st.Gid) == r.gid && !cut
}

// chownTree hands dir and everything in it to uid:gid through safefs (no
// link is followed, the walk is bounded). A regular file with more than
// one hard link keeps its owner: it may be shared with a folder outside
// (the fallback's hard-linked public data), whose owner must not change.
func chownTree(dir string, uid, gid int, lim safefs.Limits) error {
	if err := os.Lchown(dir, uid, gid); err != nil {
		return err
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Walk("", lim, func(e safefs.Entry) error {
		if e.Mode.IsRegular() && e.Stat.Nlink > 1 {
			return nil
		}
		if err := unix.Fchownat(e.Dir, e.Name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: %w", e.Rel, err)
		}
		return nil
	})
}

// walkLimits bounds the host-side walks of the work directory.
func (r *runner) walkLimits() safefs.Limits {
	return safefs.Limits{MaxEntries: r.cfg.MaxWalkEntries}
}

func (r *runner) cleanupLinks() {
	for _, l := range r.links {
		_ = os.Remove(l)
	}
	r.links = nil
}

// removeEscapingLinks deletes the symbolic links under dir whose target
// is absolute, empty or has a ".." component anywhere, and returns their
// paths relative to dir. A link that survives names only descendants of
// its own folder, and so do the links it may lead through: no chain of
// them can leave dir. (Checking the joined target as text is not enough:
// "c/c/p/../../x" is inside as text but climbs out on the host when p is
// itself a link to "../.."). The host never follows links in dir anyway
// (safefs); this keeps the workspace clean for whatever reads it later.
// The walk is bounded (safefs.Limits); links past the bound stay, and the
// error is returned.
func removeEscapingLinks(dir string, lim safefs.Limits) ([]string, error) {
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var removed []string
	buf := make([]byte, 4096)
	err = d.Walk("", lim, func(e safefs.Entry) error {
		if e.Mode&fs.ModeSymlink == 0 {
			return nil
		}
		n, err := unix.Readlinkat(e.Dir, e.Name, buf)
		if err != nil {
			return nil
		}
		if escapingTarget(string(buf[:n])) && unix.Unlinkat(e.Dir, e.Name, 0) == nil {
			removed = append(removed, e.Rel)
		}
		return nil
	})
	sort.Strings(removed)
	return removed, err
}

// escapingTarget reports a link target that may lead out of its folder.
func escapingTarget(target string) bool {
	if target == "" || strings.HasPrefix(target, "/") {
		return true
	}
	for _, p := range strings.Split(target, "/") {
		if p == ".." {
			return true
		}
	}
	return false
}

// command builds the process to start.
func (r *runner) command() (*exec.Cmd, error) {
	nproc := r.cfg.MaxProcs
	if r.uid < 0 {
		// RLIMIT_NPROC counts every process of the calling uid: leave room
		// for the ones that already exist.
		nproc += countProcs(os.Getuid())
	}
	limits := []string{
		strconv.Itoa(r.cfg.CPUSeconds),
		strconv.FormatInt(r.cfg.MemoryBytes, 10),
		strconv.FormatInt(r.cfg.FileSizeBytes, 10),
		strconv.Itoa(nproc),
		strconv.Itoa(r.uid),
		strconv.Itoa(r.gid),
		"-1", // parent pid to watch: set below for the fallback
	}
	if !r.bwrap {
		limits[len(limits)-1] = strconv.Itoa(os.Getpid())
		env := baseEnv(r.job.WorkDir, filepath.Join(r.tmp, "tmp"), r.job.Env)
		args := append([]string{"-I", "-S", "-c", launcherSrc}, limits...)
		args = append(args, filepath.Join(r.tmp, "code.py"))
		cmd := r.inCgroup(r.python, args, envList(env))
		cmd.Dir = r.job.WorkDir
		return cmd, nil
	}
	bw, err := lookPath("bwrap")
	if err != nil {
		return nil, fmt.Errorf("sandbox: bwrap: %w", err)
	}
	args := bwrapSystemArgs(r.cfg.AllowNetwork, r.python, r.cfg.MemoryBytes)
	args = append(args, "--perms", "0755", "--dir", "/sandbox")
	for _, f := range []struct{ src, dst string }{
		{"passwd", "/etc/passwd"}, {"group", "/etc/group"}, {"code.py", "/sandbox/code.py"},
	} {
		fh, err := os.Open(filepath.Join(r.tmp, f.src))
		if err != nil {
			r.closeFiles()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		r.files = append(r.files, fh)
		args = append(args, "--perms", "0644", "--file", strconv.Itoa(3+len(r.files)), f.dst)
	}
	args = append(args, "--bind", r.job.WorkDir, "/workspace")
	made := map[string]bool{"/": true, "/workspace": true, "/etc": true, "/var": true, "/tmp": true}
	for _, b := range r.job.ReadOnly {
		if !strings.HasPrefix(b.Dst, "/workspace/") {
			// Parents outside the workspace live in the sandbox's root
			// tmpfs; make them traversable (bwrap's default is 0700).
			args = append(args, parentDirArgs(b.Dst, made)...)
		}
		args = append(args, "--ro-bind", b.Src, b.Dst)
	}
	args = append(args,
		// The sandbox's root tmpfs read-only: only /workspace and /tmp are
		// writable (as root, or as a user in a user namespace).
		"--remount-ro", "/",
		"--chdir", "/workspace",
	)
	args = append(args, bwrapNamespaceArgs(r.cfg.AllowNetwork, r.uid >= 0)...)
	args = append(args, "--json-status-fd", "3")
	args = append(args, envArgs(baseEnv("/workspace", "/tmp", r.job.Env))...)
	args = append(args, "--", r.python, "-I", "-S", "-c", launcherSrc)
	args = append(args, limits...)
	args = append(args, "/sandbox/code.py")
	cmd := r.inCgroup(bw, args, []string{"PATH=/usr/bin:/bin"})
	cmd.Dir = "/"
	return cmd, nil
}

// closeFiles closes the files handed to bwrap.
func (r *runner) closeFiles() {
	for _, f := range r.files {
		f.Close()
	}
	r.files = nil
}

// inCgroup returns the command for path+args with environment env, started
// inside the run's cgroup when there is one.
func (r *runner) inCgroup(path string, args, env []string) *exec.Cmd {
	if r.cg == nil {
		cmd := exec.Command(path, args...)
		cmd.Env = env
		return cmd
	}
	argv := r.cg.wrap(append([]string{path}, args...))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append([]string(nil), env...), r.cg.env()...)
	return cmd
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// kill ends the process group of pid and, after a uid drop, every process
// still running as the sandbox uid.
func (r *runner) kill(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if r.cg != nil {
		r.cg.killAll()
	}
	r.sweep()
}

// sweep kills every process owned by the run's private uid (a no-op
// without uid drop). It repeats until none is left or a deadline passes,
// so a fork bomb that races the kills is still cleaned up.
func (r *runner) sweep() {
	if r.uid < 0 {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pids := procsOf(r.uid)
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procsOf lists the pids whose real uid is uid (from /proc).
func procsOf(uid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := strconv.Itoa(uid)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		zombie := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "State:") {
				// Zombies hold no resources and cannot be killed; whoever
				// inherited them reaps them.
				zombie = strings.Contains(line, "Z (zombie)") || strings.Contains(line, "X (dead)")
			}
			if strings.HasPrefix(line, "Uid:") {
				f := strings.Fields(line)
				if !zombie && len(f) > 1 && f[1] == want {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

// countProcs counts the processes of uid.
func countProcs(uid int) int { return len(procsOf(uid)) }

// checkReadable verifies that the read-only bind sources can be read by an
// unprivileged uid (other-readable files, other-searchable directories),
// since the code runs as one. It returns an error naming the first path
// that cannot.
func checkReadable(binds []Bind) error {
	const maxEntries = 200_000
	n := 0
	for _, b := range binds {
		err := filepath.WalkDir(b.Src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			n++
			if n > maxEntries {
				return fs.SkipAll
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			m := info.Mode().Perm()
			if m&0o004 == 0 || (d.IsDir() && m&0o001 == 0) {
				return fmt.Errorf("sandbox: %s (mode %v) is not readable by the unprivileged sandbox uid; make it world-readable (chmod o+r, o+x for directories)", p, info.Mode())
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
