package envbridge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// samplesDir holds the real MLE-Dojo samples (not part of the project).
const samplesDir = "../../shared/mledojo"

func loadJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("MLE-Dojo samples not present: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestTemplatesMatchRealTrajectory rebuilds every user turn of the real
// MLE-Dojo run from its env history and compares byte for byte.
func TestTemplatesMatchRealTrajectory(t *testing.T) {
	var traj []struct{ Role, Content string }
	var hist struct {
		Actions []struct {
			Result   map[string]any `json:"result"`
			Feedback map[string]any `json:"feedback"`
		} `json:"actions"`
	}
	loadJSON(t, filepath.Join(samplesDir, "trajectories/agent_trajectory.json"), &traj)
	loadJSON(t, filepath.Join(samplesDir, "trajectories/env_history.json"), &hist)
	const maxSteps, budget = 10, 10000
	if got := InstructionPrompt(maxSteps, budget); got != traj[0].Content {
		t.Fatalf("instruction prompt differs:\n%s", firstDiff(got, traj[0].Content))
	}
	if got := FormatInitialPrompt(Observation{KeyRemainingSteps: maxSteps, KeyRemainingSeconds: float64(budget)}); got != traj[0].Content {
		t.Fatalf("FormatInitialPrompt differs")
	}
	n := 0
	for k := 1; 2*k < len(traj); k++ {
		act := hist.Actions[k-1]
		obs := Observation{"action_status": act.Result["status"], "feedback": act.Feedback,
			KeyRemainingSteps: maxSteps - k, KeyRemainingSeconds: budget}
		got := FormatObservation(obs)
		want := traj[2*k].Content
		if traj[2*k].Role != "user" {
			t.Fatalf("message %d role %q", 2*k, traj[2*k].Role)
		}
		if got != want {
			t.Errorf("user turn %d differs:\n%s", 2*k, firstDiff(got, want))
		}
		n++
	}
	if n != 9 {
		t.Fatalf("compared %d user turns, want 9", n)
	}
	// Every assistant turn of the real run parses to the action the env saw.
	for k := 1; 2*k-1 < len(traj); k++ {
		a, err := ParseAction(traj[2*k-1].Content)
		if err != nil {
			t.Fatalf("assistant turn %d: %v", 2*k-1, err)
		}
		if k-1 < len(hist.Actions) {
			var h struct {
				Actions []struct{ Action string } `json:"actions"`
			}
			loadJSON(t, filepath.Join(samplesDir, "trajectories/env_history.json"), &h)
			if a.Name != h.Actions[k-1].Action {
				t.Errorf("assistant turn %d parsed as %s, env saw %s", 2*k-1, a.Name, h.Actions[k-1].Action)
			}
		}
	}
}

func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-40)
	return "at byte " + itoa(i) + ":\n got: " + quoteClip(a[lo:]) + "\nwant: " + quoteClip(b[lo:])
}

func quoteClip(s string) string {
	if len(s) > 120 {
		s = s[:120]
	}
	return strings.ReplaceAll(s, "\n", `\n`)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestFormatObservationFallbacks(t *testing.T) {
	obs := Observation{"feedback": "Environment reset successfully"}
	got := FormatObservationBudget(obs, 3, 60)
	if !strings.Contains(got, "Environment reset successfully") || !strings.Contains(got, "You still have 3 actions available.") || !strings.Contains(got, "You still have 60 seconds left.") {
		t.Fatalf("got %q", got)
	}
	inv := InvalidActionObservation("parse: bad", Observation{"best_raw_score": 0.5, KeyRemainingSteps: 4})
	got = FormatObservation(inv)
	if !strings.HasPrefix(got, "Execution failed, details below:") || !strings.Contains(got, "Invalid action: parse: bad") || !strings.Contains(got, "You still have 4 actions") {
		t.Fatalf("invalid-action turn: %q", got)
	}
}
