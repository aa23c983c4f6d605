package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestStaleWorkspaces: a workspace whose owner died (its lock no longer
// held) is unmounted and removed by CleanStaleWorkspaces; a live one and
// unrelated files stay.
func TestStaleWorkspaces(t *testing.T) {
	root := t.TempDir()
	cfg := Config{WorkspaceBytes: 1 << 20, WorkspaceFiles: 64}
	live, q, err := cfg.NewWorkspace(root, "task-ws-")
	if err != nil {
		t.Fatal(err)
	}
	defer RemoveWorkspace(live)
	t.Logf("quota: %s", q)
	dead, _, err := cfg.NewWorkspace(root, "task-ws-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "model.bin"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(root, "unrelated")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	// The owner of dead dies: its lock is released, its mount stays.
	wsMu.Lock()
	wsLocks[dead].Close()
	delete(wsLocks, dead)
	wsMu.Unlock()
	if mountUnavailable() == "" && !isMountPoint(dead) {
		t.Fatal("workspace is not a quota mount although mounting works")
	}
	removed, err := CleanStaleWorkspaces(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{filepath.Base(dead)}) {
		t.Fatalf("removed %v, want only %s", removed, filepath.Base(dead))
	}
	for _, p := range []string{dead, dead + wsLockSuffix} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("%s still there: %v", p, err)
		}
	}
	for _, p := range []string{live, live + wsLockSuffix, other} {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("%s removed: %v", p, err)
		}
	}
	if err := RemoveWorkspace(live); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
