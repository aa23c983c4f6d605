#!/usr/bin/env bash
# Peak memory of `smtrain fit` at GPT-2 small's width (12 layers, 768 wide,
# 12 heads; arithmetic task, so a 263-token vocabulary) for 3 steps ending
# in a checkpoint, and the OpenBLAS core-type effect on training speed.
# Writes results/memory/fit_l12d768.json; about a minute on 2 cores.
#
#   scripts/fit_memory.sh            (SMTRAIN=bin/smtrain by default)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build >/dev/null
go build -tags openblas -o bin/smbench ./bench/cmd/smbench 2>/dev/null || go build -o bin/smbench ./bench/cmd/smbench
SMTRAIN=${SMTRAIN:-bin/smtrain}
OUT=${OUT:-results/memory/fit_l12d768.json}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CMD=("$SMTRAIN" fit -task arith -n_layer 12 -n_embd 768 -n_head 12 -n_positions 256 -batch_size 4 -steps 3 -eval_every 0 -ckpt_every 0 -out "$tmp/run")
/usr/bin/time -f '%M %e' -o "$tmp/time" "${CMD[@]}" >"$tmp/log" 2>&1
read -r rss_kb wall <"$tmp/time"
nll=$(grep -o 'val nll [0-9.]*' "$tmp/log" | tail -1 | awk '{print $3}')
# Training speed at config small with OpenBLAS's own core choice forced to
# the pre-AVX2 "Prescott" kernels and with the core blasfix picks.
small() { bin/smbench train small -reps 3 | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["median"], json.dumps(d["blas"]))'; }
read -r pres pres_blas < <(OPENBLAS_CORETYPE=Prescott small)
read -r auto auto_blas < <(small)
/usr/bin/python3 - "$OUT" <<PY
import json, sys, time
json.dump({
  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
  "commit": "${COMMIT:-$(git describe --always --dirty)}", "smtrain": "$SMTRAIN",
  "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)",
  "fit_command": "smtrain fit -task arith -n_layer 12 -n_embd 768 -n_head 12 -n_positions 256 -batch_size 4 -steps 3 -eval_every 0 -ckpt_every 0",
  "fit_peak_rss_mb": round($rss_kb / 1024), "fit_wall_s": $wall, "fit_val_nll": $nll,
  "train_small_tok_s": {"OPENBLAS_CORETYPE=Prescott": $pres, "blasfix": $auto},
  "blas": {"OPENBLAS_CORETYPE=Prescott": $pres_blas, "blasfix": $auto_blas},
}, open(sys.argv[1], "w"), indent=1)
PY
cat "$OUT"
