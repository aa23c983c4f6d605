package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture is a task-like layout on the host:
//
//	base/workspace            (WorkDir, bound at /workspace)
//	base/public/train.csv     (bound read-only at /workspace/data)
//	base/private/test_answer.csv (must never be readable)
type fixture struct {
	base, work, public, private, answer string
}

const secretAnswer = "id,target\n1,SECRET-ANSWER-42\n"

func newFixture(t *testing.T) fixture {
	t.Helper()
	base := t.TempDir()
	// Directories world-searchable so the fallback mode (no mount
	// namespace, unprivileged uid) can follow the data symlink.
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	f := fixture{
		base:    base,
		work:    filepath.Join(base, "workspace"),
		public:  filepath.Join(base, "public"),
		private: filepath.Join(base, "private"),
	}
	f.answer = filepath.Join(f.private, "test_answer.csv")
	for _, d := range []string{f.work, filepath.Join(f.work, "output"), f.public, f.private} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.public, "train.csv"), []byte("id,x,y\n1,2,3\n4,5,6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.answer, []byte(secretAnswer), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fixture) job(code string) Job {
	return Job{
		Code:     code,
		WorkDir:  f.work,
		ReadOnly: []Bind{{Src: f.public, Dst: "/workspace/data"}},
	}
}

// modes returns the isolation modes to test: bwrap when usable, and none.
func modes(t *testing.T) []string {
	t.Helper()
	out := []string{}
	if _, err := Probe(); err == nil {
		out = append(out, IsolationBwrap)
	} else {
		t.Logf("bwrap unusable here, testing only the fallback: %v", err)
	}
	return append(out, IsolationNone)
}

func needBwrap(t *testing.T) {
	t.Helper()
	if _, err := Probe(); err != nil {
		t.Skipf("SKIP: bwrap unusable on this machine, isolation test not applicable: %v", err)
	}
}

func quick(iso string) Config {
	return Config{Isolation: iso, Timeout: 20 * time.Second, MaxProcs: 32, MemoryBytes: 1 << 30}
}

func mustRun(t *testing.T, c Config, j Job) Result {
	t.Helper()
	res, err := c.Run(context.Background(), j)
	if err != nil {
		t.Fatalf("Run (%s): infrastructure error: %v", c.Isolation, err)
	}
	return res
}

// assertHealthy runs normal code after a hostile one: the sandbox must keep
// working.
func assertHealthy(t *testing.T, iso string, f fixture) {
	t.Helper()
	res := mustRun(t, quick(iso), f.job("print('still alive', 6*7)\n"))
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "still alive 42") {
		t.Fatalf("follow-up run failed: %+v", res)
	}
}

const normalCode = `
import csv, os
rows = list(csv.DictReader(open("data/train.csv")))
s = sum(int(r["x"]) for r in rows)
os.makedirs("output", exist_ok=True)
with open("output/submission.csv", "w") as fh:
    fh.write("id,pred\n")
    for r in rows:
        fh.write("%s,%d\n" % (r["id"], int(r["x"]) * 2))
print("rows", len(rows), "sum", s)
print("cwd", os.getcwd())
import sys
print("warn", file=sys.stderr)
`

func TestNormalCode(t *testing.T) {
	t.Parallel()
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			res := mustRun(t, quick(iso), f.job(normalCode))
			if res.ExitCode != 0 || res.TimedOut || res.Limit != "" || res.Signal != "" {
				t.Fatalf("normal code failed: %+v", res)
			}
			if !strings.Contains(res.Stdout, "rows 2 sum 7") || !strings.Contains(res.Stderr, "warn") {
				t.Fatalf("stdout %q stderr %q", res.Stdout, res.Stderr)
			}
			b, err := os.ReadFile(filepath.Join(f.work, "output", "submission.csv"))
			if err != nil || string(b) != "id,pred\n1,4\n4,10\n" {
				t.Fatalf("submission %q, %v", b, err)
			}
			if iso == IsolationBwrap {
				if res.Isolation != "bwrap" || !strings.Contains(res.Stdout, "cwd /workspace") {
					t.Fatalf("isolation %q stdout %q", res.Isolation, res.Stdout)
				}
			} else if !strings.HasPrefix(res.Isolation, "none (WEAK") {
				t.Fatalf("isolation %q", res.Isolation)
			}
			// The data symlink of the fallback is removed again.
			if iso == IsolationNone {
				if _, err := os.Lstat(filepath.Join(f.work, "data")); err == nil {
					t.Fatal("fallback left its data link in the work dir")
				}
			}
		})
	}
}

