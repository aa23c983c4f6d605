package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"smtrain/envbridge/sandbox"
	"smtrain/envbridge/sandbox/safefs"
)

const causesSyntax = "- Python syntax is invalid\n    - Indentation errors\n    - Missing closing brackets/quotes\n    - Import errors"

// run executes code in the sandbox on the episode's workspace and returns
// MLE-Dojo's run_in_sandbox dict plus the raw result.
func (e *Env) run(ctx context.Context, code string) (omap, sandbox.Result, error) {
	cfg := e.opts.Sandbox
	left := e.timeLeft()
	if left <= 0 {
		left = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = sandbox.DefaultTimeout
	}
	if left < cfg.Timeout {
		cfg.Timeout = left
		cfg.CPUSeconds = 0 // recomputed from the timeout
	}
	job := sandbox.Job{Code: code, WorkDir: e.workspace}
	if e.bwrap() {
		job.ReadOnly = []sandbox.Bind{{Src: e.task.PublicDir, Dst: SandboxDataDir}}
	}
	res, err := cfg.Run(ctx, job)
	if err != nil {
		return nil, res, fmt.Errorf("local env: sandbox: %w", err)
	}
	status := "SUCCESS"
	errText := res.Stderr
	if res.ExitCode != 0 || res.TimedOut || res.Signal != "" {
		status = "FAILED"
		if note := limitNote(res, cfg); note != "" {
			if errText != "" && !strings.HasSuffix(errText, "\n") {
				errText += "\n"
			}
			errText += note
		}
		// Code that fails silently (e.g. SystemExit(3)) leaves the error
		// empty, as in MLE-Dojo: the feedback reads "Execution failed:".
	}
	out := res.Stdout
	if res.Truncated {
		out += "\n[output truncated]"
	}
	if res.WorkspaceError != "" {
		out += "\n[workspace: " + res.WorkspaceError + "; entries past the limit were not prepared for the next run]"
	}
	return omap{{"status", status}, {"output", out}, {"error", errText},
		{"execution_time", fmt.Sprintf("%.2fs", res.Duration.Seconds())}}, res, nil
}

// limitNote explains a limit the sandbox enforced.
func limitNote(res sandbox.Result, cfg sandbox.Config) string {
	switch {
	case res.TimedOut || res.Limit == "timeout":
		return fmt.Sprintf("TimeoutError: execution exceeded the time limit of %.0fs and was killed", cfg.Timeout.Seconds())
	case res.Limit == "memory":
		return "MemoryError: execution exceeded the memory limit and was killed"
	case res.Limit == "cpu":
		return "TimeoutError: execution exceeded the CPU time limit and was killed"
	case res.Limit == "file-size":
		return "OSError: execution exceeded the file size limit"
	case res.Limit == "processes":
		return "OSError: execution exceeded the process limit"
	case res.Limit == "output":
		return "[output limit reached; output truncated]"
	case res.Signal != "":
		return "Process terminated by signal: " + res.Signal
	}
	return ""
}

// isSyntaxError tells a compile-time failure (no traceback header, last
// line a SyntaxError) from a runtime one.
func isSyntaxError(res sandbox.Result) bool {
	if res.ExitCode == 0 || strings.Contains(res.Stderr, "Traceback (most recent call last)") {
		return false
	}
	lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
	last := lines[len(lines)-1]
	for _, p := range []string{"SyntaxError", "IndentationError", "TabError"} {
		if strings.HasPrefix(last, p) {
			return true
		}
	}
	return false
}

// validateCode is MLE-Dojo's CodeValidationInterface.validate: a syntax
// check and a run; nothing is scored and submission.csv is removed.
func (e *Env) validateCode(ctx context.Context, code string) (omap, error) {
	runtime, res, err := e.run(ctx, code)
	if err != nil {
		return nil, err
	}
	syntax := omap{{"status", "SUCCESS"}, {"details", "Code syntax is valid"}}
	if isSyntaxError(res) {
		syntax = mledojoError("CodeSyntaxError", "Code syntax validation failed", res.Stderr, causesSyntax)
	}
	status := "FAILED"
	if str(syntax, "status") == "SUCCESS" && str(runtime, "status") == "SUCCESS" {
		status = "SUCCESS"
	}
	ws, err := e.openWorkspace()
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	_ = ws.RemoveAll(submissionRel, safefs.Limits{})
	return omap{{"syntax", syntax}, {"runtime", runtime}, {"status", status}}, nil
}

// submissionRel is submission.csv relative to the workspace.
const submissionRel = "output/submission.csv"

// openWorkspace opens the workspace for host-side access through safefs
// (no agent-made link is ever followed) and makes sure output/ is a real
// folder: agent code may have replaced it with a link or a file.
func (e *Env) openWorkspace() (*safefs.Dir, error) {
	ws, err := safefs.OpenDir(e.workspace)
	if err != nil {
		return nil, fmt.Errorf("local env: workspace: %w", err)
	}
	if m, _, err := ws.Lstat("output"); err == nil && m.IsDir() {
		return ws, nil
	}
	if err := ws.RemoveAll("output", safefs.Limits{}); err != nil {
		ws.Close()
		return nil, fmt.Errorf("local env: workspace: %w", err)
	}
	if err := ws.Mkdir("output", 0o777); err != nil {
		ws.Close()
		return nil, fmt.Errorf("local env: workspace: %w", err)
	}
	return ws, nil
}

