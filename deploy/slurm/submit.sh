#!/usr/bin/env bash
# Submits a sharded heal evaluation to Slurm: an array of N shard tasks, then a merge job that
# starts when every task has succeeded.
#
#   DATA=/data/opv2v-h EVAL_ARGS="--split test --types m1" deploy/slurm/submit.sh 8 runs/eval-big
#
# The merged run is RUN/run (heal view RUN/run); the shards stay in RUN/shard-<i>.
set -euo pipefail
N=${1:?usage: submit.sh N RUN}
RUN=${2:?usage: submit.sh N RUN}
export RUN
here=$(dirname "$0")
array=$(sbatch --parsable --array="0-$((N - 1))" "$here/eval-array.sh")
sbatch --dependency="afterok:${array%%;*}" --job-name=heal-merge --output="heal-merge-%j.out" \
  --wrap "${HEAL:-heal} eval merge '$RUN' --out '$RUN/run' --overwrite"
echo "submitted shards $array (0-$((N - 1))) and their merge; the run will be $RUN/run"