func TestAbsoluteWorkspacePaths(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	f := newFixture(t)
	code := `print(open("/workspace/data/train.csv").read().splitlines()[1])
open("/workspace/output/a.txt", "w").write("ok")
import os; print(sorted(os.listdir("/")))`
	code += `
print(open("/data/comp/extra.csv").read().strip(), open("/workspace/in/deep/train.csv").readline().strip())
try:
    open("/data/comp/extra.csv", "w")
except OSError as e:
    print("RO", type(e).__name__)
`
	j := f.job(code)
	j.ReadOnly = append(j.ReadOnly,
		Bind{Src: filepath.Join(f.public, "train.csv"), Dst: "/data/comp/extra.csv"},
		Bind{Src: f.public, Dst: "/workspace/in/deep"})
	res := mustRun(t, quick(IsolationBwrap), j)
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "1,2,3") ||
		!strings.Contains(res.Stdout, "4,5,6 id,x,y") || !strings.Contains(res.Stdout, "RO ") {
		t.Fatalf("%+v", res)
	}
	// Only the system dirs, the workspace and the sandbox's own dirs.
	for _, bad := range []string{"'work'", "'root'", "'home'", "'opt'", "'farm'", "'sys'"} {
		if strings.Contains(res.Stdout, bad) {
			t.Fatalf("host directory %s visible in sandbox: %s", bad, res.Stdout)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(f.work, "output", "a.txt")); string(b) != "ok" {
		t.Fatal("write to /workspace/output did not reach the host work dir")
	}
}

func TestEnvironmentScrubbed(t *testing.T) {
	t.Setenv("SMTRAIN_HOST_SECRET", "do-not-leak")
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			j := f.job("import os\nfor k in sorted(os.environ): print(k + '=' + os.environ[k])\n")
			j.Env = map[string]string{"EXTRA": "yes"}
			res := mustRun(t, quick(iso), j)
			if res.ExitCode != 0 {
				t.Fatalf("%+v", res)
			}
			if strings.Contains(res.Stdout, "SMTRAIN_HOST_SECRET") || strings.Contains(res.Stdout, "do-not-leak") {
				t.Fatalf("host environment leaked: %s", res.Stdout)
			}
			for _, want := range []string{"EXTRA=yes", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1", "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "PATH="} {
				if !strings.Contains(res.Stdout, want) {
					t.Fatalf("missing %s in %s", want, res.Stdout)
				}
			}
			if iso == IsolationBwrap && !strings.Contains(res.Stdout, "HOME=/workspace") {
				t.Fatalf("HOME not /workspace: %s", res.Stdout)
			}
		})
	}
}

func TestInfiniteLoop(t *testing.T) {
	t.Parallel()
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			c := quick(iso)
			c.Timeout = 1500 * time.Millisecond
			c.CPUSeconds = 30
			start := time.Now()
			res := mustRun(t, c, f.job("print('spinning', flush=True)\nwhile True:\n    pass\n"))
			if !res.TimedOut || res.Limit != "timeout" || res.Signal != "killed" {
				t.Fatalf("want timeout kill, got %+v", res)
			}
			if el := time.Since(start); el > 8*time.Second {
				t.Fatalf("timeout took %v", el)
			}
			if !strings.Contains(res.Stdout, "spinning") {
				t.Fatalf("output before the kill lost: %q", res.Stdout)
			}
			assertHealthy(t, iso, f)
		})
	}
}

func TestBackgroundProcessKilled(t *testing.T) {
	t.Parallel()
	// A child that detaches (new session) and outlives the parent must not
	// survive the run.
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			if iso == IsolationNone && os.Geteuid() != 0 {
				t.Skip("SKIP: detached processes are swept by uid only when running as root")
			}
			f := newFixture(t)
			marker := filepath.Join(f.work, "late.txt")
			code := `import os, time
if os.fork() == 0:
    os.setsid()
    time.sleep(1)
    open("late.txt", "w").write("escaped")
    os._exit(0)
print("parent exits")
`
			res := mustRun(t, quick(iso), f.job(code))
			if res.ExitCode != 0 {
				t.Fatalf("%+v", res)
			}
			time.Sleep(1500 * time.Millisecond)
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("detached child survived the run and wrote to the workspace")
			}
		})
	}
}

