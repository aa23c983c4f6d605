#!/usr/bin/env bash
# make dojo: a policy that earns reward in the built-in MLE-Dojo-style
# environments, end to end, with a progress display:
#  1. collect expert episodes (smtrain collect) on the training data draws
#     (task seeds TRAIN_SEEDS) and, for the baseline, on the held-out draws
#     (HELDOUT_SEEDS, which no training episode uses);
#  2. fit a policy on the training episodes (smtrain fit, MLE by default),
#     keeping a checkpoint every CKPT_EVERY steps;
#  3. roll out every kept checkpoint on the held-out draws (smtrain rollout,
#     free decoding: the curve), and the final one also under
#     -constrain action;
#  4. write RESULTS/README.md (command, wall time, per-task table),
#     RESULTS/summary.json and RESULTS/curve.svg (reward, scoring rate and
#     valid-code rate over training).
# Knobs (environment): STEPS, N_LAYER, N_EMBD, N_HEAD, N_POSITIONS, VOCAB,
# BATCH, LR, OBJECTIVE, STYLE (expert episodes: canonical or varied, see
# smtrain collect -h), EPISODES (expert episodes per training seed),
# TRAIN_SEEDS, HELDOUT_SEEDS, CKPT_EVERY, TEMP, WORK (scratch, removed
# first), RESULTS; FROM=rollout reuses WORK's episodes and checkpoints and
# redoes only the rollouts and the report.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-./bin/smtrain}
WORK=${WORK:-runs/dojo}
RESULTS=${RESULTS:-results/dojo}
STEPS=${STEPS:-300}
N_LAYER=${N_LAYER:-2}
N_EMBD=${N_EMBD:-128}
N_HEAD=${N_HEAD:-4}
N_POSITIONS=${N_POSITIONS:-2048}
VOCAB=${VOCAB:-4096}
BATCH=${BATCH:-4}
LR=${LR:-3e-3}
OBJECTIVE=${OBJECTIVE:-mle}
STYLE=${STYLE:-canonical}
EPISODES=${EPISODES:-12}
TRAIN_SEEDS=${TRAIN_SEEDS:-"2024 2025 2026 2027 2028"}
HELDOUT_SEEDS=${HELDOUT_SEEDS:-"101 102 103 104"}
CKPT_EVERY=${CKPT_EVERY:-100}
TEMP=${TEMP:-0.3}
MAX_STEPS=${MAX_STEPS:-10}
MAX_NEW=${MAX_NEW:-800}   # the prompt is cut to n_positions - MAX_NEW: 800 keeps the canonical episodes whole at 2048 (prompt <= 1228, code reply <= 711 tokens)
CURVE_SEEDS=${CURVE_SEEDS:-"$(echo $HELDOUT_SEEDS | cut -d' ' -f1-2)"}

