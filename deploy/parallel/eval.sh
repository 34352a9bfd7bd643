#!/usr/bin/env bash
# A sharded heal evaluation with GNU parallel: N shards as separate processes on this machine (or
# over several with --sshlogin and a shared folder), then the merge.
#
#   DATA=data/w40 N=4 RUN=runs/eval-par deploy/parallel/eval.sh
#
# On one machine `heal eval --jobs N` does the same in one command; shards earn their keep when
# a run is long enough that you want to rerun only what failed: the job log lets
# `parallel --resume-failed` redo just the failed shards (run this script again).
# Environment: DATA, RUN (required), N (shards, default 4), P (shards at a time, default N),
# EVAL_ARGS (further heal eval options), HEAL (default heal), PARALLEL_ARGS (e.g. "--sshlogin a,b").
set -euo pipefail
: "${DATA:?set DATA to the dataset folder}"
: "${RUN:?set RUN to the folder the shards go to}"
N=${N:-4}
mkdir -p "$RUN"
# shellcheck disable=SC2086  # PARALLEL_ARGS and EVAL_ARGS are lists of options
seq 0 $((N - 1)) | parallel --jobs "${P:-$N}" --joblog "$RUN/joblog" --resume-failed $PARALLEL_ARGS \
  "${HEAL:-heal} eval --data '$DATA' $EVAL_ARGS --threads 1 --shard {}/$N --out '$RUN/shard-{}' --overwrite"
${HEAL:-heal} eval merge "$RUN" --out "$RUN/run" --overwrite