func TestCPULimit(t *testing.T) {
	t.Parallel()
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			c := quick(iso)
			c.Timeout = 15 * time.Second
			c.CPUSeconds = 1
			res := mustRun(t, c, f.job("while True:\n    pass\n"))
			if res.TimedOut || res.Limit != "cpu" || res.Signal == "" {
				t.Fatalf("want cpu limit, got %+v", res)
			}
			assertHealthy(t, iso, f)
		})
	}
}

// sandboxProcs counts live (non-zombie) processes running under this
// process's private uid range.
func sandboxProcs() int {
	lo := uidBlock
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil || strings.Contains(string(b), "Z (zombie)") {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Uid:") {
				fl := strings.Fields(line)
				if len(fl) > 1 {
					if u, err := strconv.Atoi(fl[1]); err == nil && u >= lo && u < lo+1024 {
						n++
					}
				}
				break
			}
		}
	}
	return n
}

func TestForkBomb(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: fork-bomb containment test is written for root (private uid + RLIMIT_NPROC); as a normal user RLIMIT_NPROC applies to the caller's uid")
	}
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			c := quick(iso)
			c.MaxProcs = 16
			c.Timeout = 3 * time.Second
			c.MemoryBytes = 256 << 20
			// Each process forks forever; failed forks are retried. Without
			// a process limit this grows exponentially.
			code := `import os, sys, time
fails = 0
while True:
    try:
        os.fork()
    except OSError as e:
        fails += 1
        if fails == 1:
            print("fork failed:", e, file=sys.stderr, flush=True)
        time.sleep(0.01)
`
			var peak int
			var mu sync.Mutex
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					n := sandboxProcs()
					mu.Lock()
					peak = max(peak, n)
					mu.Unlock()
				}
			}()
			res := mustRun(t, c, f.job(code))
			close(stop)
			wg.Wait()
			t.Logf("fork bomb: peak %d sandbox processes (limit %d), result %+v", peak, c.MaxProcs, res.Limit)
			if !res.TimedOut {
				t.Fatalf("fork bomb was not stopped by the timeout: %+v", res)
			}
			if peak > c.MaxProcs {
				t.Fatalf("fork bomb reached %d processes, limit %d", peak, c.MaxProcs)
			}
			if peak < 2 {
				t.Fatalf("fork bomb never forked (peak %d): test not exercising the limit", peak)
			}
			if !strings.Contains(res.Stderr, "fork failed") {
				t.Fatalf("process limit never hit: stderr %q", res.Stderr)
			}
			if n := sandboxProcs(); n != 0 {
				t.Fatalf("%d sandbox processes left after the run", n)
			}
			assertHealthy(t, iso, f)
		})
	}
}

func TestProcessLimitReported(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: written for root (private uid)")
	}
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			c := quick(iso)
			c.MaxProcs = 8
			code := `import os, time
kids = []
for i in range(50):
    pid = os.fork()
    if pid == 0:
        time.sleep(5); os._exit(0)
    kids.append(pid)
`
			res := mustRun(t, c, f.job(code))
			if res.ExitCode == 0 || res.Limit != "processes" {
				t.Fatalf("want processes limit, got %+v", res)
			}
			assertHealthy(t, iso, f)
		})
	}
}

func TestMemoryHog(t *testing.T) {
	t.Parallel()
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			c := quick(iso)
			c.MemoryBytes = 192 << 20
			code := `chunks = []
while True:
    chunks.append(bytearray(32 << 20))
`
			res := mustRun(t, c, f.job(code))
			if res.ExitCode == 0 || res.Limit != "memory" || !strings.Contains(res.Stderr, "MemoryError") {
				t.Fatalf("want memory limit, got %+v", res)
			}
			assertHealthy(t, iso, f)
		})
	}
}

func TestFileSizeLimit(t *testing.T) {
	t.Parallel()
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			c := quick(iso)
			c.FileSizeBytes = 1 << 20
			code := `with open("output/big.bin", "wb") as fh:
    for i in range(64):
        fh.write(b"x" * (64 << 10))
        fh.flush()
`
			res := mustRun(t, c, f.job(code))
			if res.ExitCode == 0 || res.Limit != "file-size" {
				t.Fatalf("want file-size limit, got %+v", res)
			}
			if st, err := os.Stat(filepath.Join(f.work, "output", "big.bin")); err != nil || st.Size() > 1<<20 {
				t.Fatalf("file grew past the limit: %v %v", st.Size(), err)
			}
		})
	}
}

