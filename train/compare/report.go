package compare

import (
	"fmt"
	"math"
	"strings"
)

// Report renders report.md: the regime, the exact command, a table of
// means ± standard errors across seeds per objective and noise level, the
// per-run rows, and links to the plots.
func Report(res *Results, plots []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# smtrain compare: %s\n\n", res.Task)
	fmt.Fprintf(&b, "Regime: %s.\n\n", res.Regime)
	c := res.Base
	fmt.Fprintf(&b, "Model: %d layers, width %d, %d heads, context %d. Training: %d steps, batch %d, lr %g → %g (warm-up %d), seeds %s, noise kind %s (noise as action: %v). SequenceMatch: γ %g, c %g, λ %g after %d warm-start steps, replay every %d steps (%d samples), value on %s, weighting %s.\n\n",
		c.NLayer, c.NEmbd, c.NHead, c.NPositions, c.Steps, c.BatchSize, c.LR, c.MinLR, c.WarmupSteps,
		joinInts(res.Seeds), c.NoiseKind, c.NoiseAsAction, c.Gamma, c.C, c.Lambda, c.WarmStart, c.ReplayEvery, c.ReplaySamples, c.ValueOn, c.Weighting)
	fmt.Fprintf(&b, "Reproduce:\n\n```\n%s\n```\n\n", res.Command)
	fmt.Fprintf(&b, "Wall time of this invocation: %.0f s with %d runs in parallel (%d distinct runs: %d trained, %d resumed, %d re-evaluated, %d reused from an earlier invocation).\n\n",
		res.WallS, res.Parallel, res.Counts.Runs, res.Counts.Trained, res.Counts.Resumed,
		res.Counts.Evaluated-res.Counts.Trained-res.Counts.Resumed, res.Counts.Skipped)

	var cols []Metric
	for _, m := range res.Metrics {
		if m.Table {
			cols = append(cols, m)
		}
	}
	fmt.Fprintf(&b, "## Mean ± standard error across seeds\n\n")
	fmt.Fprintf(&b, "Standard error = sample standard deviation / √n over seeds (n = seeds; — when n < 2).\n\n")
	b.WriteString("| objective | noise η | n |")
	for _, m := range cols {
		fmt.Fprintf(&b, " %s |", m.Label)
	}
	b.WriteString("\n|---|---|---|")
	for range cols {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, s := range res.Summary {
		n := 0
		for _, st := range s.Metrics {
			n = max(n, st.N)
		}
		fmt.Fprintf(&b, "| %s | %g | %d |", s.Objective, s.Noise, n)
		for _, m := range cols {
			st, ok := s.Metrics[m.Key]
			if !ok {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(&b, " %s |", fmtStat(st))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nRows of objectives that do not train on augmented data (mle) share one run per seed across noise levels.\n")

	if len(res.Paired) > 0 {
		b.WriteString("\n## Paired differences\n\nPer seed (same initialisation, data order and decoding streams), a − b; mean ± standard error over the seeds, and the seeds where a is higher.\n\n")
		b.WriteString("| metric | noise η | a | b | a − b | n | seeds a higher |\n|---|---|---|---|---|---|---|\n")
		for _, p := range res.Paired {
			fmt.Fprintf(&b, "| %s | %g | %s | %s | %s | %d | %d/%d |\n", p.Metric, p.Noise, p.A, p.B, fmtStat(p.Stat), p.Stat.N, p.Higher, p.Stat.N)
		}
	}

	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n\n", p, p)
		}
	}

	b.WriteString("## Runs\n\n| run | objective | seed | noise η | steps | train s | eval s |")
	for _, m := range cols {
		fmt.Fprintf(&b, " %s |", m.Key)
	}
	b.WriteString("\n|---|---|---|---|---|---|---|")
	for range cols {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range res.Rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %g | %d | %.1f | %.1f |", r.Run, r.Objective, r.Seed, r.Noise, r.Steps, r.TrainS, r.EvalS)
		for _, m := range cols {
			v, ok := r.Metrics[m.Key]
			if !ok {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(&b, " %.4g |", v)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func fmtStat(s Stat) string {
	if math.IsNaN(s.Mean) {
		return "—"
	}
	if s.SE == nil {
		return fmt.Sprintf("%.4g ± —", s.Mean)
	}
	return fmt.Sprintf("%.4g ± %.2g", s.Mean, *s.SE)
}

func joinInts(xs []int64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ",")
}

// SummaryTable is a plain-text table of the summary (mean ± s.e. of the
// table metrics) for the console.
func SummaryTable(res *Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %-6s", "objective", "noise")
	var cols []Metric
	for _, m := range res.Metrics {
		if m.Table {
			cols = append(cols, m)
			fmt.Fprintf(&b, " %20s", m.Key)
		}
	}
	b.WriteString("\n")
	for _, s := range res.Summary {
		fmt.Fprintf(&b, "%-10s %-6g", s.Objective, s.Noise)
		for _, m := range cols {
			st, ok := s.Metrics[m.Key]
			if !ok {
				fmt.Fprintf(&b, " %20s", "—")
				continue
			}
			fmt.Fprintf(&b, " %20s", fmtStat(st))
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
