#!/usr/bin/env bash
# The main job on built-in data, end to end, in a few minutes on 2 cores:
#  1. collect expert trajectories in the built-in MLE-Dojo-style environments
#     (real Python runs in the sandbox, scored in Go) and train a small policy
#     on them with the default SequenceMatch objective (chi2mix);
#  2. sample from it, with backspaces shown;
#  3. let it act in the built-in environments (rollout), its replies decoded
#     under the grammar of MLE-Dojo's action format (-constrain action, so
#     every action parses; what its code does is still up to the policy),
#     writing MLE-Dojo trajectories that `smtrain fit -data` reads back.
# Everything goes to runs/demo (removed first). STEPS=N changes the length.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/smtrain
OUT=${OUT:-runs/demo}
STEPS=${STEPS:-600}
rm -rf "$OUT"
echo "== 1. train: $BIN fit -out $OUT -steps $STEPS (built-in expert data, objective chi2mix)"
# Every flag below differs from fit's default (a test checks it); the
# progress bar shows when stderr is a terminal (make demo > log gets none).
$BIN fit -out "$OUT" -steps "$STEPS" -n_positions 512 \
  -lr 3e-3 -min_lr 3e-4 -warmup_steps 20 -warm_start 150 \
  -replay_every 100 -replay_samples 8 -replay_batch 2 -replay_max_new 48 \
  -eval_every 150 -eval_samples 1 -log_every 50 -ckpt_every 150
echo
echo "== 2. sample: $BIN sample -ckpt $OUT -show_actions"
$BIN sample -ckpt "$OUT" -prompt "Train a model and write the submission." -n 1 -max_new 80 -temperature 0.8 -show_actions
echo
echo "== 3. act: $BIN rollout -ckpt $OUT -env builtin:all -episodes 3 -constrain action -out $OUT/rollout"
$BIN rollout -ckpt "$OUT" -env builtin:all -episodes 3 -max_steps 4 -max_new 128 -constrain action -out "$OUT/rollout"
echo
echo "Outputs: $OUT/metrics.jsonl (training log), $OUT/ckpt-* (checkpoints),"
echo "$OUT/rollout/<task>-<n>/ (MLE-Dojo trajectories; train on them with: $BIN fit -data $OUT/rollout)."