func TestHugeOutput(t *testing.T) {
	t.Parallel()
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			c := quick(iso)
			c.MaxOutputBytes = 8 << 10
			code := `import sys
print("BEGIN")
line = "y" * 1023 + "\n"
for i in range(50 * 1024):
    sys.stdout.write(line)
print("END")
`
			res := mustRun(t, c, f.job(code))
			if res.ExitCode != 0 || !res.Truncated || res.Limit != "output" {
				t.Fatalf("want truncated output, got exit %d truncated %v limit %q", res.ExitCode, res.Truncated, res.Limit)
			}
			if len(res.Stdout) > c.MaxOutputBytes {
				t.Fatalf("kept %d bytes, cap %d", len(res.Stdout), c.MaxOutputBytes)
			}
			if !strings.HasPrefix(res.Stdout, "BEGIN") || !strings.HasSuffix(res.Stdout, "END\n") || !strings.Contains(res.Stdout, "bytes of output truncated") {
				t.Fatalf("head/tail/marker missing: %q ... %q", res.Stdout[:20], res.Stdout[len(res.Stdout)-20:])
			}
			assertHealthy(t, iso, f)
		})
	}
}

func TestPrivateFilesUnreadable(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	f := newFixture(t)
	paths := []string{
		f.answer,                     // absolute host path
		"../private/test_answer.csv", // relative to the workspace
		"data/../../private/test_answer.csv",
		"/workspace/../private/test_answer.csv",
		filepath.Join(f.base, "workspace", "..", "private", "test_answer.csv"),
		"/proc/1/root" + f.answer, // through the (sandboxed) pid 1
		"/etc/shadow",
		"/etc/hostname",
		"/root",
		"/work",
	}
	var code strings.Builder
	code.WriteString("import os\npaths = [\n")
	for _, p := range paths {
		fmt.Fprintf(&code, "    %q,\n", p)
	}
	code.WriteString(`]
for p in paths:
    try:
        if os.path.isdir(p):
            print("READ", p, os.listdir(p))
        else:
            print("READ", p, open(p).read())
    except Exception as e:
        print("DENIED", p, type(e).__name__)
found = []
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys", "/usr")):
        dirs[:] = []
        continue
    for fn in files:
        if fn == "test_answer.csv":
            found.append(os.path.join(root, fn))
print("FOUND", found)
`)
	res := mustRun(t, quick(IsolationBwrap), f.job(code.String()))
	if res.ExitCode != 0 {
		t.Fatalf("%+v", res)
	}
	if strings.Contains(res.Stdout, "SECRET-ANSWER") || strings.Contains(res.Stdout, "READ") {
		t.Fatalf("private data readable:\n%s", res.Stdout)
	}
	if n := strings.Count(res.Stdout, "DENIED"); n != len(paths) {
		t.Fatalf("want %d denials, got %d:\n%s", len(paths), n, res.Stdout)
	}
	if !strings.Contains(res.Stdout, "FOUND []") {
		t.Fatalf("answer file visible: %s", res.Stdout)
	}
	assertHealthy(t, IsolationBwrap, f)
}

func TestWriteOutsideWorkspace(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	f := newFixture(t)
	tag := fmt.Sprintf("smtrain-escape-%d", time.Now().UnixNano())
	hostTmp := filepath.Join(os.TempDir(), tag)
	code := fmt.Sprintf(`import os
targets = ["../escape.txt", %q, "/usr/%s", "/etc/%s", "/%s", "data/%s", "/workspace/data/%s", %q, "/sandbox/code.py"]
for p in targets:
    try:
        with open(p, "w") as fh:
            fh.write("pwned")
        print("WROTE", p)
    except Exception as e:
        print("DENIED", p, type(e).__name__)
# /tmp is a private tmpfs: writable, but not the host's /tmp.
open("/tmp/%s", "w").write("private")
print("TMP", os.path.exists("/tmp/%s"))
`, filepath.Join(f.base, "escape2.txt"), tag, tag, tag, tag, tag, filepath.Join(f.private, "test_answer.csv"), tag, tag)
	res := mustRun(t, quick(IsolationBwrap), f.job(code))
	if res.ExitCode != 0 {
		t.Fatalf("%+v", res)
	}
	if strings.Contains(res.Stdout, "WROTE") || strings.Count(res.Stdout, "DENIED") != 9 {
		t.Fatalf("write outside the workspace succeeded:\n%s", res.Stdout)
	}
	if !strings.Contains(res.Stdout, "TMP True") {
		t.Fatalf("sandbox /tmp not writable: %s", res.Stdout)
	}
	for _, p := range []string{filepath.Join(f.base, "escape.txt"), filepath.Join(f.base, "escape2.txt"), hostTmp} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s created on the host", p)
		}
	}
	if b, _ := os.ReadFile(f.answer); string(b) != secretAnswer {
		t.Fatal("private answer modified")
	}
	assertHealthy(t, IsolationBwrap, f)
}

