package local

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"smtrain/envbridge"
	"smtrain/envbridge/httpenv"
	"smtrain/envbridge/sandbox"
)

// hostileEnv is a local env on loan-default with the real sandbox.
func hostileEnv(t *testing.T, opts Options) (*Env, *Task) {
	t.Helper()
	needPython(t)
	task := builtinTask(t, "loan-default")
	if opts.WorkRoot == "" {
		opts.WorkRoot = workRoot(t)
	}
	if opts.Sandbox.Timeout == 0 {
		opts.Sandbox.Timeout = 20 * time.Second
	}
	env, err := New(task, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, info, err := env.Reset(ctx, 0); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("isolation: %v", info["isolation"])
	}
	return env, task
}

// stepWithin runs a step and fails the test (without waiting for it) when
// it does not return within d: a host read that blocks holds the env's
// lock forever. It reports whether the step returned.
func stepWithin(t *testing.T, env *Env, a envbridge.Action, d time.Duration) (envbridge.StepResult, bool) {
	t.Helper()
	type out struct {
		res envbridge.StepResult
		err error
	}
	ch := make(chan out, 1)
	go func() {
		res, err := env.Step(ctx, a)
		ch <- out{res, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatalf("step: %v", o.err)
		}
		return o.res, true
	case <-time.After(d):
		t.Errorf("step did not return within %v: the host blocked on an agent-made file", d)
		return envbridge.StepResult{}, false
	}
}

// goodSubmission writes a valid (unscored-quality) submission.
func goodSubmission(env *Env) string {
	return "import csv, os\nrows = list(csv.DictReader(open(os.path.join(" + pyStr(env.dataPath()) + ", 'test.csv'))))\n" +
		"with open(os.path.join(" + pyStr(env.outputPath()) + ", 'submission.csv'), 'w') as f:\n    f.write('id,default\\n')\n" +
		"    for r in rows:\n        f.write(r['id'] + ',0.5\\n')\n"
}

