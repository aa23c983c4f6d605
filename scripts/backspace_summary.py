#!/usr/bin/env python3
"""Tables for the README from scripts/backspace_experiment.sh's output.

Usage: scripts/backspace_summary.py WORK TASK [TASK...]
  WORK is the experiment's work folder (default of the experiment script:
  /tmp/smtrain-backspace); reads WORK/TASK/results.json and the replay
  events of WORK/TASK/runs/*/metrics.jsonl. Prints markdown.
"""
import glob
import json
import math
import os
import sys


def mean_se(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    n = len(xs)
    if n == 0:
        return None, None, 0
    m = sum(xs) / n
    if n < 2:
        return m, None, n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, sd / math.sqrt(n), n


def fmt(m, se, pct=False):
    if m is None:
        return "—"
    k = 100 if pct else 1
    if se is None:
        return f"{m * k:.1f}" if pct else f"{m:.3f}"
    return f"{m * k:.1f} ± {se * k:.1f}" if pct else f"{m:.3f} ± {se:.3f}"


COLS = [
    ("acc_sample_bk", "acc T=1, ⌫ allowed (%)"),
    ("acc_sample_nobk", "acc T=1, ⌫ masked (%)"),
    ("bk_gain_sample", "allowed − masked (points)"),
    ("bk_recall_sample", "⌫ recall (%)"),
    ("false_bk_rate_sample", "false-⌫ rate (%)"),
    ("bk_precision_sample", "⌫ precision (%)"),
    ("corrections_sample", "corrected answers (%)"),
    ("acc_greedy_bk", "acc greedy, ⌫ allowed (%)"),
]


def task_table(work, task):
    res = json.load(open(os.path.join(work, task, "results.json")))
    objs = res["objectives"]
    rows = res["rows"]
    out = [f"#### {task}: {res['regime']}", "",
           f"Command: `{res['command']}`  ",
           f"Wall time of the invocation that wrote results.json: {res['wall_s']:.0f} s (earlier invocations: walltimes.txt); seeds {','.join(map(str, res['seeds']))}.", ""]
    out.append("| objective:noise | n | " + " | ".join(c[1] for c in COLS) + " | gain / s.e. |")
    out.append("|---|---|" + "---|" * len(COLS) + "---|")
    for o in objs:
        line = [o]
        n = 0
        ratio = "—"
        cells = []
        for key, _ in COLS:
            xs = [r["metrics"].get(key) for r in rows if r["objective"] == o]
            m, se, k = mean_se(xs)
            n = max(n, k)
            cells.append(fmt(m, se, pct=True))
            if key == "bk_gain_sample" and m is not None and se:
                ratio = f"{m / se:.1f}"
        out.append("| " + " | ".join([o, str(n)] + cells + [ratio]) + " |")
    out.append("")
    # paired differences against mle and chi2mix vs bc (acc T=1, ⌫ allowed)
    out.append("| paired difference, acc T=1 ⌫ allowed (points) | mean ± s.e. | seeds higher |")
    out.append("|---|---|---|")
    for p in res.get("paired", []):
        if p["metric"] != "acc_sample_bk":
            continue
        d = p["diff"]
        se = d.get("se")
        out.append(f"| {p['a']} − {p['b']} | {fmt(d['mean'], se, pct=True)} | {p['seeds_a_higher']}/{d['n']} |")
    out.append("")
    # replay refreshes of SequenceMatch runs after warm start
    rep = {}
    for path in sorted(glob.glob(os.path.join(work, task, "runs", "chi2mix-*", "metrics.jsonl"))):
        label = os.path.basename(os.path.dirname(path)).split("-s")[0]
        for line in open(path):
            ev = json.loads(line)
            if ev.get("split") != "replay":
                continue
            x = ev.get("extra", {})
            r = rep.setdefault(label, {"refreshes": 0, "gens": 0, "bk": 0, "with": 0.0, "div": 0, "divbk": 0})
            r["refreshes"] += 1
            r["gens"] += x.get("generations", 0)
            r["bk"] += x.get("backspaces", 0)
            r["with"] += x.get("with_bkspc_share", 0) * x.get("generations", 0)
            r["div"] += x.get("diverged", 0)
            r["divbk"] += x.get("bkspc_after_divergence", 0)
    if rep:
        out.append("| SequenceMatch run (all seeds) | refreshes | generations | ⌫ per generation | generations with ⌫ | first divergences followed by ⌫ |")
        out.append("|---|---|---|---|---|---|")
        for label, r in sorted(rep.items()):
            g = max(r["gens"], 1)
            dv = f"{r['divbk']}/{r['div']} ({100 * r['divbk'] / r['div']:.1f}%)" if r["div"] else "—"
            out.append(f"| {label} | {r['refreshes']} | {r['gens']} | {r['bk'] / g:.3f} | {100 * r['with'] / g:.1f}% | {dv} |")
        out.append("")
    return "\n".join(out)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    work = sys.argv[1]
    for task in sys.argv[2:]:
        print(task_table(work, task))


if __name__ == "__main__":
    main()