func TestNoNetwork(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	f := newFixture(t)
	code := fmt.Sprintf(`import socket
try:
    s = socket.create_connection(("127.0.0.1", %d), timeout=2)
    print("CONNECTED")
except Exception as e:
    print("NOCONN", type(e).__name__, e)
try:
    socket.getaddrinfo("example.com", 80)
    print("RESOLVED")
except Exception as e:
    print("NODNS", type(e).__name__)
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("8.8.8.8", 53))
    print("SENT")
except Exception as e:
    print("NOSEND", type(e).__name__)
`, port)
	res := mustRun(t, quick(IsolationBwrap), f.job(code))
	if res.ExitCode != 0 {
		t.Fatalf("%+v", res)
	}
	if !strings.Contains(res.Stdout, "NOCONN") || !strings.Contains(res.Stdout, "NODNS") || !strings.Contains(res.Stdout, "NOSEND") {
		t.Fatalf("network reachable from sandbox:\n%s", res.Stdout)
	}
	select {
	case <-accepted:
		t.Fatal("host listener accepted a connection from the sandbox")
	default:
	}
	assertHealthy(t, IsolationBwrap, f)
}

func TestValidation(t *testing.T) {
	f := newFixture(t)
	c := quick(IsolationNone)
	bad := []Job{
		{Code: "pass"},
		{Code: "pass", WorkDir: filepath.Join(f.base, "missing")},
		{Code: "pass", WorkDir: f.work, ReadOnly: []Bind{{Src: f.public, Dst: "relative"}}},
		{Code: "pass", WorkDir: f.work, ReadOnly: []Bind{{Src: f.public, Dst: "/workspace/../x"}}},
		{Code: "pass", WorkDir: f.work, ReadOnly: []Bind{{Src: f.public, Dst: "/"}}},
		{Code: "pass", WorkDir: f.work, ReadOnly: []Bind{{Src: filepath.Join(f.base, "nope"), Dst: "/workspace/x"}}},
		{Code: "pass", WorkDir: f.work, Env: map[string]string{"A=B": "x"}},
	}
	for i, j := range bad {
		if _, err := c.Run(context.Background(), j); err == nil {
			t.Errorf("job %d: want error", i)
		}
	}
	if _, err := (Config{Isolation: "chroot"}).Run(context.Background(), f.job("pass")); err == nil {
		t.Error("unknown isolation accepted")
	}
	if _, err := (Config{Python: "/nonexistent/python3"}).Run(context.Background(), f.job("pass")); err == nil {
		t.Error("missing interpreter accepted")
	}
	if os.Geteuid() == 0 {
		secret := filepath.Join(f.public, "hidden.csv")
		if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := c.Run(context.Background(), f.job("pass"))
		if err == nil || !strings.Contains(err.Error(), "hidden.csv") {
			t.Errorf("unreadable bind source not reported: %v", err)
		}
	}
}

func TestSyntaxErrorIsAResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, iso := range modes(t) {
		res := mustRun(t, quick(iso), f.job("def broken(:\n"))
		if res.ExitCode != 1 || !strings.Contains(res.Stderr, "SyntaxError") {
			t.Fatalf("%s: %+v", iso, res)
		}
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := quick(IsolationAuto).Run(ctx, f.job("import time\ntime.sleep(30)\n"))
	if err == nil {
		t.Fatal("cancelled run returned no error")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("cancel took %v", el)
	}
}

