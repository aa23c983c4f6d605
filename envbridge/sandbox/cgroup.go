package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cgroup is an optional per-run control group that caps the whole
// sandbox, not just each process: total memory (including the private
// /tmp tmpfs, which is charged as shared memory) and the number of
// processes. It is created under this process's own cgroup when the
// hierarchy is writable (cgroup v1 memory and pids controllers, or cgroup
// v2 with both enabled for children); otherwise runs go without it and
// rely on the rlimits and the private uid.
type cgroup struct {
	dirs []string // created directories, one per hierarchy
	v2   bool
	mem  string // directory holding the memory controller files
	pids string // directory holding the pids controller files
}

// ownCgroups parses /proc/self/cgroup into controller -> path ("" key for
// the v2 unified hierarchy).
func ownCgroups() map[string]string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

var staleOnce sync.Once

// removeStale removes empty run cgroups left behind by smtrain processes
// that were killed before cleaning up. Only directories unchanged for a
// minute are tried, and rmdir refuses a cgroup that still has processes,
// so live runs of other processes are never touched.
func removeStale(parents ...string) {
	for _, parent := range parents {
		ents, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), "smtrain-sandbox-") {
				continue
			}
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < time.Minute {
				continue
			}
			if os.Remove(filepath.Join(parent, e.Name())) == nil {
				// The run's temp dir (same name) leaked with it.
				_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
}

// newCgroup creates the run's cgroup with the given limits, or returns nil
// when cgroups are not usable here.
func newCgroup(name string, memBytes int64, maxProcs int) *cgroup {
	own := ownCgroups()
	if own == nil {
		return nil
	}
	staleOnce.Do(func() {
		var parents []string
		if p, ok := own["memory"]; ok {
			parents = append(parents, filepath.Join("/sys/fs/cgroup/memory", p))
		}
		if p, ok := own["pids"]; ok {
			parents = append(parents, filepath.Join("/sys/fs/cgroup/pids", p))
		}
		if p, ok := own[""]; ok {
			parents = append(parents, filepath.Join("/sys/fs/cgroup", p))
		}
		removeStale(parents...)
	})
	// cgroup v1 (as on this project's machines): memory and pids.
	memPath, okM := own["memory"]
	pidsPath, okP := own["pids"]
	if okM && okP {
		cg := &cgroup{}
		mem := filepath.Join("/sys/fs/cgroup/memory", memPath, name)
		pids := filepath.Join("/sys/fs/cgroup/pids", pidsPath, name)
		if os.Mkdir(mem, 0o755) != nil {
			return nil
		}
		cg.dirs = append(cg.dirs, mem)
		if os.Mkdir(pids, 0o755) != nil {
			cg.destroy()
			return nil
		}
		cg.dirs = append(cg.dirs, pids)
		cg.mem, cg.pids = mem, pids
		err1 := writeFile(filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(memBytes, 10))
		// No swap beyond the limit where swap accounting exists.
		_ = writeFile(filepath.Join(mem, "memory.memsw.limit_in_bytes"), strconv.FormatInt(memBytes, 10))
		err2 := writeFile(filepath.Join(pids, "pids.max"), strconv.Itoa(maxProcs))
		if err1 != nil || err2 != nil {
			cg.destroy()
			return nil
		}
		return cg
	}
	// cgroup v2 unified hierarchy.
	if p, ok := own[""]; ok {
		base := filepath.Join("/sys/fs/cgroup", p)
		ctl, err := os.ReadFile(filepath.Join(base, "cgroup.subtree_control"))
		if err != nil || !strings.Contains(string(ctl), "memory") || !strings.Contains(string(ctl), "pids") {
			return nil
		}
		dir := filepath.Join(base, name)
		if os.Mkdir(dir, 0o755) != nil {
			return nil
		}
		cg := &cgroup{dirs: []string{dir}, v2: true, mem: dir, pids: dir}
		err1 := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(memBytes, 10))
		_ = writeFile(filepath.Join(dir, "memory.swap.max"), "0")
		err2 := writeFile(filepath.Join(dir, "pids.max"), strconv.Itoa(maxProcs))
		if err1 != nil || err2 != nil {
			cg.destroy()
			return nil
		}
		return cg
	}
	return nil
}

func writeFile(p, s string) error {
	return os.WriteFile(p, []byte(s), 0o644)
}

// procFiles are the cgroup.procs files a starting process must join.
func (c *cgroup) procFiles() []string {
	if c.v2 {
		return []string{filepath.Join(c.mem, "cgroup.procs")}
	}
	return []string{filepath.Join(c.mem, "cgroup.procs"), filepath.Join(c.pids, "cgroup.procs")}
}

// wrap returns argv that joins the cgroup and then execs argv, through
// /bin/sh (the join happens before the sandbox starts any process).
func (c *cgroup) wrap(argv []string) []string {
	script := ""
	for i := range c.procFiles() {
		script += fmt.Sprintf(`echo $$ > "$CG%d" && `, i)
	}
	script += `unset`
	for i := range c.procFiles() {
		script += fmt.Sprintf(" CG%d", i)
	}
	script += `; exec "$0" "$@"`
	return append([]string{"/bin/sh", "-c", script}, argv...)
}

// env returns the variables wrap's script reads.
func (c *cgroup) env() []string {
	var out []string
	for i, f := range c.procFiles() {
		out = append(out, fmt.Sprintf("CG%d=%s", i, f))
	}
	return out
}

// pidsIn lists the processes in the cgroup.
func (c *cgroup) pidsIn() []int {
	b, err := os.ReadFile(filepath.Join(c.pids, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// killAll kills every process in the cgroup until it is empty (or 5 s).
func (c *cgroup) killAll() {
	if c.v2 {
		_ = writeFile(filepath.Join(c.mem, "cgroup.kill"), "1")
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pids := c.pidsIn()
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// oomKilled reports whether the kernel's OOM killer acted in the cgroup.
func (c *cgroup) oomKilled() bool {
	file, key := "memory.oom_control", "oom_kill"
	if c.v2 {
		file = "memory.events"
	}
	return counter(filepath.Join(c.mem, file), key) > 0
}

// pidsLimitHit reports whether a fork failed at pids.max.
func (c *cgroup) pidsLimitHit() bool {
	return counter(filepath.Join(c.pids, "pids.events"), "max") > 0
}

// counter reads "key N" from a cgroup flat-keyed file.
func counter(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// destroy kills what is left and removes the directories.
func (c *cgroup) destroy() {
	if c == nil {
		return
	}
	if c.pids != "" {
		c.killAll()
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		for try := 0; try < 50; try++ {
			if err := os.Remove(c.dirs[i]); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
