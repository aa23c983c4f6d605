#!/bin/bash
SM=${SM:-/tmp/h9/smtrain}
ROOT=${ROOT:-/tmp/h9/sweep}
BASE="-seeds 1 -noise 0.05 -batch_size 32 -steps 6000 -parallel 1"
q0=(
 "chi2mix-lambda0.05|-objectives chi2mix -lambda 0.05"
 "chi2mix-lambda0.2|-objectives chi2mix -lambda 0.2"
)
q1=(
 "chi2mix-lambda0.1-gt|-objectives chi2mix -lambda 0.1 -noise_kind ground-truth"
 "chi2mix-lambda0.1-c1|-objectives chi2mix -lambda 0.1 -c 1"
 "mle-steps12000|-objectives mle -noise 0 -steps 12000"
)
if [ "$1" = 0 ]; then list=("${q0[@]}"); else list=("${q1[@]}"); fi
for e in "${list[@]}"; do
  name=${e%%|*}; flags=${e#*|}
  /usr/bin/time -f "$name %e s wall" $SM compare $BASE $flags -out $ROOT/$name > $ROOT/$name.log 2>&1
done