func TestCapture(t *testing.T) {
	c := newCapture(16) // head 12, tail 4
	c.Write([]byte("hello"))
	if c.String() != "hello" || c.truncated() {
		t.Fatalf("%q", c.String())
	}
	c.Write([]byte(" world, this is long"))
	c.Write([]byte("ab"))
	c.Write([]byte("cdefgh"))
	got := c.String()
	if !strings.HasPrefix(got, "hello world,") || !strings.HasSuffix(got, "efgh") || !c.truncated() {
		t.Fatalf("%q", got)
	}
	total := len("hello") + len(" world, this is long") + 2 + 6
	if !strings.Contains(got, fmt.Sprintf("[%d bytes", total-16)) {
		t.Fatalf("%q", got)
	}
	// Byte-at-a-time writes wrap the ring correctly.
	c = newCapture(8) // head 6, tail 2
	for _, b := range []byte("abcdefghijklmnop") {
		c.Write([]byte{b})
	}
	if got := c.String(); !strings.HasPrefix(got, "abcdef") || !strings.HasSuffix(got, "op") {
		t.Fatalf("%q", got)
	}
}

func TestProbe(t *testing.T) {
	iso, err := Probe()
	t.Logf("Probe: %q, %v", iso, err)
	if err == nil && iso != IsolationBwrap {
		t.Fatalf("no error but isolation %q", iso)
	}
	if err != nil && !strings.HasPrefix(iso, "none (WEAK") {
		t.Fatalf("error but isolation %q", iso)
	}
}

// TestScientificImports checks that numpy (and, outside -short, torch) load
// inside the sandbox under the default memory limit: the BLAS behind numpy
// is reached through /etc/alternatives, which the sandbox binds.
func TestScientificImports(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	py, err := resolvePython("")
	if err != nil {
		t.Skip(err)
	}
	mods := []string{"numpy"}
	if !testing.Short() {
		mods = append(mods, "torch")
	}
	f := newFixture(t)
	for _, m := range mods {
		if err := exec.Command(py, "-c", "import "+m).Run(); err != nil {
			t.Logf("SKIP %s: not importable on the host", m)
			continue
		}
		code := "import " + m + "\nprint('ok', " + m + ".__version__)\n"
		if m == "numpy" {
			code += "a = numpy.ones((200, 200)); print('dot', float((a @ a).sum()))\n"
		}
		res := mustRun(t, Config{Isolation: IsolationBwrap, Timeout: 120 * time.Second}, f.job(code))
		if res.ExitCode != 0 || !strings.Contains(res.Stdout, "ok") {
			t.Fatalf("import %s in sandbox: %+v", m, res)
		}
		t.Logf("%s: %s (%v)", m, strings.TrimSpace(res.Stdout), res.Duration)
	}
}

// TestInterpreterOutsideUsr runs an interpreter that lives outside the
// system directories (a pyenv build, when present): its prefix is bound.
func TestInterpreterOutsideUsr(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	matches, _ := filepath.Glob("/root/.pyenv/versions/3.1*/bin/python3")
	if len(matches) == 0 {
		t.Skip("SKIP: no interpreter outside /usr on this machine")
	}
	f := newFixture(t)
	c := quick(IsolationBwrap)
	c.Python = matches[0]
	res := mustRun(t, c, f.job("import sys; print(sys.version_info[:2], sys.prefix)\n"))
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "/root/.pyenv/versions/") {
		t.Fatalf("%s: %+v", matches[0], res)
	}
}

// TestWholeSandboxMemory checks the cgroup layer: several processes that
// each stay under RLIMIT_AS but together exceed MemoryBytes are stopped.
func TestWholeSandboxMemory(t *testing.T) {
	probe := newCgroup(fmt.Sprintf("smtrain-sandbox-probe-%d", os.Getpid()), 64<<20, 8)
	if probe == nil {
		t.Skip("SKIP: no writable memory+pids cgroup here; the sandbox relies on per-process rlimits only")
	}
	probe.destroy()
	t.Parallel()
	for _, iso := range modes(t) {
		if testing.Short() && iso == IsolationNone && len(modes(t)) > 1 {
			continue // same cgroup code path; slow near the memory limit
		}
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			c := quick(iso)
			c.MemoryBytes = 192 << 20
			code := `import os, time
kids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        b = bytearray(100 << 20)   # touched: 100 MiB resident each
        for j in range(0, len(b), 4096):
            b[j] = 1
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
alive = 0
for pid in kids:
    _, st = os.waitpid(pid, 0)
    if os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0:
        alive += 1
print("survivors", alive)
`
			res := mustRun(t, c, f.job(code))
			t.Logf("%s: %v, stdout %q", iso, res.Duration, res.Stdout)
			if res.Limit != "memory" || strings.Contains(res.Stdout, "survivors 4") {
				t.Fatalf("400 MiB across processes not stopped by a 192 MiB sandbox: %+v", res)
			}
			assertHealthy(t, iso, f)
		})
	}
}