// TestSubmissionLinkAttacks: a submission.csv that is, or goes through,
// an agent-made symbolic link is never read on the host. The first case
// is the reward hack of issue 16 (a chain of links inside output/ that
// resolves, on the host, to the private answers: accuracy 1.0 on the old
// code); the last replaces output/ itself with a link to a host folder
// whose submission.csv the old code renamed and scored.
func TestSubmissionLinkAttacks(t *testing.T) {
	env, task := hostileEnv(t, Options{})
	defer env.Close()
	answer := filepath.Join(task.PrivateDir, "test_answer.csv")
	victimDir := t.TempDir()
	os.Chmod(victimDir, 0o755)
	victim := filepath.Join(victimDir, "submission.csv")
	ans, err := os.ReadFile(answer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, ans, 0o644); err != nil {
		t.Fatal(err)
	}
	out := pyStr(env.outputPath())
	chain := func(n int, target string) string {
		return "import os\nos.chdir(" + out + ")\n" +
			"os.makedirs('" + strings.Repeat("c/", n) + "', exist_ok=True)\n" +
			"os.symlink('" + strings.Repeat("../", n) + "', '" + strings.Repeat("c/", n) + "p')\n" +
			"os.symlink('" + strings.Repeat("c/", n) + "p/" + strings.Repeat("../", n+1) + "' + " + pyStr(strings.TrimPrefix(target, "/")) + ", 'submission.csv')\n"
	}
	// As text, output/c^n/p/../^(n+1)/x stays inside output/ (p, c^n and
	// output cancel out); on the host p is output/, so the n+1 ups climb
	// to / once n+1 reaches the depth of output/.
	depth := strings.Count(filepath.Join(env.Workspace(), "output"), "/")
	cases := []struct{ name, code, want string }{
		{"chain of depth d", chain(depth, answer), "submission.csv is a symbolic link; write a regular file"},
		{"chain of depth d+4", chain(depth+4, answer), "submission.csv is a symbolic link; write a regular file"},
		{"chain of depth 60", chain(60, answer), "submission.csv is a symbolic link; write a regular file"},
		{"absolute", "import os\nos.symlink(" + pyStr(answer) + ", os.path.join(" + out + ", 'submission.csv'))\n",
			"submission.csv is a symbolic link; write a regular file"},
		{"inside", "import os\nos.chdir(" + out + ")\nopen('real.csv', 'w').write('id,default\\n')\nos.symlink('real.csv', 'submission.csv')\n",
			"submission.csv is a symbolic link; write a regular file"},
		{"through a directory link", "import os\nos.chdir(" + out + ")\n" +
			"os.makedirs('" + strings.Repeat("e/", depth) + "', exist_ok=True)\nos.symlink('" + strings.Repeat("../", depth) + "', '" + strings.Repeat("e/", depth) + "p')\n" +
			"os.symlink('" + strings.Repeat("e/", depth) + "p/" + strings.Repeat("../", depth+1) + "' + " + pyStr(strings.TrimPrefix(task.PrivateDir, "/")) + ", 'd')\nos.symlink('d/test_answer.csv', 'submission.csv')\n",
			"submission.csv is a symbolic link; write a regular file"},
		{"/dev/zero", "import os\nos.symlink('/dev/zero', os.path.join(" + out + ", 'submission.csv'))\n",
			"submission.csv is a symbolic link; write a regular file"},
		{"output folder replaced", "import os, shutil\nos.chdir(" + out + ")\n" +
			"os.makedirs('" + strings.Repeat("e/", depth) + "', exist_ok=True)\nos.symlink('" + strings.Repeat("../", depth) + "', '" + strings.Repeat("e/", depth) + "p')\n" +
			"os.chdir('..')\nos.rename('output', 'old')\nos.symlink('old/" + strings.Repeat("e/", depth) + "p/" + strings.Repeat("../", depth+2) + "' + " + pyStr(strings.TrimPrefix(victimDir, "/")) + ", 'output')\n",
			"SubmissionNotFoundError"},
	}
	for _, c := range cases {
		res, ok := stepWithin(t, env, exec(c.code), 60*time.Second)
		if !ok {
			return
		}
		fb := envbridge.FeedbackText(res.Obs)
		if !strings.Contains(fb, c.want) || res.Reward != 0 || env.Stats().BestRaw != nil {
			t.Errorf("%s: reward %v best %v, want %q in\n%s", c.name, res.Reward, env.Stats().BestRaw, c.want, fb)
		}
		if strings.Contains(fb, env.Workspace()) && env.bwrap() {
			t.Errorf("%s: feedback reveals the host path of the workspace:\n%s", c.name, fb)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != string(ans) {
		t.Errorf("the host file behind a linked output/ was moved or changed: %v", err)
	}
	if ents, _ := os.ReadDir(victimDir); len(ents) != 1 {
		t.Errorf("host folder behind a linked output/ changed: %d entries", len(ents))
	}
	res, _ := stepWithin(t, env, exec(goodSubmission(env)), 60*time.Second)
	if res.Obs["action_status"] != "SUCCESS" || res.Reward <= 0 {
		t.Fatalf("a regular submission after the attacks: %v\n%s", res.Reward, envbridge.FeedbackText(res.Obs))
	}
}

// TestSubmissionSpecialFiles: a FIFO, a socket or a directory named
// submission.csv is refused at once with what it is (the old code blocked
// forever on the FIFO, holding the env's lock, and named the host path of
// the workspace for the socket and the directory).
func TestSubmissionSpecialFiles(t *testing.T) {
	env, _ := hostileEnv(t, Options{})
	sub := pyStr(filepath.Join(env.outputPath(), "submission.csv"))
	cases := []struct{ name, code, want string }{
		{"fifo", "import os\nos.mkfifo(" + sub + ")\n", "submission.csv is not a regular file (a FIFO); write a regular file"},
		{"socket", "import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind(" + sub + ")\n", "submission.csv is not a regular file (a socket); write a regular file"},
		{"directory", "import os\nos.mkdir(" + sub + ")\n", "submission.csv is not a regular file (a directory); write a regular file"},
	}
	for _, c := range cases {
		t0 := time.Now()
		res, ok := stepWithin(t, env, exec(c.code), 15*time.Second)
		if !ok {
			return // the env is stuck: do not Close it
		}
		fb := envbridge.FeedbackText(res.Obs)
		if !strings.Contains(fb, c.want) || res.Reward != 0 {
			t.Errorf("%s: want %q in\n%s", c.name, c.want, fb)
		}
		if env.bwrap() && strings.Contains(fb, env.Workspace()) {
			t.Errorf("%s: feedback reveals the host path of the workspace:\n%s", c.name, fb)
		}
		t.Logf("%s: refused in %v", c.name, time.Since(t0).Round(time.Millisecond))
	}
	res, _ := stepWithin(t, env, exec(goodSubmission(env)), 60*time.Second)
	if res.Obs["action_status"] != "SUCCESS" || res.Reward <= 0 {
		t.Fatalf("a regular submission after the attacks: %v\n%s", res.Reward, envbridge.FeedbackText(res.Obs))
	}
	env.Close()
}

// TestSubmissionSize: a submission over the size cap is refused naming
// the limit, and one with rows past the expected count is refused at the
// first extra row (streamed, not read whole).
func TestSubmissionSize(t *testing.T) {
	env, task := hostileEnv(t, Options{})
	defer env.Close()
	if got := task.submissionLimit(); got != DefaultMaxSubmissionBytes {
		t.Fatalf("default limit for %d rows: %d", len(task.answers.rows), got)
	}
	task.MaxSubmissionBytes = 1 << 20
	sub := pyStr(filepath.Join(env.outputPath(), "submission.csv"))
	cases := []struct{ name, code, want string }{
		{"2 MiB", "f = open(" + sub + ", 'w')\nf.write('id,default\\n' + 'x' * ((2 << 20) - 11))\n",
			"is 2097152 bytes, larger than the submission size limit of 1048576 bytes (1 MiB); the host did not read it."},
		{"sparse 200 MiB", "f = open(" + sub + ", 'w')\nf.truncate(200 << 20)\n",
			"is 209715200 bytes, larger than the submission size limit of 1048576 bytes (1 MiB); the host did not read it."},
		{"rows past the count", "f = open(" + sub + ", 'w')\nf.write('id,default\\n')\nf.write('1,0.5\\n' * 5000)\n",
			"Number of rows in submission (more than 300) does not match ground truth (300)"},
	}
	for _, c := range cases {
		res, ok := stepWithin(t, env, exec(c.code), 60*time.Second)
		if !ok {
			return
		}
		fb := envbridge.FeedbackText(res.Obs)
		if !strings.Contains(fb, "InvalidSubmissionError") || !strings.Contains(fb, c.want) {
			t.Errorf("%s: want %q in\n%.2000s", c.name, c.want, fb)
		}
	}
}

// TestHardLinksCannotCross: agent code cannot hard-link a file from
// another mount (the data bind, system binds, /tmp) into the workspace:
// link(2) across mount points fails with EXDEV, even for bind mounts of
// one file system. So hard links give no way to the host's files.
func TestHardLinksCannotCross(t *testing.T) {
	env, _ := hostileEnv(t, Options{})
	defer env.Close()
	if !env.bwrap() {
		t.Skip("SKIP: without bwrap the agent runs on the host file system (fs.protected_hardlinks is the only guard)")
	}
	code := "import os, errno\nfor src in ('/workspace/data/train.csv', '/usr/bin/python3', '/etc/passwd', '/tmp/x'):\n" +
		"    if src == '/tmp/x':\n        open(src, 'w').write('x')\n" +
		"    try:\n        os.link(src, '/workspace/output/submission.csv')\n        print('LINKED', src)\n" +
		"    except OSError as e:\n        print(src, errno.errorcode[e.errno])\n"
	res := step(t, env, exec(code))
	fb := envbridge.FeedbackText(res.Obs)
	if strings.Contains(fb, "LINKED") || strings.Count(fb, "EXDEV") != 4 {
		t.Fatalf("hard links across mounts:\n%s", fb)
	}
}

// TestWorkspaceQuota: writes past the workspace's byte quota and files
// past its file quota fail inside the sandbox with ENOSPC (the old code
// let 8 x 256 MB fill the host disk), the env keeps serving, and Close
// unmounts and removes the workspace.
func TestWorkspaceQuota(t *testing.T) {
	root := workRoot(t)
	env, _ := hostileEnv(t, Options{WorkRoot: root, Sandbox: sandbox.Config{Timeout: 20 * time.Second,
		WorkspaceBytes: 8 << 20, WorkspaceFiles: 300}})
	ws := env.Workspace()
	if !isMount(ws) {
		env.Close()
		t.Skip("SKIP: workspaces have no quota here (no bwrap, or this process cannot mount: not root or no CAP_SYS_ADMIN)")
	}
	code := "import os, errno\nos.chdir(" + pyStr(env.outputPath()) + ")\n" +
		"def fill(name, n):\n    try:\n        with open(name, 'wb') as f:\n            for _ in range(n):\n                f.write(b'x' * (1 << 20))\n" +
		"        print(name, 'written')\n    except OSError as e:\n        print(name, errno.errorcode[e.errno])\n" +
		"for i in range(4):\n    fill('big%d' % i, 4)\n" +
		"made = 0\ntry:\n    for i in range(2000):\n        open('f%d' % i, 'w').close()\n        made += 1\nexcept OSError as e:\n    print('files', made, errno.errorcode[e.errno])\n"
	t0 := time.Now()
	res := step(t, env, envbridge.Action{Name: envbridge.ActValidateCode, Params: map[string]any{"code": code}})
	fb := envbridge.FeedbackText(res.Obs)
	t.Logf("fill run: %v\n%s", time.Since(t0).Round(time.Millisecond), fb)
	if !strings.Contains(fb, "big0 written") || !strings.Contains(fb, "ENOSPC") || strings.Contains(fb, "big3 written") ||
		!strings.Contains(fb, "files ") || strings.Contains(fb, "files 2000") {
		t.Fatalf("quota not enforced:\n%s", fb)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(ws, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("workspace after the run: %d of %d bytes used, %d of %d inodes used",
		(st.Blocks-st.Bfree)*uint64(st.Bsize), st.Blocks*uint64(st.Bsize), st.Files-st.Ffree, st.Files)
	// Free some room and the env serves a regular submission.
	res = step(t, env, exec("import os, glob\nfor p in glob.glob(os.path.join("+pyStr(env.outputPath())+", '*')):\n    os.remove(p)\n"+goodSubmission(env)))
	if res.Obs["action_status"] != "SUCCESS" || res.Reward <= 0 {
		t.Fatalf("after the quota run: %v\n%s", res.Reward, envbridge.FeedbackText(res.Obs))
	}
	env.Close()
	if isMount(ws) {
		t.Fatal("workspace still mounted after Close")
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("left in the work root after Close: %v", ents)
	}
}

// isMount reports whether dir is a mount point.
func isMount(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// TestServerCleansStaleWorkspaces: an environment process killed with
// SIGKILL leaves its workspace (and quota mount) behind; a server started
// on the same work root removes it, and leaves the workspace of a live
// environment alone.
func TestServerCleansStaleWorkspaces(t *testing.T) {
	task := builtinTask(t, "flower-species")
	root := workRoot(t)
	cmd := osexec.Command(os.Args[0], "-test.run=^TestHelperEnvOwner$", "-test.v")
	cmd.Env = append(os.Environ(), "SMTRAIN_HELPER_WORKROOT="+root, "SMTRAIN_HELPER_TASK="+task.Dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stale string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if ws, ok := strings.CutPrefix(sc.Text(), "WORKSPACE "); ok {
			stale = ws
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if stale == "" {
		t.Fatal("helper did not report its workspace")
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("the killed process's workspace is already gone: %v", err)
	}
	live, err := New(task, Options{WorkRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, _, err := live.Reset(ctx, 0); err != nil {
		t.Fatal(err)
	}
	reg, err := NewDirRegistry(task.Dir)
	if err != nil {
		t.Fatal(err)
	}
	reg.WorkRoot = root
	var logs []string
	srv := httpenv.NewServer(reg, httpenv.ServerOptions{Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	defer srv.Close()
	if _, err := os.Lstat(stale); !os.IsNotExist(err) || isMount(stale) {
		t.Fatalf("stale workspace %s not removed at server start: %v (logs %q)", filepath.Base(stale), err, logs)
	}
	if _, err := os.Stat(filepath.Join(live.Workspace(), "output")); err != nil {
		t.Fatalf("a live workspace was removed: %v", err)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "removed 2 stale workspace(s)") {
		t.Fatalf("server log: %q", logs)
	}
	t.Log(logs[0])
	// Left: the live env's workspace and run folder (with their locks and
	// image) only.
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), filepath.Base(live.Workspace())) && !strings.HasPrefix(e.Name(), filepath.Base(live.RunDir())) {
			t.Errorf("left in the work root after the clean-up: %s", e.Name())
		}
	}
}

// TestHelperEnvOwner is the process killed by TestServerCleansStaleWorkspaces.
func TestHelperEnvOwner(t *testing.T) {
	root := os.Getenv("SMTRAIN_HELPER_WORKROOT")
	if root == "" {
		t.Skip("helper process only")
	}
	task, err := LoadTask(os.Getenv("SMTRAIN_HELPER_TASK"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := New(task, Options{WorkRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Reset(ctx, 0); err != nil {
		t.Fatal(err)
	}
	fmt.Println("WORKSPACE " + env.Workspace())
	time.Sleep(time.Minute)
}

// TestMountinfoHidesWorkspace: with the workspace on its own quota mount,
// /proc/self/mountinfo inside the sandbox shows "/" as the root of
// /workspace, not the workspace's host path (the old bind of a host
// folder showed it). The public data's host folder is still listed
// (bubblewrap binds show their source path); see the package doc of
// envbridge/sandbox.
func TestMountinfoHidesWorkspace(t *testing.T) {
	env, _ := hostileEnv(t, Options{})
	defer env.Close()
	if !env.bwrap() {
		t.Skip("SKIP: without bwrap agent code runs on the host and sees its paths")
	}
	if !isMount(env.Workspace()) {
		t.Skip("SKIP: this process cannot mount: the workspace is a bind of a host folder whose path mountinfo shows")
	}
	res := step(t, env, envbridge.Action{Name: envbridge.ActValidateCode, Params: map[string]any{"code": "print(open('/proc/self/mountinfo').read())"}})
	fb := envbridge.FeedbackText(res.Obs)
	if strings.Contains(fb, env.Workspace()) || strings.Contains(fb, filepath.Base(env.Workspace())) {
		t.Fatalf("mountinfo reveals the workspace's host path %s:\n%s", env.Workspace(), fb)
	}
	for _, line := range strings.Split(fb, "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == "/workspace" {
			t.Logf("mountinfo: %s", line)
			if f[3] != "/" {
				t.Fatalf("root of /workspace is %q", f[3])
			}
		}
	}
}

// TestAttacksOverHTTP drives the attacks of issue 16 through the HTTP
// server: after each one the same environment serves a regular, scored
// submission, the server's RSS stays bounded (logged), and after DELETE
// no workspace, mount or sandbox process is left.
func TestAttacksOverHTTP(t *testing.T) {
	needPython(t)
	task := builtinTask(t, "loan-default")
	root := workRoot(t)
	reg, err := NewDirRegistry(task.Dir)
	if err != nil {
		t.Fatal(err)
	}
	reg.WorkRoot = root
	reg.Sandbox = sandbox.Config{Timeout: 20 * time.Second, WorkspaceBytes: 128 << 20, WorkspaceFiles: 2000}
	srv := httpenv.NewServer(reg, httpenv.ServerOptions{})
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	post := func(path string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := http.Post(ts.URL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, m, err)
		}
		return m
	}
	created := post("/v1/envs", map[string]any{"task": task.Name, "seed": 1})
	id := created["env_id"].(string)
	dataPath, outPath := SandboxDataDir, SandboxOutputDir
	if created["info"].(map[string]any)["isolation"] != sandbox.IsolationBwrap {
		t.Skip("SKIP: bwrap unusable here; the attack paths below are written for /workspace")
	}
	sub := pyStr(outPath + "/submission.csv")
	good := "import csv\nrows = list(csv.DictReader(open('" + dataPath + "/test.csv')))\nwith open(" + sub + ", 'w') as f:\n" +
		"    f.write('id,default\\n')\n    for r in rows:\n        f.write(r['id'] + ',0.5\\n')\n"
	priv := strings.TrimPrefix(filepath.Join(task.PrivateDir, "test_answer.csv"), "/")
	attacks := []struct{ name, code, want string }{
		{"link chain to the answers", "import os\nos.chdir('" + outPath + "')\nos.makedirs('c/' * 40)\nos.symlink('../' * 40, 'c/' * 40 + 'p')\n" +
			"os.symlink('c/' * 40 + 'p/' + '../' * 41 + " + pyStr(priv) + ", 'submission.csv')\n", "is a symbolic link"},
		{"fifo", "import os\nos.mkfifo(" + sub + ")\n", "(a FIFO)"},
		{"/dev/zero link", "import os\nos.symlink('/dev/zero', " + sub + ")\n", "is a symbolic link"},
		{"sparse 200 MiB", "f = open(" + sub + ", 'w')\nf.truncate(200 << 20)\n", "larger than the submission size limit of 67108864 bytes (64 MiB)"},
		{"endless rows (18 MB)", "f = open(" + sub + ", 'w')\nf.write('id,default\\n' + '1,0.5\\n' * 3000000)\n", "Number of rows in submission (more than 300)"},
		{"60 MB, 200 KB ids", "f = open(" + sub + ", 'w')\nf.write('id,default\\n')\nfor i in range(300):\n    f.write(str(i) + '9' * 200000 + ',0.5\\n')\n",
			"9999... [199921 more bytes]"},
		{"60 MB, duplicate ids", "f = open(" + sub + ", 'w')\nf.write('id,default\\n')\nfor i in range(300):\n    f.write('9' * 200000 + ',0.5\\n')\n",
			"9999... [199920 more bytes]"},
		{"fill the disk", "f = open('" + outPath + "/big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n", "No space left on device"},
		{"many files", "import os\nos.makedirs('" + outPath + "/many')\nfor i in range(100000):\n    open('" + outPath + "/many/%d' % i, 'w').close()\n", "No space left on device"},
	}
	for _, a := range attacks {
		t0 := time.Now()
		r := post("/v1/envs/"+id+"/step", map[string]any{"action": "execute_code", "params": map[string]any{"code": a.code}})
		fb := envbridge.FeedbackText(r["observation"].(map[string]any))
		if !strings.Contains(fb, a.want) || r["reward"].(float64) != 0 || len(fb) > 8000 {
			t.Errorf("%s: reward %v, want %q in\n%.1500s", a.name, r["reward"], a.want, fb)
		}
		took := time.Since(t0)
		clean := "import os, shutil\nfor n in os.listdir('" + outPath + "'):\n    p = os.path.join('" + outPath + "', n)\n" +
			"    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)\n"
		r = post("/v1/envs/"+id+"/step", map[string]any{"action": "execute_code", "params": map[string]any{"code": clean + good}})
		if rw, _ := r["reward"].(float64); rw <= 0 {
			t.Fatalf("after %s the env does not score a regular submission:\n%s", a.name, envbridge.FeedbackText(r["observation"].(map[string]any)))
		}
		t.Logf("%-26s answered in %6v; next action scored; server RSS %s", a.name, took.Round(time.Millisecond), rss())
	}
	req, _ := http.NewRequest("DELETE", ts.URL+"/v1/envs/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	resp.Body.Close()
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if strings.Contains(e.Name(), "-ws-") {
			t.Errorf("left in the work root after DELETE: %s", e.Name())
		}
	}
	if kids := children(os.Getpid()); len(kids) > 0 {
		t.Errorf("processes left: %v", kids)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), root) {
		t.Errorf("a workspace mount is left under %s", root)
	}
}

// rss is this process's resident set size, from /proc/self/status.
func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// children lists the pids whose parent is pid.
func children(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []string
	for _, f := range strings.Fields(string(b)) {
		out = append(out, f)
	}
	return out
}

// TestFallbackKeepsPublicFilesRootOwned: without bwrap the workspace's
// data/ holds hard links to the task's public files; the chown of the
// workspace to the sandbox uid must skip them (the old walk handed the
// task's own train.csv to agent code, which could then rewrite it for
// every later episode).
func TestFallbackKeepsPublicFilesRootOwned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the uid drop (and so the chown) happens only as root")
	}
	env, task := hostileEnv(t, Options{Sandbox: sandbox.Config{Isolation: sandbox.IsolationNone, Timeout: 20 * time.Second}})
	defer env.Close()
	pub := filepath.Join(task.PublicDir, "train.csv")
	before, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	code := "import os\np = os.path.join(" + pyStr(env.dataPath()) + ", 'train.csv')\nprint('nlink', os.stat(p).st_nlink)\n" +
		"try:\n    os.chmod(p, 0o666)\n    open(p, 'a').write('tampered\\n')\n    print('TAMPERED')\nexcept OSError as e:\n    print('refused', e.errno)\n"
	res := step(t, env, envbridge.Action{Name: envbridge.ActValidateCode, Params: map[string]any{"code": code}})
	fb := envbridge.FeedbackText(res.Obs)
	after, _ := os.ReadFile(pub)
	var st unix.Stat_t
	unix.Stat(pub, &st)
	if string(after) != string(before) || st.Uid != 0 || (strings.Contains(fb, "nlink 2") && strings.Contains(fb, "TAMPERED")) {
		t.Fatalf("the task's public file was handed to agent code (owner %d):\n%s", st.Uid, fb)
	}
	if !strings.Contains(fb, "nlink 2") {
		t.Log("data/ is a copy here (the workspace is its own file system), not hard links; TestChownSkipsHardLinks covers the linked case")
	}
}

// TestArchiveNameTaken: agent code that takes the name the host archives
// the next submission under (a non-empty directory submission_1.csv) does
// not make the step fail (the old code answered with an infrastructure
// error); the submission is scored where it is.
func TestArchiveNameTaken(t *testing.T) {
	env, _ := hostileEnv(t, Options{})
	defer env.Close()
	code := "import os\nos.makedirs(os.path.join(" + pyStr(env.outputPath()) + ", 'submission_1.csv', 'x'))\n" + goodSubmission(env)
	res := step(t, env, exec(code))
	if res.Obs["action_status"] != "SUCCESS" || res.Reward <= 0 {
		t.Fatalf("reward %v\n%s", res.Reward, envbridge.FeedbackText(res.Obs))
	}
	res = step(t, env, exec(goodSubmission(env)))
	if res.Obs["action_status"] != "SUCCESS" || res.Reward <= 0 {
		t.Fatalf("next submission: reward %v\n%s", res.Reward, envbridge.FeedbackText(res.Obs))
	}
}

// TestSubmissionDirectoryTree: a non-empty directory named submission.csv
// is refused and removed with its contents, so the next execute_code can
// clear the stale submission and score a regular one (a plain unlink of
// the directory failed and turned every later step into an
// infrastructure error).
func TestSubmissionDirectoryTree(t *testing.T) {
	env, _ := hostileEnv(t, Options{})
	defer env.Close()
	code := "import os\nos.makedirs(os.path.join(" + pyStr(env.outputPath()) + ", 'submission.csv', 'a', 'b'))\n"
	res := step(t, env, exec(code))
	if fb := envbridge.FeedbackText(res.Obs); !strings.Contains(fb, "(a directory); write a regular file") {
		t.Fatalf("directory tree:\n%s", fb)
	}
	step(t, env, exec(code))
	step(t, env, envbridge.Action{Name: envbridge.ActValidateCode, Params: map[string]any{"code": code}})
	res = step(t, env, exec(goodSubmission(env)))
	if res.Obs["action_status"] != "SUCCESS" || res.Reward <= 0 {
		t.Fatalf("after a directory tree: reward %v\n%s", res.Reward, envbridge.FeedbackText(res.Obs))
	}
}
