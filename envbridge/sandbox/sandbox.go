// Package sandbox runs untrusted Python agent code with limits.
//
// The preferred isolation is bubblewrap (bwrap): the code sees a minimal
// root file system made of read-only binds of /usr, /lib, /lib64, /bin and a
// few /etc entries the interpreter needs, the job's work directory bound
// writable at /workspace (its current directory), the job's read-only
// binds, a fresh /tmp, a private /proc and a minimal /dev, and new IPC, PID,
// network, UTS and cgroup namespaces (no network unless AllowNetwork).
// Nothing else of the host exists inside, so private answers cannot be read
// by any path, absolute or relative.
//
// Limits, applied in every mode:
//   - wall clock: the process group is killed with SIGKILL on timeout; with
//     bwrap, killing bwrap (or the parent dying, --die-with-parent) tears
//     down the PID namespace and with it every process the code started;
//   - RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NPROC and RLIMIT_CORE=0,
//     set by a tiny Python launcher (standard library resource module) that
//     then execs the interpreter on the agent code;
//   - processes: the kernel ignores RLIMIT_NPROC for root, so when smtrain
//     runs as root the launcher also drops to an unprivileged uid/gid
//     (one per concurrent run, from a random private block of 1024 uids
//     above 10^9; with bwrap a work directory keeps the uid of its
//     previous run when it is free, which spares the chown walk) before
//     exec. The kernel
//     then enforces RLIMIT_NPROC on that uid, which contains fork bombs
//     (verified by TestForkBomb). The work directory is chowned to that uid.
//     As a non-root user, bwrap runs in a user namespace and RLIMIT_NPROC
//     applies to the calling uid;
//   - whole sandbox: when this process may create cgroups (cgroup v1
//     memory+pids controllers, or v2 with both delegated), each run gets
//     its own cgroup with memory = MemoryBytes for all its processes
//     together (including the private /tmp, charged as shared memory) and
//     pids = MaxProcs+4; the kernel's OOM killer then reports "memory".
//     Without cgroups, RLIMIT_AS bounds each process only. The private /tmp
//     tmpfs is limited to MemoryBytes in any case;
//   - output: stdout and stderr are captured through a bounded buffer that
//     keeps the head and the tail of each stream and discards the middle,
//     so a flood of output cannot exhaust host memory.
//
// Fork bombs, as measured on the project machines (root in a container,
// Linux 6.18, cgroup v1): RLIMIT_NPROC alone does nothing for uid 0, and a
// user namespace mapped to root does not help either (the kernel checks the
// global uid). Running the code as a private unprivileged uid makes the
// kernel refuse forks beyond MaxProcs: TestForkBomb sees the bomb peak at
// exactly MaxProcs processes, fail further forks with EAGAIN, and be
// killed at the timeout with nothing left behind, in both modes.
//
// Host side of the workspace (issue 16). Everything agent code leaves in
// the work directory is hostile, and the host (smtrain itself, running as
// root) resolves paths in its own mount namespace, where a link that is
// harmless inside the sandbox may point at the private answers. So:
//   - the host never opens, stats, renames, deletes or walks a path in a
//     work directory through the plain os functions: package safefs
//     resolves every component from an open directory without following
//     any link (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
//     RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV, or an O_NOFOLLOW walk), checks
//     the type before opening (a FIFO is never opened, so nothing blocks),
//     reads from the checked descriptor with a size cap and bounds every
//     walk by entries, depth and time. The chown to the sandbox uid and the
//     link sweep below use it;
//   - after each run the links whose target is absolute or has a ".."
//     component are removed (Result.RemovedLinks). The links left name
//     descendants of their own folder only, so no chain of them can leave
//     the work directory; a textual check of the joined target is not
//     enough (c/p -> ../.. makes "c/p/../../x" climb on the host);
//   - the chown skips regular files with more than one hard link: they may
//     be shared with a folder outside (the fallback's linked public data).
//     Agent code cannot make hard links to files outside: link(2) across
//     mount points is EXDEV, and in bwrap every path it can name outside
//     the workspace is on another mount;
//   - quotas: NewWorkspace makes the work directory its own file system of
//     Config.WorkspaceBytes bytes and Config.WorkspaceFiles inodes (nosuid,
//     nodev) when the process may mount (root with CAP_SYS_ADMIN): a
//     sparse ext4 image next to it, loop-mounted with discard (mkfs.ext4
//     and mount(8); tens of milliseconds), else a tmpfs. A disk or inode
//     flood ends in ENOSPC inside the sandbox, and every host-side walk has
//     at most WorkspaceFiles entries to visit. The ext4 image is on disk and
//     its page cache is reclaimable, so a run can write more than its memory
//     limit (600 MiB under 256 MiB, TestWorkspaceFS); tmpfs pages are
//     charged to the writing run's cgroup and cannot be reclaimed (512 MiB
//     under 256 MiB was killed as "memory"), which is why ext4 is
//     preferred. Without mount permission (or with WorkspaceFS none, which
//     the local env uses without bwrap) only RLIMIT_FSIZE bounds what is
//     written;
//   - each workspace has a lock file held (flock) by its owner;
//     CleanStaleWorkspaces removes those of dead owners, and an environment
//     server calls it at start;
//   - host paths: /proc/self/mountinfo inside bwrap lists each mount's
//     source path within its file system. With a quota mount the workspace
//     shows "/" of its own file system (a /dev/loopN whose backing file is
//     named only in /sys, which is not mounted), and the run's code.py,
//     /etc/passwd and /etc/group are copied into the sandbox's root tmpfs
//     (bwrap --file) instead of bound from the host's temp folder. The
//     read-only binds (system folders, the task's public data) still show
//     their host paths, which bubblewrap cannot hide for a bind. Knowing
//     them gives no access: nothing else of the host is mounted and the
//     host never follows an agent's link.
//
// When bwrap is unusable the fallback (Isolation "none") still applies the
// timeouts, rlimits, process-group kill and uid drop, but provides no file
// system or network isolation; it prints a loud warning once per process.
// In that mode the binds whose destination is under /workspace are exposed
// as symbolic links inside the work directory (relative paths such as
// data/train.csv work; absolute /workspace paths do not exist).
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Config holds the limits of a sandboxed run. The zero value means defaults.
type Config struct {
	// Python is the interpreter. Empty means /usr/bin/python3 if present,
	// else python3 resolved via PATH at run time.
	Python string
	// Timeout is the wall-clock limit per run (default 60s).
	Timeout time.Duration
	// CPUSeconds is RLIMIT_CPU (default: the timeout in whole seconds).
	CPUSeconds int
	// MemoryBytes is RLIMIT_AS (default 2 GiB).
	MemoryBytes int64
	// FileSizeBytes is RLIMIT_FSIZE (default 256 MiB).
	FileSizeBytes int64
	// MaxProcs is the process-count limit (RLIMIT_NPROC, default 64).
	MaxProcs int
	// MaxOutputBytes bounds the stdout+stderr kept (default 64 KiB); each
	// stream keeps its head and tail within half of it, the rest is
	// discarded and Result.Truncated is set.
	MaxOutputBytes int
	// AllowNetwork keeps the host network namespace (default false).
	AllowNetwork bool
	// Isolation is "auto" (default: bwrap if usable, else the fallback with
	// a loud warning), "bwrap" (fail if unusable) or "none".
	Isolation string
	// WorkspaceBytes and WorkspaceFiles are the quota of a workspace made
	// by NewWorkspace (defaults 1 GiB and 50,000 files): the size of its
	// ext4 image or tmpfs, when this process may mount one.
	WorkspaceBytes int64
	WorkspaceFiles int64
	// WorkspaceFS is the workspace's file system: WorkspaceFSAuto (""),
	// WorkspaceFSExt4, WorkspaceFSTmpfs or WorkspaceFSNone.
	WorkspaceFS string
	// MaxWalkEntries bounds each host-side walk of the work directory
	// (default safefs.DefaultMaxEntries); past it Result.WorkspaceError
	// says so and the run goes on.
	MaxWalkEntries int
}