// TestTmpBounded: the private /tmp cannot grow past MemoryBytes.
func TestTmpBounded(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	f := newFixture(t)
	c := quick(IsolationBwrap)
	c.MemoryBytes = 128 << 20
	code := `n = 0
try:
    for i in range(40):
        with open("/tmp/f%d" % i, "wb") as fh:
            fh.write(b"z" * (10 << 20))
        n += 1
except OSError as e:
    print("stopped:", e)
print("written", n)
`
	res := mustRun(t, c, f.job(code))
	if strings.Contains(res.Stdout, "written 40") {
		t.Fatalf("400 MiB written to /tmp with a 128 MiB limit: %+v", res)
	}
	assertHealthy(t, IsolationBwrap, f)
}

// TestEscapingSymlinksRemoved: links the code leaves in the workspace that
// would resolve to host paths outside it are removed after the run.
func TestEscapingSymlinksRemoved(t *testing.T) {
	t.Parallel()
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			code := fmt.Sprintf(`import os
os.symlink(%q, "output/submission.csv")        # guessed host path of the answers
os.symlink("../../private/test_answer.csv", "output/rel.csv")
os.symlink("/workspace/data/train.csv", "output/abs_in_sandbox.csv")
os.symlink("submission_real.csv", "output/inside.csv")
open("output/submission_real.csv", "w").write("id,target\n")
print("ok")
`, f.answer)
			res := mustRun(t, quick(iso), f.job(code))
			if res.ExitCode != 0 {
				t.Fatalf("%+v", res)
			}
			got := strings.Join(res.RemovedLinks, ",")
			if got != "output/abs_in_sandbox.csv,output/rel.csv,output/submission.csv" {
				t.Fatalf("removed %q", got)
			}
			for _, gone := range []string{"submission.csv", "rel.csv", "abs_in_sandbox.csv"} {
				if _, err := os.Lstat(filepath.Join(f.work, "output", gone)); err == nil {
					t.Fatalf("%s still there", gone)
				}
			}
			if _, err := os.Lstat(filepath.Join(f.work, "output", "inside.csv")); err != nil {
				t.Fatalf("link inside the workspace removed: %v", err)
			}
		})
	}
}

// TestConcurrentRuns: parallel runs (as in a parallel rollout) each get
// their own uid, cgroup and output, and all succeed.
// TestLinkChainsRemoved: links that are inside the work directory as text
// but climb out on the host through another link (output/c/c/p -> ../..,
// output/x -> c/c/p/../../<n ups>/answer) are removed after the run, at
// every depth; the old textual check kept them.
func TestLinkChainsRemoved(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	code := fmt.Sprintf(`import os
answer = %q.lstrip("/")
for n in (1, 2, 5, 30):
    d = "output/n%%d" %% n
    os.makedirs(d + "/" + "c/" * n)
    os.symlink("../" * n, d + "/" + "c/" * n + "p")
    os.symlink("c/" * n + "p/" + "../" * (n + 40) + answer, d + "/submission.csv")
os.symlink("sub/x", "output/through_dir.csv")
os.symlink("n1/c/p/../../../../../../../../../../../..", "output/sub")
print("ok")
`, f.answer)
	res := mustRun(t, quick(IsolationNone), f.job(code))
	if res.ExitCode != 0 {
		t.Fatalf("%+v", res)
	}
	got := strings.Join(res.RemovedLinks, ",")
	want := "output/n1/c/p,output/n1/submission.csv,output/n2/c/c/p,output/n2/submission.csv," +
		"output/n30/" + strings.Repeat("c/", 30) + "p,output/n30/submission.csv," +
		"output/n5/c/c/c/c/c/p,output/n5/submission.csv,output/sub"
	if got != want {
		t.Fatalf("removed\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Lstat(filepath.Join(f.work, "output", "through_dir.csv")); err != nil {
		t.Fatalf("a downward link was removed: %v", err)
	}
}

// TestMountinfoHidesRunFolder: the run's code and identity files are
// copied into the sandbox (bwrap --file), not bound from the host, so
// /proc/self/mountinfo does not show the host temp folder holding them;
// the identity files still work.
func TestMountinfoHidesRunFolder(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	f := newFixture(t)
	res := mustRun(t, quick(IsolationBwrap), f.job("import os, pwd, grp\nprint(pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name, __file__)\nprint(open('/proc/self/mountinfo').read())\n"))
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "sandbox sandbox /sandbox/code.py\n") {
		t.Fatalf("%+v", res)
	}
	if strings.Contains(res.Stdout, "smtrain-sandbox-") || strings.Contains(res.Stdout, " /sandbox ") || strings.Contains(res.Stdout, " /etc/passwd ") {
		t.Fatalf("mountinfo shows the run folder:\n%s", res.Stdout)
	}
}