FROM=${FROM:-collect}   # collect | rollout (reuse WORK's episodes and fit, redo rollouts and report)
start=$(date +%s)
if [ "$FROM" = collect ]; then rm -rf "$WORK"; else rm -rf "$WORK/rollout"; fi
mkdir -p "$WORK" "$RESULTS"
# Private task caches: the built-in tasks are materialised per data seed
# into one folder per task, so runs with other seeds must not share it.
case $WORK in /*) abswork=$WORK ;; *) abswork=$PWD/$WORK ;; esac
export XDG_CACHE_HOME="$abswork/cache" TMPDIR="$abswork/tmp"
mkdir -p "$TMPDIR"
stage() { printf '\n== [%s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$(( $(date +%s) - start ))" "$*"; }
run() { echo "+ $*"; "$@"; }

if [ "$FROM" = collect ]; then
stage "1/4 expert episodes: $EPISODES per training seed ($TRAIN_SEEDS), 3 per held-out seed ($HELDOUT_SEEDS)"
for s in $TRAIN_SEEDS; do
  run $BIN collect -task all -episodes "$EPISODES" -seed "$s" -task_seed "$s" -style "$STYLE" -out "$WORK/expert/seed-$s" -quiet | tail -1
done
for s in $HELDOUT_SEEDS; do
  run $BIN collect -task all -episodes 3 -seed "$s" -task_seed "$s" -style "$STYLE" -out "$WORK/expert-heldout/seed-$s" -quiet | tail -1
done

stage "2/4 fit: L$N_LAYER D$N_EMBD H$N_HEAD T$N_POSITIONS, $STEPS steps of batch $BATCH, objective $OBJECTIVE"
run $BIN fit -data "$WORK/expert" -out "$WORK/fit" -objective "$OBJECTIVE" -steps "$STEPS" \
  -n_layer "$N_LAYER" -n_embd "$N_EMBD" -n_head "$N_HEAD" -n_positions "$N_POSITIONS" -vocab_size "$VOCAB" \
  -batch_size "$BATCH" -lr "$LR" -min_lr "$(awk "BEGIN{print $LR/10}")" -warmup_steps 30 -val_fraction 0.05 \
  -eval_every "$CKPT_EVERY" -eval_samples 0 -log_every 50 -ckpt_every "$CKPT_EVERY" -keep_last 1000 -progress on

fi

rollout() { # ckpt out seeds [flags]
  local ck=$1 out=$2 seeds=$3; shift 3
  for s in $seeds; do
    $BIN rollout -ckpt "$ck" -env builtin:all -episodes 3 -parallel 2 -seed "$s" -max_steps "$MAX_STEPS" \
      -max_new "$MAX_NEW" -temperature "$TEMP" -out "$out/seed-$s" "$@" | tail -1 ||
      echo "(rollout exited with status $?: its failed episodes count as reward 0)"
  done
}
stage "3/4 rollouts on held-out data draws"
final=$(ls -d "$WORK"/fit/ckpt-* | sort | tail -1)
for ck in $(ls -d "$WORK"/fit/ckpt-* | sort); do
  step=$((10#${ck##*ckpt-}))
  if [ "$ck" = "$final" ]; then
    echo "checkpoint $step (final): free decoding on seeds $HELDOUT_SEEDS"
    rollout "$ck" "$WORK/rollout/free-$step" "$HELDOUT_SEEDS"
    echo "checkpoint $step (final): -constrain action on seeds $HELDOUT_SEEDS"
    rollout "$ck" "$WORK/rollout/constrained-$step" "$HELDOUT_SEEDS" -constrain action
  else
    echo "checkpoint $step: free decoding on seeds $CURVE_SEEDS"
    rollout "$ck" "$WORK/rollout/free-$step" "$CURVE_SEEDS"
  fi
done

stage "4/4 report"
wall=$(( $(date +%s) - start ))
CMD="STEPS=$STEPS N_LAYER=$N_LAYER N_EMBD=$N_EMBD N_HEAD=$N_HEAD N_POSITIONS=$N_POSITIONS VOCAB=$VOCAB BATCH=$BATCH LR=$LR OBJECTIVE=$OBJECTIVE STYLE=$STYLE EPISODES=$EPISODES TRAIN_SEEDS='$TRAIN_SEEDS' HELDOUT_SEEDS='$HELDOUT_SEEDS' CKPT_EVERY=$CKPT_EVERY TEMP=$TEMP make dojo"
python3 - "$WORK" "$RESULTS" "$wall" "$CMD" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import glob, json, os, re, sys
work, res, wall, cmd, ncpu, load = sys.argv[1:7]
wall = int(wall)

def episodes(root):
    """Per-episode records of a rollout or collect folder tree."""
    out = []
    for h in sorted(glob.glob(os.path.join(root, "**", "env_history", "history.json"), recursive=True)):
        d = os.path.dirname(os.path.dirname(h))
        with open(h) as f:
            hist = json.load(f)
        code = err = 0
        for a in hist.get("actions", []):
            if a.get("action") in ("validate_code", "execute_code"):
                code += 1
                r = a.get("result") if isinstance(a.get("result"), dict) else {}
                ex = r.get("execution") if isinstance(r.get("execution"), dict) else None
                if (ex or r).get("status") == "FAILED":  # the code raised
                    err += 1
        task = re.sub(r"-\d+$", "", os.path.basename(d))
        rew = float(hist.get("best_position_score") or 0)
        out.append({"task": task, "dir": d, "reward": rew, "scored": rew > 0, "code": code, "code_err": err,
                    "actions": len(hist.get("actions", []))})
    return out

def rollout_extra(root):
    """Valid-action counts and backspaces from the rollouts' summary.json files."""
    v = n = bk = eps = 0
    for s in glob.glob(os.path.join(root, "**", "summary.json"), recursive=True):
        with open(s) as f:
            j = json.load(f)
        for r in j.get("results") or j.get("Results") or []:
            v += r.get("valid_actions", 0)
            n += r.get("valid_actions", 0) + r.get("invalid_actions", 0)
            bk += r.get("backspaces", 0)
            eps += 1
    return (v / n if n else float("nan")), (bk / eps if eps else float("nan"))

def agg(eps):
    if not eps:
        return None
    code = sum(e["code"] for e in eps)
    return {"episodes": len(eps), "mean_reward": sum(e["reward"] for e in eps) / len(eps),
            "scoring_rate": sum(e["scored"] for e in eps) / len(eps),
            "code_actions": code,
            "code_error_rate": (sum(e["code_err"] for e in eps) / code) if code else None}

def by_task(eps):
    tasks = sorted({e["task"] for e in eps})
    return {t: agg([e for e in eps if e["task"] == t]) for t in tasks}

expert = episodes(os.path.join(work, "expert-heldout"))
runs = {}
curve = []
for d in sorted(glob.glob(os.path.join(work, "rollout", "*-*"))):
    kind, step = os.path.basename(d).rsplit("-", 1)
    eps = episodes(d)
    va, bk = rollout_extra(d)
    a = agg(eps) or {}
    a.update({"valid_action_rate": va, "backspaces_per_episode": bk, "per_task": by_task(eps)})
    runs[f"{kind}-{step}"] = a
    if kind == "free":
        curve.append((int(step), a))
curve.sort()
final = max(curve)[0] if curve else None
free, con = runs.get(f"free-{final}"), runs.get(f"constrained-{final}")
ex = agg(expert)
summary = {"command": cmd, "wall_s": wall, "cpus": int(ncpu), "loadavg_at_end": load,
           "expert_heldout": ex, "expert_per_task": by_task(expert), "runs": runs, "final_step": final}

def ratio(a):
    return a["mean_reward"] / ex["mean_reward"] if a and ex and ex["mean_reward"] > 0 else float("nan")

def f(x, p=3):
    return "–" if x is None or x != x else f"{x:.{p}f}"

lines = []
lines.append("# make dojo: a policy that earns reward on held-out data draws\n")
lines.append(f"Command: `{cmd}` (scripts/dojo.sh). Wall time {wall} s ({wall/60:.1f} min) on {ncpu} cores "
             f"(load average at the end {load}; the machine was shared with other jobs).\n")
lines.append("Held-out: the rollouts and the expert baseline use task data seeds "
             "that no training episode was collected on (the training episodes use TRAIN_SEEDS).\n")
if free and con and ex:
    lines.append("| who | episodes | mean reward | × expert | scoring rate | valid-action rate | code error rate | ⌫ / episode |")
    lines.append("|---|---|---|---|---|---|---|---|")
    lines.append(f"| scripted expert | {ex['episodes']} | {f(ex['mean_reward'])} | 1.00 | {f(ex['scoring_rate'],2)} | – | {f(ex['code_error_rate'],2)} | – |")
    for name, a in (("policy, free decoding", free), ("policy, -constrain action", con)):
        lines.append(f"| {name} | {a['episodes']} | {f(a['mean_reward'])} | {f(ratio(a),2)} | {f(a['scoring_rate'],2)} | "
                     f"{f(a['valid_action_rate'],2)} | {f(a['code_error_rate'],2)} | {f(a['backspaces_per_episode'],1)} |")
    lines.append("\nPer task (mean reward / scoring rate):\n")
    lines.append("| task | expert | policy, free | policy, constrained |")
    lines.append("|---|---|---|---|")
    et = by_task(expert)
    for t in sorted(et):
        cells = []
        for a in (et.get(t), free["per_task"].get(t), con["per_task"].get(t)):
            cells.append(f"{f(a['mean_reward'])} / {f(a['scoring_rate'],2)} (n {a['episodes']})" if a else "–")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    ok = lambda a: a["scoring_rate"] >= 0.5 and ratio(a) >= 0.5
    lines.append(f"\nTargets (scoring rate ≥ 0.5 and mean reward ≥ 0.5 × expert): free decoding "
                 f"{'met' if ok(free) else 'missed'}, constrained {'met' if ok(con) else 'missed'}.\n")
lines.append("\nOver training (free decoding, seeds of CURVE_SEEDS; the final checkpoint on all held-out seeds):\n")
lines.append("| step | episodes | mean reward | scoring rate | valid-action rate | code error rate | ⌫ / episode |")
lines.append("|---|---|---|---|---|---|---|")
for step, a in curve:
    lines.append(f"| {step} | {a.get('episodes', 0)} | {f(a.get('mean_reward'))} | {f(a.get('scoring_rate'),2)} | "
                 f"{f(a.get('valid_action_rate'),2)} | {f(a.get('code_error_rate'),2)} | {f(a.get('backspaces_per_episode'),1)} |")
lines.append("\n![reward and valid-code rate over training](curve.svg)\n")

# curve.svg: mean reward, scoring rate and valid-code rate (1 - code error rate) by step.
W, H, L, B = 640, 360, 60, 40
xs = [s for s, _ in curve] or [0]
xmax = max(xs) or 1
def px(x): return L + (W - L - 20) * x / xmax
def py(y): return H - B - (H - B - 20) * y
series = [("mean reward", "#1f77b4", lambda a: a.get("mean_reward")),
          ("scoring rate", "#2ca02c", lambda a: a.get("scoring_rate")),
          ("valid-code rate", "#d62728", lambda a: None if a.get("code_error_rate") is None else 1 - a["code_error_rate"])]
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{L}" y1="{py(0)}" x2="{W-20}" y2="{py(0)}" stroke="black"/>',
       f'<line x1="{L}" y1="{py(0)}" x2="{L}" y2="{py(1)}" stroke="black"/>']
for t in (0, 0.25, 0.5, 0.75, 1):
    svg.append(f'<text x="{L-8}" y="{py(t)+4}" text-anchor="end">{t:g}</text>')
for s in xs:
    svg.append(f'<text x="{px(s)}" y="{H-B+16}" text-anchor="middle">{s}</text>')
svg.append(f'<text x="{(W+L)/2}" y="{H-6}" text-anchor="middle">training step</text>')
if ex:
    svg.append(f'<line x1="{L}" y1="{py(ex["mean_reward"])}" x2="{W-20}" y2="{py(ex["mean_reward"])}" stroke="#1f77b4" stroke-dasharray="4 4"/>')
    svg.append(f'<text x="{W-24}" y="{py(ex["mean_reward"])-4}" text-anchor="end" fill="#1f77b4">expert mean reward</text>')
for i, (name, col, get) in enumerate(series):
    pts = [(px(s), py(get(a))) for s, a in curve if get(a) is not None]
    if pts:
        svg.append(f'<polyline fill="none" stroke="{col}" stroke-width="2" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        for x, y in pts:
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{col}"/>')
    svg.append(f'<text x="{L+10}" y="{20+14*i}" fill="{col}">{name}</text>')
svg.append("</svg>")

def atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)

atomic(os.path.join(res, "curve.svg"), "\n".join(svg) + "\n")
atomic(os.path.join(res, "summary.json"), json.dumps(summary, indent=1) + "\n")
atomic(os.path.join(res, "table.md"), "\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo
echo "Outputs: $RESULTS/table.md (tables), $RESULTS/summary.json, $RESULTS/curve.svg; runs in $WORK (fit, rollouts, expert episodes)."
