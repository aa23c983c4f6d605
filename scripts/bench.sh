#!/usr/bin/env bash
# Benchmark: smtrain (Go, bench/cmd/smbench) against the same GPT-2 model in
# PyTorch 1.13 (bench/torch_peer.py, Debian python3-torch), in one run.
#
#   scripts/bench.sh            (ROUNDS=3 REPS=3 by default)
#
# Each measurement is its own process (so peak RSS is that task's), and the
# two implementations alternate round by round so that load from other
# processes hits both alike. The peer runs at its best thread layout
# (DESIGN.md 7.2): 1 torch thread, OPENBLAS_NUM_THREADS=2; smtrain runs with
# GOMAXPROCS = all cores and OPENBLAS_NUM_THREADS=1 (its kernels split the
# work themselves). Writes bench/results.json (medians over all reps,
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

RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT
# Thread layouts (override to explore; the defaults are each side's best).
PEER_TORCH_THREADS=${PEER_TORCH_THREADS:-1}
PEER_OPENBLAS_THREADS=${PEER_OPENBLAS_THREADS:-2}
GO_OPENBLAS_THREADS=${GO_OPENBLAS_THREADS:-1}
peer() { OPENBLAS_NUM_THREADS=$PEER_OPENBLAS_THREADS OMP_NUM_THREADS=1 "$PY" bench/torch_peer.py "$@" --threads "$PEER_TORCH_THREADS" --reps "$REPS" >>"$RAW"; }
gob()  { OPENBLAS_NUM_THREADS=$GO_OPENBLAS_THREADS bin/smbench "$@" -reps "$REPS" >>"$RAW"; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
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
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
CORES=$(nproc)
GOV=$(go version | cut -d' ' -f3)
export PEER_TORCH_THREADS PEER_OPENBLAS_THREADS GO_OPENBLAS_THREADS
"$PY" - "$RAW" "$OUT" "$CPU" "$CORES" "$GOV" "$ROUNDS" "$REPS" "$LOAD_START" "$LOAD_END" <<'EOF'
import json, os, statistics, sys, time
raw, out, cpu, cores, gov, rounds, reps, load0, load1 = sys.argv[1:]
rows = [json.loads(l) for l in open(raw) if l.strip()]

def key(r):
    return (r["impl"], r["task"], r.get("config"), r.get("batch"))

groups = {}
for r in rows:
    groups.setdefault(key(r), []).append(r)

def rates(impl, task, config=None, batch=None):
    g = groups.get((impl, task, config, batch), [])
    field = "gflops" if task == "sgemm" else "tokens_per_s"
    return [x for r in g for x in r[field]]

def med(impl, task, config=None, batch=None):
    x = rates(impl, task, config, batch)
    return statistics.median(x) if x else None

def rss(impl, task, config, batch=None):
    g = groups.get((impl, task, config, batch), [])
    return max(r["peak_rss_mb"] for r in g) if g else None

def ratio(a, b):
    return a / b if a is not None and b else None

L, D, V, B, T = 4, 128, 1024, 16, 128
N = 12 * L * D * D + V * D
flops_small = 6 * N * B * T + 12 * L * B * T * T * D
peak = med("pytorch", "sgemm")
go_small, pt_small = med("smtrain", "train", "small"), med("pytorch", "train", "small")
res = {
    "train_tiny_ratio": ratio(med("smtrain", "train", "tiny"), med("pytorch", "train", "tiny")),
    "train_small_ratio": ratio(go_small, pt_small),
    "decode_small_ratio": ratio(med("smtrain", "decode", "small", 1), med("pytorch", "decode", "small", 1)),
    "decode_small_b8_ratio": ratio(med("smtrain", "decode", "small", 8), med("pytorch", "decode", "small", 8)),
    "rss_ratio": ratio(rss("smtrain", "train", "tiny"), rss("pytorch", "train", "tiny")),
    "rss_ratio_small": ratio(rss("smtrain", "train", "small"), rss("pytorch", "train", "small")),
    "mfu_small": go_small * flops_small / (B * T) / (peak * 1e9) if go_small and peak else None,
    "mfu_small_pytorch": pt_small * flops_small / (B * T) / (peak * 1e9) if pt_small and peak else None,
    "sm_over_mle": None,
    "notes": {
        "ratios": "smtrain / PyTorch of median tokens/s (higher is better); rss_ratio = smtrain / PyTorch peak RSS of the train tiny process (lower is better; PyTorch's includes ~235 MB for import torch)",
        "mfu": "FLOPs/step = 6*N*B*T + 12*L*B*T^2*D, N = 12*L*D^2 + V*D; %d FLOP for small; peak = median torch.mm 2048^2 float32 GFLOP/s of this run" % flops_small,
        "sm_over_mle": "not measured yet: the objectives and trainer come later",
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
             "samples": {"/".join(str(x) for x in k if x is not None): [round(x, 1) for x in rates(*k)] for k in groups}},
    "machine": {"cpu": cpu, "cores": int(cores), "loadavg_start": load0, "loadavg_end": load1},
    "versions": {"go": gov, "torch": rows[0].get("torch") if rows else None,
                 "python": next((r["python"] for r in rows if "python" in r), None),
                 "smtrain_blas": next((r["blas"] for r in rows if r["impl"] == "smtrain"), None),
                 "torch_blas": next((r["blas"] for r in rows if r["impl"] == "pytorch"), None)},
    "threads": {"pytorch": "torch.set_num_threads(%s), OPENBLAS_NUM_THREADS=%s, OMP_NUM_THREADS=1"
                           % (os.environ["PEER_TORCH_THREADS"], os.environ["PEER_OPENBLAS_THREADS"]),
                "smtrain": "GOMAXPROCS=%s, OPENBLAS_NUM_THREADS=%s" % (next((r["gomaxprocs"] for r in rows if r["impl"] == "smtrain"), "?"),
                                                                      os.environ["GO_OPENBLAS_THREADS"])},
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
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
print(f"{'what':<28}{'smtrain':>12}{'PyTorch':>12}{'ratio':>9}")
for label, a, b, r in [
    ("train tiny tok/s", m["smtrain"]["train_tiny_tok_s"], m["pytorch"]["train_tiny_tok_s"], res["train_tiny_ratio"]),
    ("train small tok/s", go_small, pt_small, res["train_small_ratio"]),
    ("decode small b1 tok/s", m["smtrain"]["decode_small_b1_tok_s"], m["pytorch"]["decode_small_b1_tok_s"], res["decode_small_ratio"]),
    ("decode small b8 tok/s", m["smtrain"]["decode_small_b8_tok_s"], m["pytorch"]["decode_small_b8_tok_s"], res["decode_small_b8_ratio"]),
    ("peak RSS train tiny MB", m["smtrain"]["peak_rss_mb"]["train_tiny"], m["pytorch"]["peak_rss_mb"]["train_tiny"], res["rss_ratio"]),
    ("peak RSS train small MB", m["smtrain"]["peak_rss_mb"]["train_small"], m["pytorch"]["peak_rss_mb"]["train_small"], res["rss_ratio_small"]),
    ("MFU small (%)", None if res["mfu_small"] is None else 100 * res["mfu_small"],
     None if res["mfu_small_pytorch"] is None else 100 * res["mfu_small_pytorch"], None),
]:
    print(f"{label:<28}{fmt(a, '%.1f'):>12}{fmt(b, '%.1f'):>12}{fmt(r, '%.2fx'):>9}")
print(f"{'sgemm 2048^2 GFLOP/s':<28}{'':>12}{fmt(peak, '%.1f'):>12}")
print(f"wrote {out}")
EOF