func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	iso := modes(t)[0]
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	var mu sync.Mutex
	uids := map[string]bool{}
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := newFixture(t)
			res, err := quick(iso).Run(context.Background(), f.job(fmt.Sprintf("import os\nprint('run', %d, os.getuid())\n", i)))
			if err != nil {
				errs <- err
				return
			}
			if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, fmt.Sprintf("run %d ", i)) {
				errs <- fmt.Errorf("run %d: %+v", i, res)
				return
			}
			mu.Lock()
			uids[strings.Fields(res.Stdout)[2]] = true
			mu.Unlock()
			errs <- nil
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 && len(uids) != 6 {
		t.Fatalf("concurrent runs shared uids: %v", uids)
	}
}

// TestBwrapFailureIsAnError: a sandbox bwrap cannot build is an
// infrastructure error, not agent code that "exited 1".
func TestBwrapFailureIsAnError(t *testing.T) {
	t.Parallel()
	needBwrap(t)
	f := newFixture(t)
	j := f.job("print('never runs')\n")
	// Binding a directory below a file bind cannot be built by bwrap.
	j.ReadOnly = []Bind{
		{Src: filepath.Join(f.public, "train.csv"), Dst: "/data/file"},
		{Src: f.public, Dst: "/data/file/sub"},
	}
	res, err := quick(IsolationBwrap).Run(context.Background(), j)
	if err == nil || !strings.Contains(err.Error(), "bwrap") {
		t.Fatalf("bwrap setup failure not reported as an error: %v %+v", err, res)
	}
	t.Logf("reported: %v", err)
	assertHealthy(t, IsolationBwrap, f)
}

// TestParentDeathKillsSandbox: if the process running the sandbox dies
// (SIGKILL, no cleanup), the agent code dies with it. The helper below
// runs in a child test process that the test kills.
func TestParentDeathKillsSandbox(t *testing.T) {
	t.Parallel()
	for _, iso := range modes(t) {
		t.Run(iso, func(t *testing.T) {
			f := newFixture(t)
			marker := filepath.Join(f.work, "survived.txt")
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSandboxSleeper$")
			cmd.Env = append(os.Environ(), "SMTRAIN_SANDBOX_HELPER="+iso+"|"+f.work)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait until the agent code runs, then kill the parent.
			started := filepath.Join(f.work, "started.txt")
			deadline := time.Now().Add(20 * time.Second)
			for {
				if _, err := os.Stat(started); err == nil {
					break
				}
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					t.Fatalf("agent code never started:\n%s", out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			time.Sleep(2500 * time.Millisecond)
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("agent code survived the death of the process that ran it")
			}
		})
	}
}

// TestHelperSandboxSleeper is the child process of
// TestParentDeathKillsSandbox; it does nothing in a normal test run.
func TestHelperSandboxSleeper(t *testing.T) {
	spec := os.Getenv("SMTRAIN_SANDBOX_HELPER")
	if spec == "" {
		t.Skip("helper process only")
	}
	iso, work, _ := strings.Cut(spec, "|")
	code := `import time
open("started.txt", "w").write("x")
time.sleep(1.5)
open("survived.txt", "w").write("x")
`
	_, _ = Config{Isolation: iso, Timeout: 30 * time.Second}.Run(context.Background(), Job{Code: code, WorkDir: work})
}
