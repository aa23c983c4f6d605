#!/usr/bin/env bash
# Benchmark: smtrain (Go, bench/cmd/smbench) against the same GPT-2 model in
# PyTorch 1.13 (bench/torch_peer.py, Debian python3-torch), in one run.
#
#   scripts/bench.sh            (ROUNDS=3 REPS=3 by default)
#
# Each measurement is its own process (so peak RSS is that task's), and the
# two implementations alternate round by round so that load from other
# processes hits both alike. The peer runs at each thread layout of
# PEER_LAYOUTS (default 1 torch thread + 2 OpenBLAS threads, DESIGN.md 7.2's
# best, and 2 + 1) and each task is scored at the peer's best; smtrain runs
# with GOMAXPROCS = all cores and OPENBLAS_NUM_THREADS=1 (its kernels split
# the work themselves). Writes bench/results.json (medians over all reps,
# ratios smtrain/PyTorch, machine and versions) and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
PY=/usr/bin/python3
OUT=${OUT:-bench/results.json}

# The peer needs Debian's python3-torch (not the pyenv python first on PATH).
if ! "$PY" -c 'import torch' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench: installing python3-torch" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-torch >/dev/null
  else
    echo "bench: PyTorch missing for $PY; install it with: sudo apt-get install python3-torch" >&2
    exit 1
  fi
fi

# Build the Go harness with OpenBLAS when Debian's libopenblas-dev is there
# (grep without -q: with pipefail, -q can SIGPIPE ldconfig and fail the test).
TAGS=()
if { [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ]; } &&
   ldconfig -p 2>/dev/null | grep 'libopenblas\.so ' >/dev/null; then
  TAGS=(-tags openblas)
  export CGO_LDFLAGS=-lopenblas
fi
mkdir -p bin
go build "${TAGS[@]}" -o bin/smbench ./bench/cmd/smbench

