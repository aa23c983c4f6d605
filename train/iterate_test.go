package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smtrain/envbridge/rollout"
)

// TestKeepEpisodes: failed episodes and rewards below the minimum are
// dropped, at most topK per task are kept, highest reward first (ties by
// index), tasks in name order.
func TestKeepEpisodes(t *testing.T) {
	rs := []rollout.EpisodeResult{
		{Index: 0, Task: "b", Reward: 0.5}, {Index: 1, Task: "a", Reward: 0.9}, {Index: 2, Task: "a", Reward: 0.2},
		{Index: 3, Task: "a", Reward: 0.9}, {Index: 4, Task: "a", Reward: 0.95, Failed: "crash"}, {Index: 5, Task: "b", Reward: 0},
		{Index: 6, Task: "a", Reward: 0.7}, {Index: 7, Task: "c", Reward: 0.05},
	}
	got := KeepEpisodes(rs, 0.1, 2)
	var ids []int
	for _, r := range got {
		ids = append(ids, r.Index)
	}
	if want := []int{1, 3, 0}; len(ids) != len(want) || ids[0] != 1 || ids[1] != 3 || ids[2] != 0 {
		t.Fatalf("kept %v, want %v", ids, want)
	}
	if n := len(KeepEpisodes(rs, 0, 0)); n != 7 {
		t.Fatalf("min 0, no top-k: kept %d, want 7 (all but the failed one)", n)
	}
}

// TestCopyEpisodes copies only the run folder's histories, not other files.
func TestCopyEpisodes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "flower-0003")
	for _, f := range []string{"agent_history/trajectory.json", "env_history/history.json", "workspace/big.bin"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := t.TempDir()
	dirs, err := CopyEpisodes([]rollout.EpisodeResult{{Dir: src}}, dst, "iter-2")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 1 || filepath.Base(dirs[0]) != "iter-2-flower-0003" {
		t.Fatalf("dirs %v", dirs)
	}
	b, err := os.ReadFile(filepath.Join(dirs[0], "env_history", "history.json"))
	if err != nil || string(b) != "env_history/history.json" {
		t.Fatalf("history %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "workspace")); !os.IsNotExist(err) {
		t.Fatalf("workspace copied (%v)", err)
	}
	if err := WriteIterSummary(dst, "smtrain iterate -x", []IterRow{{Iteration: 0, HeldoutReward: 0.1, Ckpt: "/elsewhere/run"}, {Iteration: 1, Kept: 2, HeldoutReward: 0.4, Ckpt: filepath.Join(dst, "iter-1", "fit")}}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dst, "summary.md"))
	if err != nil || !strings.Contains(string(md), "| 1 | iter-1/fit | 0 | 0.000 | 2 | 0 | 0 | 0.400 |") {
		t.Fatalf("summary.md %v:\n%s", err, md)
	}
}
