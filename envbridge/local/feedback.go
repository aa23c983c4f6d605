package local

import (
	"fmt"
	"strings"
)

// The feedback texts below follow MLE-Dojo's BaseFeedback
// (mledojo/gym/feedback.py) including its indentation, so observations
// read exactly like those of a real MLE-Dojo run.

func str(m omap, k string) string {
	v, _ := m.get(k)
	s, _ := v.(string)
	return s
}

func sub(m omap, k string) omap {
	v, _ := m.get(k)
	o, _ := v.(omap)
	return o
}

// infoFeedback renders a request_info result.
func infoFeedback(result omap) string {
	content := "No information available or request failed."
	if str(result, "status") == "SUCCESS" {
		d, _ := result.get("data")
		content = "Your requested information: " + pyRepr(d)
	}
	return "=== Competition Info ===\n                        " + content + "\n                        "
}

// errorFeedback is MLE-Dojo's _format_error_feedback.
func errorFeedback(r omap) string {
	get := func(k, def string) string {
		v, ok := r.get(k)
		if !ok || v == nil {
			return def
		}
		return fmt.Sprint(v)
	}
	return get("error_type", "Unknown error") + ": " + get("error", "Unknown error") + "\n" +
		"Error Details: " + get("details", "No details available") + "\n" +
		"Potential Causes: " + get("potential_causes", "No potential causes available")
}

// validationFeedback renders a validate_code result.
func validationFeedback(result omap) string {
	syntax, runtime := sub(result, "syntax"), sub(result, "runtime")
	sf := "Syntax check passed: Valid Python code"
	if str(syntax, "status") != "SUCCESS" {
		sf = errorFeedback(syntax)
	}
	rf := ""
	if str(runtime, "status") == "SUCCESS" {
		rf = "Runtime check passed: Code executes without errors"
		if _, ok := runtime.get("output"); ok {
			rf += "\nCode output: " + str(runtime, "output")
		}
	} else {
		rf = errorFeedback(runtime)
	}
	et := str(runtime, "execution_time")
	if et == "" {
		et = "N/A"
	}
	return "=== Code Validation Results ===\n                            " + sf +
		"\n                            " + rf +
		"\n                            Code execution time: " + et + "\n                            "
}

// executionFeedback renders an execute_code result; best holds the
// environment's best raw and position scores (nil when none yet).
func executionFeedback(result omap, bestRaw, bestPos any) string {
	exec := sub(result, "execution")
	var ef string
	if str(exec, "status") == "SUCCESS" {
		ef = "Execution successful\nCode execution time: " + str(exec, "execution_time")
		if out := str(exec, "output"); out != "" {
			ef += "\nCode output: " + out
		}
	} else {
		e := "Unknown error"
		if v, ok := exec.get("error"); ok && v != nil {
			e = fmt.Sprint(v)
		}
		ef = "Execution failed: " + e
		if v, ok := exec.get("details"); ok {
			ef += "\nError Details: " + reprOrNone(v)
		}
		if v, ok := exec.get("potential_causes"); ok {
			ef += "\nPotential Causes: " + reprOrNone(v)
		}
	}
	sf := ""
	if s := sub(result, "submission"); s != nil {
		var status, lb, score string
		if str(s, "status") == "SUCCESS" {
			status = "Submission successful"
			var lines []string
			ps := sub(s, "position_score")
			var avg float64
			n := 0
			for _, b := range []string{"private", "public"} {
				if bp := sub(ps, b); bp != nil {
					pos, _ := bp.get("position")
					tot, _ := bp.get("total")
					lines = append(lines, fmt.Sprintf("%s Leaderboard: Position %v / %v", strings.ToUpper(b[:1])+b[1:], pos, tot))
					if v, ok := bp.get("position_score"); ok {
						f, _ := v.(float64)
						avg += f
						n++
					}
				}
			}
			lb = strings.Join(lines, "\n")
			raw, _ := s.get("raw_score")
			sc := []string{"Raw Score: " + pyRepr(raw)}
			if n > 0 {
				sc = append(sc, fmt.Sprintf("Average Position Score: %.4f", avg/float64(n)))
			}
			sc = append(sc, "Best Raw Score: "+reprOrNA(bestRaw), "Best Position Score: "+reprOrNA(bestPos))
			score = strings.Join(sc, "\n")
		} else {
			et := str(s, "error_type")
			if et == "" {
				et = "unknown"
			}
			e := str(s, "error")
			if e == "" {
				e = "Unknown"
			}
			status = fmt.Sprintf("Submission error (%s): %s", et, e)
			if v, ok := s.get("details"); ok {
				status += "\nError details: " + reprOrNone(v)
			}
		}
		sf = "=== Submission Evaluation ===\n                                " + status +
			"\n                                " + lb +
			"\n                                " + score + "\n                                "
	}
	out := "=== Code Execution Results ===\n                            " + ef +
		"\n\n                            " + sf + "\n                            "
	return strings.TrimSpace(out)
}

func reprOrNone(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}

func reprOrNA(v any) string {
	if v == nil {
		return "N/A"
	}
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}