# Raw per-process JSON lines are kept beside the results; AGG_ONLY=1
# re-aggregates an existing raw file without measuring.
RAW=${OUT%.json}.raw.jsonl
# Thread layouts. The peer runs at every layout in PEER_LAYOUTS
# ("torch_threads:openblas_threads") and each task is scored at its best
# layout: DESIGN.md 7.2 found 1:2 best, on this machine 2:1 is often as good
# (2:2 is a trap: the pools fight). smtrain uses GOMAXPROCS = all cores with
# one OpenBLAS thread per Go worker.
PEER_LAYOUTS=${PEER_LAYOUTS:-"1:2 2:1"}
GO_OPENBLAS_THREADS=${GO_OPENBLAS_THREADS:-1}
peer() {
  local lay
  for lay in $PEER_LAYOUTS; do
    OPENBLAS_NUM_THREADS=${lay#*:} OMP_NUM_THREADS=${lay%%:*} "$PY" bench/torch_peer.py "$@" --threads "${lay%%:*}" --reps "$REPS" >>"$RAW.tmp"
  done
}
gob() { OPENBLAS_NUM_THREADS=$GO_OPENBLAS_THREADS bin/smbench "$@" -reps "$REPS" >>"$RAW.tmp"; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "${AGG_ONLY:-0}" != 1 ]; then
: >"$RAW.tmp"
for r in $(seq 1 "$ROUNDS"); do
  echo "bench: round $r/$ROUNDS" >&2
  # Alternate which side goes first.
  if [ $((r % 2)) = 1 ]; then first=peer second=gob; else first=gob second=peer; fi
  peer sgemm
  for task in "train tiny" "train small" "decode small 1" "decode small 8"; do
    set -- $task
    extra=()
    [ "$1" = decode ] && extra=(--batch "$3")
    $first "$1" "$2" "${extra[@]}"
    $second "$1" "$2" "${extra[@]}"
  done
  # chi2mix vs mle full training steps (config small), interleaved in-process.
  gob smmle small
done
mv "$RAW.tmp" "$RAW"
fi

# Scaling table (SCALING=0 skips it): train config small as T grows with
# B·T = 2048 (T = 64 … 1024) and as n_embd grows at T = 128, B = 16
# (D = 64 … 512); one process per point and side, the peer at its best
# layout for train small.
SCALING=${SCALING:-1}
SRAW=${OUT%.json}.scaling.raw.jsonl
SCALE_POINTS=${SCALE_POINTS:-"64:32:128 128:16:128 256:8:128 512:4:128 1024:2:128 128:16:64 128:16:256 128:16:512"}
if [ "$SCALING" != 0 ] && [ "${AGG_ONLY:-0}" != 1 ]; then
  # The peer runs the scaling points at its best layout for train small in
  # the rounds above (all of PEER_LAYOUTS when that is unknown).
  SCALE_LAYOUTS=${SCALE_LAYOUTS:-$("$PY" - "$RAW" "$PEER_LAYOUTS" <<'PYEOF'
import json, statistics, sys
best = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["impl"] == "pytorch" and r["task"] == "train" and r.get("config") == "small":
        best.setdefault("%s:%s" % (r["torch_threads"], r["openblas_threads"]), []).extend(r["tokens_per_s"])
print(max(best, key=lambda k: statistics.median(best[k])) if best else sys.argv[2])
PYEOF
)}
  : >"$SRAW.tmp"
  for pt in $SCALE_POINTS; do
    IFS=: read -r T B D <<<"$pt"
    echo "bench: scaling T=$T B=$B D=$D" >&2
    OPENBLAS_NUM_THREADS=$GO_OPENBLAS_THREADS bin/smbench train small -T "$T" -B "$B" -D "$D" -reps 2 -steps 2 -warmup 1 >>"$SRAW.tmp"
    for lay in $SCALE_LAYOUTS; do
      OPENBLAS_NUM_THREADS=${lay#*:} OMP_NUM_THREADS=${lay%%:*} "$PY" bench/torch_peer.py train small --T "$T" --B "$B" --D "$D" \
        --threads "${lay%%:*}" --reps 2 --steps 2 --warmup 1 >>"$SRAW.tmp"
    done
  done
  mv "$SRAW.tmp" "$SRAW"
fi
[ "$SCALING" != 0 ] || SRAW=
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ "${AGG_ONLY:-0}" = 1 ] && [ -f "$OUT" ]; then
  # Re-aggregating: keep the load and date of the measurement itself.
  read -r LOAD_START LOAD_END DATE < <("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); m=r["machine"]; print(m["loadavg_start"].replace(" ","_"), m["loadavg_end"].replace(" ","_"), r["date"])' "$OUT")
  LOAD_START=${LOAD_START//_/ } LOAD_END=${LOAD_END//_/ }
fi

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
CORES=$(nproc)
GOV=$(go version | cut -d' ' -f3)
export PEER_LAYOUTS GO_OPENBLAS_THREADS
"$PY" - "$RAW" "$OUT" "$CPU" "$CORES" "$GOV" "$ROUNDS" "$REPS" "$LOAD_START" "$LOAD_END" "$SRAW" "$DATE" <<'EOF'
import json, os, statistics, sys, time
raw, out, cpu, cores, gov, rounds, reps, load0, load1, sraw, date = sys.argv[1:]
rows = [json.loads(l) for l in open(raw) if l.strip()]

def layout(r):
    return "%s:%s" % (r["torch_threads"], r["openblas_threads"]) if r["impl"] == "pytorch" else "go"

def key(r):
    return (r["impl"], r["task"], r.get("config"), r.get("batch"), layout(r))

smmle = [r for r in rows if r["task"] == "smmle"]
rows = [r for r in rows if r["task"] != "smmle"]
groups = {}
for r in rows:
    groups.setdefault(key(r), []).append(r)
mle_ms = [x for r in smmle for x in r["mle_step_ms"]]
sm_ms = [x for r in smmle for x in r["chi2mix_step_ms"]]
pair_ratios = [s / m for r in smmle for s, m in zip(r["chi2mix_step_ms"], r["mle_step_ms"])]
mle_cpu = [x for r in smmle for x in r.get("mle_step_cpu_ms", [])]
sm_cpu = [x for r in smmle for x in r.get("chi2mix_step_cpu_ms", [])]

def field(task):
    return "gflops" if task == "sgemm" else "tokens_per_s"

def layouts(impl, task, config, batch):
    return [k[4] for k in groups if k[:4] == (impl, task, config, batch)]

def best_layout(impl, task, config=None, batch=None):
    """The layout with the highest median rate (each task at its best)."""
    best, bm = None, None
    for lay in layouts(impl, task, config, batch):
        x = [v for r in groups[(impl, task, config, batch, lay)] for v in r[field(task)]]
        m = statistics.median(x)
        if bm is None or m > bm:
            best, bm = lay, m
    return best

def rates(impl, task, config=None, batch=None):
    lay = best_layout(impl, task, config, batch)
    g = groups.get((impl, task, config, batch, lay), [])
    return [x for r in g for x in r[field(task)]]

def med(impl, task, config=None, batch=None):
    x = rates(impl, task, config, batch)
    return statistics.median(x) if x else None

def rss(impl, task, config, batch=None):
    lay = best_layout(impl, task, config, batch)
    g = groups.get((impl, task, config, batch, lay), [])
    return max(r["peak_rss_mb"] for r in g) if g else None

def ratio(a, b):
    return a / b if a is not None and b else None

def best(impl, task, config=None, batch=None):
    x = [v for k, g in groups.items() if k[:4] == (impl, task, config, batch) for r in g for v in r[field(task)]]
    return max(x) if x else None

L, D, V, B, T = 4, 128, 1024, 16, 128
N = 12 * L * D * D + V * D
flops_small = 6 * N * B * T + 12 * L * B * T * T * D
# The machine's sgemm peak is the fastest torch.mm sample of this run (over
# all thread layouts): a median on a shared machine understates the peak
# (samples ranged 53-189 GFLOP/s in one run) and so overstates MFU.
peak = best("pytorch", "sgemm")
go_small, pt_small = med("smtrain", "train", "small"), med("pytorch", "train", "small")
res = {
    "train_tiny_ratio": ratio(med("smtrain", "train", "tiny"), med("pytorch", "train", "tiny")),
    "train_small_ratio": ratio(go_small, pt_small),
    "decode_small_ratio": ratio(med("smtrain", "decode", "small", 1), med("pytorch", "decode", "small", 1)),
    "decode_small_b8_ratio": ratio(med("smtrain", "decode", "small", 8), med("pytorch", "decode", "small", 8)),
    "rss_ratio": ratio(rss("smtrain", "train", "small"), rss("pytorch", "train", "small")),
    "rss_ratio_small": ratio(rss("smtrain", "train", "small"), rss("pytorch", "train", "small")),
    "rss_ratio_tiny": ratio(rss("smtrain", "train", "tiny"), rss("pytorch", "train", "tiny")),
    "mfu_small": go_small * flops_small / (B * T) / (peak * 1e9) if go_small and peak else None,
    "mfu_small_pytorch": pt_small * flops_small / (B * T) / (peak * 1e9) if pt_small and peak else None,
    "sm_over_mle": statistics.median(sm_ms) / statistics.median(mle_ms) if smmle else None,
    "sm_over_mle_detail": {"chi2mix_step_ms_median": statistics.median(sm_ms) if smmle else None,
                           "mle_step_ms_median": statistics.median(mle_ms) if smmle else None,
                           "paired_rep_ratio_median": statistics.median(pair_ratios) if smmle else None,
                           "cpu_time_ratio": statistics.median(sm_cpu) / statistics.median(mle_cpu) if sm_cpu and mle_cpu else None,
                           "transitions_per_batch": smmle[0]["transitions"] if smmle else None,
                           "steps_per_rep": smmle[0]["steps_per_rep"] if smmle else None,
                           "mle_step_ms": [round(x, 2) for x in mle_ms], "chi2mix_step_ms": [round(x, 2) for x in sm_ms]},
    "best_of_reps_ratios": {
        "train_tiny": ratio(best("smtrain", "train", "tiny"), best("pytorch", "train", "tiny")),
        "train_small": ratio(best("smtrain", "train", "small"), best("pytorch", "train", "small")),
        "decode_small_b1": ratio(best("smtrain", "decode", "small", 1), best("pytorch", "decode", "small", 1)),
        "decode_small_b8": ratio(best("smtrain", "decode", "small", 8), best("pytorch", "decode", "small", 8)),
    },
    "notes": {
        "best_of_reps": "fastest rep of each side over all layouts: less sensitive to load from other processes on a shared machine than the medians",
        "ratios": "smtrain / PyTorch of median tokens/s (higher is better); rss_ratio (= rss_ratio_small, issue 9) = smtrain / PyTorch peak RSS of the train small process, rss_ratio_tiny the same for train tiny (lower is better; PyTorch's includes ~235 MB for import torch)",
        "mfu": "FLOPs/step = 6*N*B*T + 12*L*B*T^2*D, N = 12*L*D^2 + V*D; %d FLOP for small; peak = fastest torch.mm 2048^2 float32 sample (GFLOP/s) of this run" % flops_small,
        "sm_over_mle": "median chi2mix step time / median mle step time, config small (B16 T128 V1024), one compiled batch with backspaces (half expert rows with noise+<bkspc>, half policy rows), full step = set batch, forward, loss, backward, clip 1.0, AdamW; both objectives in one process, reps interleaved with alternating order (smbench smmle)",
        "step": "train step = new random batch, forward, cross-entropy, backward, global-norm clip 1.0, AdamW (weight decay on >=2-D params), float32",
        "decode": "greedy, prompt 16 then 64 new tokens per sequence, KV cache; tokens/s counts generated tokens, time includes the prefill",
    },
    "medians": {
        "sgemm_gflops": peak,
        "pytorch": {
            "train_tiny_tok_s": med("pytorch", "train", "tiny"), "train_small_tok_s": pt_small,
            "decode_small_b1_tok_s": med("pytorch", "decode", "small", 1), "decode_small_b8_tok_s": med("pytorch", "decode", "small", 8),
            "peak_rss_mb": {"train_tiny": rss("pytorch", "train", "tiny"), "train_small": rss("pytorch", "train", "small"),
                            "decode_small_b1": rss("pytorch", "decode", "small", 1)},
        },
        "smtrain": {
            "train_tiny_tok_s": med("smtrain", "train", "tiny"), "train_small_tok_s": go_small,
            "decode_small_b1_tok_s": med("smtrain", "decode", "small", 1), "decode_small_b8_tok_s": med("smtrain", "decode", "small", 8),
            "peak_rss_mb": {"train_tiny": rss("smtrain", "train", "tiny"), "train_small": rss("smtrain", "train", "small"),
                            "decode_small_b1": rss("smtrain", "decode", "small", 1)},
        },
    },
    "runs": {"rounds": int(rounds), "reps_per_process": int(reps),
             "samples": {"/".join(str(x) for x in k if x is not None):
                         [round(v, 1) for r in g for v in r[field(k[1])]] for k, g in groups.items()},
             "peer_best_layout": {"/".join(str(x) for x in k if x is not None): best_layout("pytorch", *k)
                                  for k in sorted({k[1:4] for k in groups if k[0] == "pytorch"}, key=str)}},
    "machine": {"cpu": cpu, "cores": int(cores), "loadavg_start": load0, "loadavg_end": load1},
    "versions": {"go": gov, "torch": rows[0].get("torch") if rows else None,
                 "python": next((r["python"] for r in rows if "python" in r), None),
                 "smtrain_blas": next((r["blas"] for r in rows if r["impl"] == "smtrain"), None),
                 "torch_blas": next((r["blas"] for r in rows if r["impl"] == "pytorch"), None)},
    "threads": {"pytorch": "layouts torch_threads:OPENBLAS_NUM_THREADS %s (OMP_NUM_THREADS = torch threads); each task scored at its best (runs.peer_best_layout)" % os.environ["PEER_LAYOUTS"],
                "smtrain": "GOMAXPROCS=%s, OPENBLAS_NUM_THREADS=%s" % (next((r["gomaxprocs"] for r in rows if r["impl"] == "smtrain"), "?"),
                                                                      os.environ["GO_OPENBLAS_THREADS"])},
    "date": date,
}
# Scaling table: per point, each side's median tokens/s (the peer at its
# best layout for that point) and peak RSS of that process.
scaling = []
if sraw and os.path.exists(sraw):
    srows = [json.loads(l) for l in open(sraw) if l.strip()]
    pts = []
    for r in srows:
        p = (r["T"], r["B"], r["D"])
        if p not in pts:
            pts.append(p)
    for T_, B_, D_ in pts:
        ent = {"T": T_, "B": B_, "D": D_}
        for impl in ("smtrain", "pytorch"):
            best_m, best_r = None, None
            for r in srows:
                if (r["impl"], r["T"], r["B"], r["D"]) == (impl, T_, B_, D_) and (best_m is None or r["median"] > best_m):
                    best_m, best_r = r["median"], r
            ent[impl + "_tok_s"] = best_m
            ent[impl + "_peak_rss_mb"] = best_r["peak_rss_mb"] if best_r else None
            if impl == "pytorch" and best_r:
                ent["pytorch_layout"] = "%s:%s" % (best_r["torch_threads"], best_r["openblas_threads"])
        ent["ratio"] = ratio(ent["smtrain_tok_s"], ent["pytorch_tok_s"])
        scaling.append(ent)
res["scaling"] = scaling
res["notes"]["scaling"] = ("train config small (L4 H4 V1024) as T grows with B*T = 2048 and as n_embd grows at T=128 B=16; "
                           "2 reps x 2 steps per process after 1 warm-up step; the peer at its best layout for train small in the rounds; "
                           "peak RSS is that process's (PyTorch's includes ~235 MB for import torch)")

tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
os.replace(tmp, out)

def fmt(x, p="%.0f"):
    return "-" if x is None else p % x
m = res["medians"]
print(f"machine: {cpu}, {cores} cores; load {load0} -> {load1}; {gov}, torch {res['versions']['torch']}; "
      f"smtrain BLAS {res['versions']['smtrain_blas']}; {rounds} rounds x {reps} reps")
bl = res["runs"]["peer_best_layout"]
print(f"{'what':<28}{'smtrain':>12}{'PyTorch':>12}{'ratio':>9}  peer layout (torch:openblas threads)")
for label, a, b, r, lay in [
    ("train tiny tok/s", m["smtrain"]["train_tiny_tok_s"], m["pytorch"]["train_tiny_tok_s"], res["train_tiny_ratio"], bl.get("train/tiny")),
    ("train small tok/s", go_small, pt_small, res["train_small_ratio"], bl.get("train/small")),
    ("decode small b1 tok/s", m["smtrain"]["decode_small_b1_tok_s"], m["pytorch"]["decode_small_b1_tok_s"], res["decode_small_ratio"], bl.get("decode/small/1")),
    ("decode small b8 tok/s", m["smtrain"]["decode_small_b8_tok_s"], m["pytorch"]["decode_small_b8_tok_s"], res["decode_small_b8_ratio"], bl.get("decode/small/8")),
    ("peak RSS train tiny MB", m["smtrain"]["peak_rss_mb"]["train_tiny"], m["pytorch"]["peak_rss_mb"]["train_tiny"], res["rss_ratio_tiny"], None),
    ("peak RSS train small MB", m["smtrain"]["peak_rss_mb"]["train_small"], m["pytorch"]["peak_rss_mb"]["train_small"], res["rss_ratio_small"], None),
    ("MFU small (%)", None if res["mfu_small"] is None else 100 * res["mfu_small"],
     None if res["mfu_small_pytorch"] is None else 100 * res["mfu_small_pytorch"], None, None),
]:
    print(f"{label:<28}{fmt(a, '%.1f'):>12}{fmt(b, '%.1f'):>12}{fmt(r, '%.2fx'):>9}  {lay or ''}")
print(f"{'sm_over_mle (chi2mix/mle step)':<28}{fmt(res['sm_over_mle_detail']['chi2mix_step_ms_median'], '%.1fms'):>12}{fmt(res['sm_over_mle_detail']['mle_step_ms_median'], '%.1fms'):>12}{fmt(res['sm_over_mle'], '%.3f'):>9}  (columns: chi2mix, mle; CPU-time ratio {fmt(res['sm_over_mle_detail']['cpu_time_ratio'], '%.3f')})")
print("best-of-reps ratios: " + ", ".join(f"{k} {fmt(v, '%.2fx')}" for k, v in res["best_of_reps_ratios"].items()))
print(f"{'sgemm 2048^2 GFLOP/s':<28}{'':>12}{fmt(peak, '%.1f'):>12}{'':>9}  {bl.get('sgemm', '')}")
if scaling:
    print(f"{'scaling T B D':<20}{'smtrain tok/s':>14}{'PyTorch tok/s':>14}{'ratio':>8}{'smtrain MB':>12}{'PyTorch MB':>12}")
    for e in scaling:
        print(f"{'%d %d %d' % (e['T'], e['B'], e['D']):<20}{fmt(e['smtrain_tok_s']):>14}{fmt(e['pytorch_tok_s']):>14}"
              f"{fmt(e['ratio'], '%.2fx'):>8}{fmt(e['smtrain_peak_rss_mb']):>12}{fmt(e['pytorch_peak_rss_mb']):>12}")
print(f"wrote {out}")

# The readable table (bench/RESULTS.md beside results.json).
md = os.path.join(os.path.dirname(out) or ".", "RESULTS.md")
v = res["versions"]
det = res["sm_over_mle_detail"]
L = ["# smtrain vs PyTorch: benchmark results", "",
     f"Generated by `make bench` (scripts/bench.sh) on {res['date']}; raw numbers in `{os.path.basename(out)}`.", "",
     f"- Machine: {cpu}, {cores} cores (shared; load average {load0} at start, {load1} at end)",
     f"- smtrain: {gov}, BLAS {v['smtrain_blas']}, {res['threads']['smtrain']}",
     f"- PyTorch {v['torch']} (Python {v['python']}, {v['torch_blas']}), thread layouts torch:OpenBLAS {os.environ['PEER_LAYOUTS']}, each task at its best",
     f"- {rounds} rounds x {reps} reps per process, the two sides alternating; medians over all reps", "",
     "| key | meaning | smtrain | PyTorch | value | target |", "|---|---|---|---|---|---|"]
def row(key, meaning, a, b, val, target, p="%.0f", vp="%.2f"):
    L.append(f"| {key} | {meaning} | {fmt(a, p)} | {fmt(b, p)} | {fmt(val, vp)} | {target} |")
row("train_tiny_ratio", "training tok/s, L2 D64 H2 T32 B8 V300", m["smtrain"]["train_tiny_tok_s"], m["pytorch"]["train_tiny_tok_s"], res["train_tiny_ratio"], "≥ 1.5")
row("train_small_ratio", "training tok/s, L4 D128 H4 T128 B16 V1024", go_small, pt_small, res["train_small_ratio"], "≥ 1.2")
row("sm_over_mle", "chi2mix / mle step wall time (ms), small (CPU-time ratio %s)" % fmt(det["cpu_time_ratio"], "%.3f"), det["chi2mix_step_ms_median"], det["mle_step_ms_median"], res["sm_over_mle"], "≤ 1.15", "%.1f", "%.3f")
row("decode_small_ratio", "KV-cache decode tok/s, small, batch 1", m["smtrain"]["decode_small_b1_tok_s"], m["pytorch"]["decode_small_b1_tok_s"], res["decode_small_ratio"], "≥ 10")
row("decode_small_b8_ratio", "same, batch 8", m["smtrain"]["decode_small_b8_tok_s"], m["pytorch"]["decode_small_b8_tok_s"], res["decode_small_b8_ratio"], "≥ 3")
row("rss_ratio", "peak RSS (MB), train small", m["smtrain"]["peak_rss_mb"]["train_small"], m["pytorch"]["peak_rss_mb"]["train_small"], res["rss_ratio_small"], "≤ 0.5")
row("rss_ratio_tiny", "peak RSS (MB), train tiny", m["smtrain"]["peak_rss_mb"]["train_tiny"], m["pytorch"]["peak_rss_mb"]["train_tiny"], res["rss_ratio_tiny"], "-")
row("mfu_small", "training FLOP/s / sgemm peak (%.0f GFLOP/s), small" % (peak or 0), res["mfu_small"], res["mfu_small_pytorch"], res["mfu_small"], "≥ 0.5", "%.3f", "%.3f")
L += ["", "Best-of-reps ratios (fastest rep of each side; less sensitive to load from other processes): " +
      ", ".join(f"{k} {fmt(x, '%.2fx')}" for k, x in res["best_of_reps_ratios"].items()) + ".", ""]
if scaling:
    L += ["## Scaling (train, config small)", "",
          "Tokens/s and peak RSS per process; PyTorch's RSS includes about 235 MB for `import torch`.", "",
          "| T | B | n_embd | smtrain tok/s | PyTorch tok/s | ratio | smtrain peak MB | PyTorch peak MB |", "|---|---|---|---|---|---|---|---|"]
    for e in scaling:
        L.append(f"| {e['T']} | {e['B']} | {e['D']} | {fmt(e['smtrain_tok_s'])} | {fmt(e['pytorch_tok_s'])} | {fmt(e['ratio'], '%.2f')} | "
                 f"{fmt(e['smtrain_peak_rss_mb'])} | {fmt(e['pytorch_peak_rss_mb'])} |")
    L.append("")
with open(md + ".tmp", "w") as f:
    f.write("\n".join(L))
os.replace(md + ".tmp", md)
print(f"wrote {md}")
EOF
