package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// lookPath is exec.LookPath, a variable for tests.
var lookPath = exec.LookPath

// systemDirs are bound read-only (or recreated as the host's symbolic
// links) at the same place inside the sandbox.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcEntries are the /etc pieces the interpreter and common libraries
// need (dynamic loader cache, Debian alternatives for BLAS, time zone,
// Python's site configuration). Missing entries are skipped.
var etcEntries = []string{
	"/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
	"/etc/localtime", "/etc/timezone", "/etc/mime.types", "/etc/matplotlibrc",
	"/etc/python3", "/etc/python3.11", "/etc/python3.12", "/etc/python3.13",
}

// netEtcEntries are added only with AllowNetwork.
var netEtcEntries = []string{
	"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf",
	"/etc/ssl", "/etc/ca-certificates", "/etc/protocols", "/etc/services",
}

// bwrapSystemArgs returns the arguments that rebuild the minimal root file
// system: system directories, /etc pieces, /proc, /dev and a fresh /tmp.
// The private /tmp is a tmpfs of at most tmpSize bytes.
func bwrapSystemArgs(allowNetwork bool, python string, tmpSize int64) []string {
	var args []string
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(d)
			if err != nil {
				continue
			}
			args = append(args, "--symlink", target, d)
			continue
		}
		if fi.IsDir() {
			args = append(args, "--ro-bind", d, d)
		}
	}
	etc := etcEntries
	if allowNetwork {
		etc = append(append([]string(nil), etc...), netEtcEntries...)
	}
	// bwrap creates missing directories with mode 0700, which the
	// unprivileged sandbox uid could not traverse.
	args = append(args, "--perms", "0755", "--dir", "/etc", "--perms", "0755", "--dir", "/var")
	for _, e := range etc {
		if _, err := os.Stat(e); err == nil { // follows links; binds the target
			args = append(args, "--ro-bind", e, e)
		}
	}
	// An interpreter outside the system directories (e.g. a pyenv build
	// under /root/.pyenv/versions/X/bin/python3): bind its prefix, with
	// traversable parents.
	if prefix := pythonPrefix(python); prefix != "" {
		made := map[string]bool{"/": true, "/etc": true, "/var": true}
		args = append(args, parentDirArgs(prefix, made)...)
		args = append(args, "--ro-bind", prefix, prefix)
	}
	args = append(args,
		"--proc", "/proc",
		"--dev", "/dev",
		"--perms", "1777", "--size", strconv.FormatInt(tmpSize, 10), "--tmpfs", "/tmp",
		"--perms", "1777", "--dir", "/var/tmp",
	)
	return args
}

// parentDirArgs returns the bwrap arguments that create the missing
// parents of dst with mode 0755 (bwrap's default, 0700, would keep the
// unprivileged sandbox uid out). made records directories already created.
func parentDirArgs(dst string, made map[string]bool) []string {
	var parents []string
	for d := filepath.Dir(dst); !made[d]; d = filepath.Dir(d) {
		parents = append(parents, d)
		made[d] = true
	}
	var args []string
	for i := len(parents) - 1; i >= 0; i-- {
		args = append(args, "--perms", "0755", "--dir", parents[i])
	}
	return args
}

// pythonPrefix returns the directory to bind for an interpreter that lives
// outside the system directories ("" when it is inside them).
func pythonPrefix(python string) string {
	real, err := filepath.EvalSymlinks(python)
	if err != nil {
		return ""
	}
	for _, d := range systemDirs {
		rd, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue
		}
		if real == rd || strings.HasPrefix(real, rd+"/") {
			return ""
		}
	}
	// <prefix>/bin/python3 -> <prefix>
	return filepath.Dir(filepath.Dir(real))
}

// bwrapNamespaceArgs returns the namespace and process flags.
func bwrapNamespaceArgs(allowNetwork, root bool) []string {
	args := []string{"--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"}
	if !allowNetwork {
		args = append(args, "--unshare-net")
	}
	if root {
		// No user namespace: the launcher keeps CAP_SETUID/CAP_SETGID only
		// to drop to an unprivileged uid, so that the kernel enforces
		// RLIMIT_NPROC (it does not for uid 0, even inside a user namespace
		// mapped to root). All other capabilities are dropped by bwrap.
		args = append(args, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID")
	} else {
		args = append(args, "--unshare-user")
	}
	args = append(args, "--hostname", "sandbox", "--die-with-parent", "--new-session")
	return args
}

// envArgs returns --clearenv and sorted --setenv pairs.
func envArgs(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"--clearenv"}
	for _, k := range keys {
		args = append(args, "--setenv", k, env[k])
	}
	return args
}

// probeBwrap checks that bwrap exists and can build the sandbox this
// package uses, by running /bin/true (or the shell) inside it.
func probeBwrap() error {
	bw, err := lookPath("bwrap")
	if err != nil {
		return fmt.Errorf("bwrap not found on PATH (apt-get install bubblewrap): %w", err)
	}
	tmp, err := os.MkdirTemp("", "smtrain-sandbox-probe-")
	if err != nil {
		return fmt.Errorf("probe temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	truePath := "/usr/bin/true"
	if _, err := os.Stat(truePath); err != nil {
		truePath = "/bin/true"
	}
	args := bwrapSystemArgs(false, truePath, 16<<20)
	args = append(args, "--bind", tmp, "/workspace", "--chdir", "/workspace")
	args = append(args, bwrapNamespaceArgs(false, os.Geteuid() == 0)...)
	args = append(args, "--clearenv", "--", truePath)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bw, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("bwrap test run failed: %s", msg)
	}
	return nil
}