// Bind is a read-only bind of a host path into the sandbox.
type Bind struct {
	Src string // host path (file or directory)
	Dst string // absolute path inside the sandbox, e.g. /workspace/data
}

// Job is one piece of code to run.
type Job struct {
	// Code is Python source, written to a file and run with the interpreter.
	Code string
	// WorkDir is the host directory bound writable at /workspace, the
	// code's current directory. It must exist.
	WorkDir string
	// ReadOnly lists extra read-only binds (destination under /workspace or
	// another absolute path).
	ReadOnly []Bind
	// Env holds extra environment variables. The environment is otherwise
	// scrubbed: PATH, HOME=/workspace, LANG=C.UTF-8, PYTHONDONTWRITEBYTECODE=1,
	// PYTHONUNBUFFERED=1, TMPDIR=/tmp, MPLBACKEND=Agg and one thread for
	// OpenMP/OpenBLAS/MKL.
	Env map[string]string
}

// Result describes a finished run. Agent failures (non-zero exit, limits)
// are reported here, never as an error.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
	TimedOut       bool
	// Signal names the signal that ended the code, e.g. "killed" when a
	// limit killed it; empty for a normal exit.
	Signal    string
	Truncated bool
	Duration  time.Duration
	// Isolation is "bwrap" or "none (WEAK: ...)".
	Isolation string
	// Limit names the limit that was hit, if known: "timeout", "memory",
	// "cpu", "file-size", "processes", "output".
	Limit string
	// RemovedLinks lists symbolic links the code left in the work
	// directory that pointed outside it (absolute, or escaping with ..),
	// relative to WorkDir. They are removed after the run because the host
	// would resolve them against its own file system (e.g. a
	// submission.csv linked to a guessed path of the private answers).
	RemovedLinks []string
	// WorkspaceError, when set, says why a host-side walk of the work
	// directory (the chown before the run, the link sweep after it) stopped
	// early at a bound such as too many entries; the message names paths
	// relative to WorkDir only.
	WorkspaceError string
}

