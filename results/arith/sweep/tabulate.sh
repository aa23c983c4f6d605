#!/bin/bash
# Tabulates the validation metrics of every sweep folder (selection uses val_* only).
ROOT=${1:-/tmp/h9/sweep}   # folder holding one compare output per config
echo "| config | command flags | val acc greedy (bkspc) | val acc T=1 (bkspc) | val acc greedy (no bkspc) | val acc T=1 (no bkspc) | selection score | val NLL | train s |"
echo "|---|---|---|---|---|---|---|---|---|"
for d in $ROOT/*/; do
  f=$d/results.json
  [ -f $f ] || continue
  name=$(basename $d)
  cmd=$(jq -r .command $f | sed 's/^smtrain compare //; s/ -out [^ ]*//')
  jq -r --arg n "$name" --arg c "$cmd" '.rows[0] as $r | $r.metrics as $m |
    "| \($n) | `\($c)` | \($m.val_acc_greedy_bk) | \($m.val_acc_sample_bk) | \($m.val_acc_greedy_nobk) | \($m.val_acc_sample_nobk) | \(((($m.val_acc_greedy_bk + $m.val_acc_sample_bk)/2)*10000|round)/10000) | \(($m.val_nll*10000|round)/10000) | \($r.train_wall_s|round) |"' $f
done