// shownPath is rel (relative to the workspace) as agent code names it.
func (e *Env) shownPath(rel string) string {
	if e.bwrap() {
		return "/workspace/" + rel
	}
	return filepath.Join(e.workspace, rel)
}

// executeCode is MLE-Dojo's CodeExecutionInterface.execute plus the
// environment's score bookkeeping. It returns the result and the reward.
// The submission is looked at and read only through safefs.
func (e *Env) executeCode(ctx context.Context, code string) (omap, float64, error) {
	ws, err := e.openWorkspace()
	if err != nil {
		return nil, 0, err
	}
	// A stale submission from an earlier run must not be scored again.
	rmErr := ws.RemoveAll(submissionRel, safefs.Limits{})
	ws.Close()
	if rmErr != nil {
		return nil, 0, fmt.Errorf("local env: removing the old submission: %w", rmErr)
	}
	execution, res, err := e.run(ctx, code)
	if err != nil {
		return nil, 0, err
	}
	if str(execution, "status") == "FAILED" {
		return omap{{"status", "FAILED"}, {"execution", execution}, {"submission", nil}}, 0, nil
	}
	ws, err = e.openWorkspace()
	if err != nil {
		return nil, 0, err
	}
	defer ws.Close()
	shown := e.shownPath(submissionRel)
	var submission omap
	var reward float64
	mode, _, lerr := ws.Lstat(submissionRel)
	switch {
	case lerr != nil && slices.Contains(res.RemovedLinks, submissionRel),
		lerr == nil && mode&fs.ModeSymlink != 0:
		_ = ws.RemoveAll(submissionRel, safefs.Limits{})
		submission = mledojoError("InvalidSubmissionError", "Failed to read submission file",
			shown+" is a symbolic link; write a regular file", causesInvalid)
	case errors.Is(lerr, fs.ErrNotExist):
		submission = mledojoError("SubmissionNotFoundError", "Submission file not found",
			"No submission file found at "+shown, causesNotFound)
	case lerr != nil:
		return nil, 0, fmt.Errorf("local env: submission: %w", lerr)
	case !mode.IsRegular():
		_ = ws.RemoveAll(submissionRel, safefs.Limits{})
		submission = mledojoError("InvalidSubmissionError", "Failed to read submission file",
			shown+" "+refusal(safefs.Refusal(mode)), causesInvalid)
	default:
		e.submissions++
		archived := fmt.Sprintf("output/submission_%d.csv", e.submissions)
		if err := ws.Rename(submissionRel, archived); err != nil {
			// Agent code took the archive's name (e.g. a directory named
			// submission_1.csv): score the file where it is.
			archived = submissionRel
		}
		submission, reward = e.evaluate(ws, archived, shown, code)
		if archived == submissionRel {
			_ = ws.RemoveAll(submissionRel, safefs.Limits{})
		}
	}
	status := "FAILED"
	if str(submission, "status") == "SUCCESS" {
		status = "SUCCESS"
	}
	return omap{{"execution", execution}, {"submission", submission}, {"status", status}}, reward, nil
}

// evaluate scores an archived submission (rel, under the workspace ws)
// and updates the best scores.
func (e *Env) evaluate(ws *safefs.Dir, rel, shown, code string) (omap, float64) {
	score, err := e.task.scoreFile(ws, rel, shown)
	if err != nil {
		var inv *invalidSubmission
		if errors.As(err, &inv) {
			return mledojoError("InvalidSubmissionError", inv.msg, clipText(inv.details, maxDetailsShown), causesInvalid), 0
		}
		return mledojoError("EvaluationError", "Failed to evaluate submission", "Error during metric calculation: "+clipText(err.Error(), maxDetailsShown), causesEval), 0
	}
	pos, avg, err := e.task.position(score)
	if err != nil {
		return mledojoError("LeaderboardError", "Failed to calculate leaderboard position", "Error processing leaderboard data: "+err.Error(), ""), 0
	}
	e.currentRaw, e.curPos = score, avg
	if e.isBetter(score) {
		e.bestRaw, e.bestPos, e.bestCode = score, avg, code
	}
	return omap{{"status", "SUCCESS"}, {"raw_score", score}, {"details", "Submission processed successfully"}, {"position_score", pos}}, avg
}

func (e *Env) isBetter(score float64) bool {
	if math.IsNaN(score) {
		return false
	}
	best, ok := e.bestRaw.(float64)
	if !ok || math.IsNaN(best) {
		return true
	}
	if e.task.HigherIsBetter {
		return score > best
	}
	return score < best
}

// pandasColumn types a CSV column the way pandas.read_csv would: all
// integers -> int, all numbers -> float (empty cells NaN), True/False ->
// bool, else strings.
func pandasColumn(col []string) []any {
	out := make([]any, len(col))
	allInt, allNum, allBool := true, true, true
	for _, s := range col {
		t := strings.TrimSpace(s)
		if _, err := strconv.ParseInt(t, 10, 64); err != nil {
			allInt = false
		}
		if _, err := strconv.ParseFloat(t, 64); err != nil && t != "" {
			allNum = false
		}
		if t != "True" && t != "False" {
			allBool = false
		}
	}
	for i, s := range col {
		t := strings.TrimSpace(s)
		switch {
		case allInt:
			n, _ := strconv.ParseInt(t, 10, 64)
			out[i] = int(n)
		case allNum:
			if t == "" {
				out[i] = math.NaN()
			} else {
				out[i], _ = strconv.ParseFloat(t, 64)
			}
		case allBool:
			out[i] = t == "True"
		default:
			out[i] = s
		}
	}
	return out
}