// Isolation modes.
const (
	IsolationAuto  = "auto"
	IsolationBwrap = "bwrap"
	IsolationNone  = "none"
)

const weakPrefix = "none (WEAK: "

// Defaults.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultMemoryBytes    = 2 << 30
	DefaultFileSizeBytes  = 256 << 20
	DefaultMaxProcs       = 64
	DefaultMaxOutputBytes = 64 << 10
)

// withDefaults returns c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CPUSeconds <= 0 {
		c.CPUSeconds = int((c.Timeout + time.Second - 1) / time.Second)
	}
	if c.MemoryBytes <= 0 {
		c.MemoryBytes = DefaultMemoryBytes
	}
	if c.FileSizeBytes <= 0 {
		c.FileSizeBytes = DefaultFileSizeBytes
	}
	if c.MaxProcs <= 0 {
		c.MaxProcs = DefaultMaxProcs
	}
	if c.MaxOutputBytes <= 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.Isolation == "" {
		c.Isolation = IsolationAuto
	}
	if c.WorkspaceBytes <= 0 {
		c.WorkspaceBytes = DefaultWorkspaceBytes
	}
	if c.WorkspaceFiles <= 0 {
		c.WorkspaceFiles = DefaultWorkspaceFiles
	}
	return c
}

// resolvePython finds the interpreter: an explicit path or name, else
// /usr/bin/python3, else python3 on PATH. Symbolic links are resolved so
// that the real file can be bound into the sandbox.
func resolvePython(p string) (string, error) {
	if p == "" {
		if _, err := os.Stat("/usr/bin/python3"); err == nil {
			p = "/usr/bin/python3"
		} else {
			p = "python3"
		}
	}
	if !strings.Contains(p, "/") {
		lp, err := lookPath(p)
		if err != nil {
			return "", fmt.Errorf("sandbox: python interpreter %q not found on PATH: %w", p, err)
		}
		p = lp
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("sandbox: python interpreter %q: %w", p, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("sandbox: python interpreter: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("sandbox: python interpreter %s is not an executable file", abs)
	}
	return abs, nil
}

var (
	probeOnce sync.Once
	probeIso  string
	probeErr  error

	warnOnce sync.Once
)

// Probe reports the isolation available on this machine: "bwrap" when
// bubblewrap can build the sandbox, else "none (WEAK: ...)" together with
// an error explaining why bwrap is unusable. The result is computed once
// per process.
func Probe() (isolation string, err error) {
	probeOnce.Do(func() {
		if err := probeBwrap(); err != nil {
			probeIso = weakPrefix + "no filesystem or network isolation; bwrap unusable: " + oneLine(err.Error()) + ")"
			probeErr = err
			return
		}
		probeIso = IsolationBwrap
	})
	return probeIso, probeErr
}

// warnWeak prints the fallback warning once per process.
func warnWeak(iso string) {
	warnOnce.Do(func() {
		fmt.Fprintf(os.Stderr, "\n"+
			"************************************************************************\n"+
			"WARNING: smtrain sandbox running agent code WITHOUT isolation:\n"+
			"  %s\n"+
			"  Agent code can read any world-readable host file (including private\n"+
			"  answers) and use the network. Only timeouts, rlimits, process-group\n"+
			"  kill and (as root) a uid drop apply. Install bubblewrap (apt-get\n"+
			"  install bubblewrap) for real isolation.\n"+
			"************************************************************************\n\n", iso)
	})
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Run executes job.Code with the interpreter under the configured limits.
// The error is non-nil only for infrastructure failures (bad job, missing
// interpreter, bwrap unusable when required); misbehaving agent code is
// reported in the Result.
func (c Config) Run(ctx context.Context, job Job) (Result, error) {
	c = c.withDefaults()
	if err := validateJob(&job); err != nil {
		return Result{}, err
	}
	py, err := resolvePython(c.Python)
	if err != nil {
		return Result{}, err
	}
	var iso string
	switch c.Isolation {
	case IsolationAuto:
		iso, _ = Probe()
	case IsolationBwrap:
		var perr error
		iso, perr = Probe()
		if perr != nil {
			return Result{}, fmt.Errorf("sandbox: isolation bwrap requested but unusable: %w", perr)
		}
	case IsolationNone:
		iso = weakPrefix + "isolation \"none\" requested; no filesystem or network isolation)"
	default:
		return Result{}, fmt.Errorf("sandbox: unknown isolation %q (want auto, bwrap or none)", c.Isolation)
	}
	if iso != IsolationBwrap {
		warnWeak(iso)
	}
	r := &runner{cfg: c, job: job, python: py, bwrap: iso == IsolationBwrap, iso: iso}
	return r.run(ctx)
}

// validateJob checks and normalises the job's paths.
func validateJob(job *Job) error {
	if job.WorkDir == "" {
		return errors.New("sandbox: job has no WorkDir")
	}
	wd, err := filepath.Abs(job.WorkDir)
	if err != nil {
		return fmt.Errorf("sandbox: WorkDir %q: %w", job.WorkDir, err)
	}
	st, err := os.Stat(wd)
	if err != nil {
		return fmt.Errorf("sandbox: WorkDir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("sandbox: WorkDir %s is not a directory", wd)
	}
	job.WorkDir = wd
	binds := make([]Bind, 0, len(job.ReadOnly))
	for i, b := range job.ReadOnly {
		src, err := filepath.Abs(b.Src)
		if err != nil {
			return fmt.Errorf("sandbox: bind %d source %q: %w", i, b.Src, err)
		}
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("sandbox: bind %d source: %w", i, err)
		}
		if !filepath.IsAbs(b.Dst) {
			return fmt.Errorf("sandbox: bind %d destination %q is not absolute", i, b.Dst)
		}
		for _, part := range strings.Split(b.Dst, "/") {
			if part == ".." {
				return fmt.Errorf("sandbox: bind %d destination %q contains ..", i, b.Dst)
			}
		}
		dst := filepath.Clean(b.Dst)
		switch {
		case dst == "/" || dst == "/workspace" || dst == "/sandbox" || strings.HasPrefix(dst, "/sandbox/") ||
			dst == "/proc" || strings.HasPrefix(dst, "/proc/") || dst == "/dev" || strings.HasPrefix(dst, "/dev/"):
			return fmt.Errorf("sandbox: bind %d destination %q is reserved", i, b.Dst)
		}
		binds = append(binds, Bind{Src: src, Dst: dst})
	}
	job.ReadOnly = binds
	for k := range job.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("sandbox: bad environment variable name %q", k)
		}
	}
	return nil
}

// baseEnv is the scrubbed environment; home and tmp differ by mode.
func baseEnv(home, tmp string, extra map[string]string) map[string]string {
	env := map[string]string{
		"PATH":                    "/usr/local/bin:/usr/bin:/bin",
		"HOME":                    home,
		"LANG":                    "C.UTF-8",
		"LC_ALL":                  "C.UTF-8",
		"PYTHONDONTWRITEBYTECODE": "1",
		"PYTHONUNBUFFERED":        "1",
		"PYTHONIOENCODING":        "utf-8",
		"TMPDIR":                  tmp,
		"USER":                    "sandbox",
		"LOGNAME":                 "sandbox",
		"MPLBACKEND":              "Agg",
		"OMP_NUM_THREADS":         "1",
		"OPENBLAS_NUM_THREADS":    "1",
		"MKL_NUM_THREADS":         "1",
		"NUMEXPR_NUM_THREADS":     "1",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}
