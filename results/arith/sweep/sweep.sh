#!/bin/bash
# SequenceMatch sweep on the validation split (seed 1, η 0.05 unless set), regime of the main experiment.
# usage: sweep.sh QUEUE   (two queues run side by side)
SM=${SM:-/tmp/h9/smtrain}
ROOT=${ROOT:-/tmp/h9/sweep}
BASE="-seeds 1 -noise 0.05 -batch_size 32 -steps 6000 -parallel 1"
q0=(
 "chi2mix-default|-objectives chi2mix"
 "chi2mix-lambda0.1|-objectives chi2mix -lambda 0.1"
 "chi2mix-c1|-objectives chi2mix -c 1"
 "bc-gt|-objectives bc -noise_kind ground-truth"
)
q1=(
 "chi2mix-ws3000|-objectives chi2mix -warm_start 3000"
 "chi2mix-gt|-objectives chi2mix -noise_kind ground-truth"
 "chi2mix-lambda0.1-ws3000-gt|-objectives chi2mix -lambda 0.1 -warm_start 3000 -noise_kind ground-truth"
 "bc-random|-objectives bc"
)
if [ "$1" = 0 ]; then list=("${q0[@]}"); else list=("${q1[@]}"); fi
for e in "${list[@]}"; do
  name=${e%%|*}; flags=${e#*|}
  /usr/bin/time -f "$name %e s wall" $SM compare $BASE $flags -out $ROOT/$name > $ROOT/$name.log 2>&1
done
