package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"smtrain/envbridge/httpenv"
	"smtrain/envbridge/local"
	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/tasks"
	"smtrain/internal/apikey"
)

var cmdEnvServe = &Command{
	Name:      "env serve",
	UsageLine: "smtrain env serve (-root DIR | -builtin) [-addr 127.0.0.1:PORT] [-api_key_file FILE] [-max_envs_per_key N] [-insecure_no_auth] [-runs DIR] [-max_envs N] [-timeout D] [-isolation auto|bwrap|none] [-workspace_bytes N] [-workspace_files N] [-max_submission_bytes N]",
	Short:     "serve local MLE-Dojo-style environments over HTTP",
	Long: `Env serve serves the local MLE-Dojo-compatible environment over the HTTP
protocol of DESIGN.md 6.4 (POST /v1/envs, POST /v1/envs/{id}/step,
GET /v1/envs/{id}/history, ...), so that 'smtrain rollout -env
http://HOST:PORT' can drive it from another process or machine.

-root DIR serves every competition folder under DIR in MLE-Dojo's prepared
layout (<comp>/data/public, <comp>/data/private, optional data/task.json);
-builtin serves the built-in synthetic tasks (` + strings.Join(tasks.Names(), ", ") + `).
Agent code runs in the sandbox (bubblewrap when usable). The server listens
on loopback by default; -runs DIR keeps each environment's MLE-Dojo run
folder (env_history/history.json, agent_history/trajectory.json).
SIGINT/SIGTERM shut it down gracefully.

Limits on agent files: when the server may mount file systems (root), each
workspace is its own file system (an ext4 image, else a tmpfs) of
-workspace_bytes (default 1 GiB) and -workspace_files (default 50000);
writes past them fail inside the sandbox with "No space left on device". The server reads a submission.csv of at
most -max_submission_bytes, and never through a symbolic link. At start it
removes the workspaces that dead servers left in its work root.

Authentication: with -api_key_file FILE (one key per line, # comments) or
$SMTRAIN_ENV_API_KEY (comma-separated keys) every route but GET /v1/healthz
needs 'Authorization: Bearer KEY' (else 401 unauthorized); an environment
belongs to the key that created it, and each key may hold at most
-max_envs_per_key environments (default: -max_envs split evenly over the
keys when there are several). Clients give their key with -env_key_file or
$SMTRAIN_ENV_API_KEY. A non-loopback -addr without a key is refused unless
-insecure_no_auth. Keys travel in clear over http://: beyond a trusted
network put a TLS reverse proxy (Caddy, nginx) in front and use https://
URLs.`,
}

var cmdEnvList = &Command{
	Name:      "env list",
	UsageLine: "smtrain env list [-root DIR | -builtin]",
	Short:     "list the tasks a local environment would serve",
	Long: `Env list prints the tasks found under -root DIR (or the built-in tasks
with -builtin, the default) with their metric, direction, id and target
columns and leaderboard sizes. A folder that cannot be served is reported
with the reason.`,
}

func init() {
	cmdEnvServe.Run = runEnvServe
	cmdEnvList.Run = runEnvList
}

// registryFlags are shared by env serve and env list.
type registryFlags struct {
	root    *string
	builtin *bool
	seed    *uint64
	cache   *string
}

func addRegistryFlags(fs interface {
	String(string, string, string) *string
	Bool(string, bool, string) *bool
	Uint64(string, uint64, string) *uint64
}) registryFlags {
	return registryFlags{
		root:    fs.String("root", "", "folder of competitions in MLE-Dojo layout (or one competition folder)"),
		builtin: fs.Bool("builtin", false, "serve the built-in synthetic tasks"),
		seed:    fs.Uint64("task_seed", tasks.DefaultSeed, "data seed of the built-in tasks"),
		cache:   fs.String("cache", "", "where built-in tasks are materialised (default: user cache dir)"),
	}
}

func (f registryFlags) open(defaultBuiltin bool) (*local.Registry, error) {
	switch {
	case *f.root != "" && *f.builtin:
		return nil, usagef("-root and -builtin are exclusive")
	case *f.root != "":
		return local.NewDirRegistry(*f.root)
	case *f.builtin || defaultBuiltin:
		return local.NewBuiltinRegistry(*f.cache, *f.seed)
	}
	return nil, usagef("one of -root DIR or -builtin is required")
}

func runEnvServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdEnvServe.NewFlagSet(stderr)
	rf := addRegistryFlags(fs)
	addr := fs.String("addr", "127.0.0.1:8765", "listen address (host:port; loopback by default)")
	runs := fs.String("runs", "", "keep each environment's run folder under this folder")
	maxEnvs := fs.Int("max_envs", 16, "maximum live environments")
	timeout := fs.Duration("timeout", 60*time.Second, "wall-clock limit per code run")
	isolation := fs.String("isolation", "auto", "sandbox isolation: auto, bwrap or none")
	wsBytes := fs.Int64("workspace_bytes", sandbox.DefaultWorkspaceBytes, "byte quota of each workspace (its own file system, when the server may mount one)")
	wsFiles := fs.Int64("workspace_files", sandbox.DefaultWorkspaceFiles, "file-count quota of each workspace (same condition)")
	maxSub := fs.Int64("max_submission_bytes", 0, "largest submission.csv the server reads (0: the larger of 64 MiB and 1 KiB per expected row)")
	auth := addServerAuthFlags(fs, apikey.EnvKey)
	perKey := fs.Int("max_envs_per_key", 0, "maximum live environments per API key (0: -max_envs split evenly over the keys)")
	if err := cmdEnvServe.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	if *perKey < 0 {
		return usagef("-max_envs_per_key must be >= 0, got %d", *perKey)
	}
	if *wsBytes <= 0 || *wsFiles <= 0 || *maxSub < 0 {
		return usagef("-workspace_bytes and -workspace_files must be > 0 and -max_submission_bytes >= 0, got %d, %d and %d", *wsBytes, *wsFiles, *maxSub)
	}
	keys, err := auth.keys()
	if err != nil {
		return err
	}
	switch *isolation {
	case sandbox.IsolationAuto, sandbox.IsolationBwrap, sandbox.IsolationNone:
	default:
		return usagef("-isolation %q: want auto, bwrap or none", *isolation)
	}
	reg, err := rf.open(false)
	if err != nil {
		return err
	}
	reg.Sandbox = sandbox.Config{Timeout: *timeout, Isolation: *isolation, WorkspaceBytes: *wsBytes, WorkspaceFiles: *wsFiles}
	for _, name := range reg.Tasks() {
		t, err := reg.Task(name)
		if err != nil {
			return err
		}
		t.MaxSubmissionBytes = *maxSub
	}
	reg.RunRoot = *runs
	iso, _ := sandbox.Probe()
	if *isolation == sandbox.IsolationNone {
		iso = "none (requested)"
	}
	ln, err := httpenv.Listen(*addr)
	if err != nil {
		return err
	}
	if err := auth.check(ln, keys, stderr); err != nil {
		return err
	}
	srv := httpenv.NewServer(reg, httpenv.ServerOptions{MaxEnvs: *maxEnvs, Keys: keys, MaxEnvsPerKey: *perKey,
		Logf: func(format string, a ...any) { fmt.Fprintf(stderr, "env serve: "+format+"\n", a...) }})
	fmt.Fprintf(stdout, "serving %d task(s) [%s] on http://%s (sandbox: %s; %s)\n", len(reg.Tasks()), strings.Join(reg.Tasks(), ", "), ln.Addr(), iso, authNote(keys))
	return srv.ServeListener(ctx, ln)
}

func runEnvList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cmdEnvList.NewFlagSet(stderr)
	rf := addRegistryFlags(fs)
	if err := cmdEnvList.Parse(fs, args, stderr, false); err != nil {
		return err
	}
	reg, err := rf.open(*rf.root == "")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-28s %-9s %-7s %-14s %-26s %s\n", "task", "metric", "better", "id", "targets", "leaderboards (public/private)")
	for _, name := range reg.Tasks() {
		t, err := reg.Task(name)
		if err != nil {
			return err
		}
		dir := "lower"
		if t.HigherIsBetter {
			dir = "higher"
		}
		fmt.Fprintf(stdout, "%-28s %-9s %-7s %-14s %-26s %d/%d\n", t.Name, t.Metric.Name, dir, t.IDColumn, strings.Join(t.Targets, ","), len(t.PublicBoard), len(t.PrivateBoard))
	}
	return nil
}
