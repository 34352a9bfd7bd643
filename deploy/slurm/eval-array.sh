#!/usr/bin/env bash
# One shard of a heal evaluation per Slurm array task. Submit the array and the merge together
# with deploy/slurm/submit.sh, or by hand (the array's indices must be 0..N-1):
#
#   RUN=runs/eval-big DATA=/data/opv2v-h sbatch --array=0-7 deploy/slurm/eval-array.sh
#   sbatch --dependency=afterok:<array job id> --wrap "heal eval merge runs/eval-big --out runs/eval-big/run --overwrite"
#
# Environment: DATA (dataset folder, required), RUN (folder for the shards, required), EVAL_ARGS
# (further `heal eval` options, e.g. "--split test --types m1,m3 --profile heal"), HEAL (the heal
# command; default heal). The task evaluates shard $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT
# with one worker per CPU Slurm gives it, into $RUN/shard-<index>. A task that fails can be rerun
# alone (sbatch --array=<index> ...); the merge names any shard that is missing.
#
#SBATCH --job-name=heal-eval
#SBATCH --cpus-per-task=4
#SBATCH --mem-per-cpu=2G
#SBATCH --time=04:00:00
#SBATCH --output=heal-eval-%A_%a.out
set -euo pipefail
: "${DATA:?set DATA to the dataset folder}"
: "${RUN:?set RUN to the folder the shards go to}"
: "${SLURM_ARRAY_TASK_COUNT:?run this as a Slurm job array (sbatch --array=0-N)}"
# heal reads the index itself (auto: SLURM_ARRAY_TASK_ID); the count comes from the array.
# --overwrite: a task that is rerun replaces what its failed try left in its shard folder.
# shellcheck disable=SC2086  # EVAL_ARGS is a list of options
exec ${HEAL:-heal} eval --data "$DATA" $EVAL_ARGS \
  --shard "auto/$SLURM_ARRAY_TASK_COUNT" --jobs "${SLURM_CPUS_PER_TASK:-1}" \
  --out "$RUN/shard-$SLURM_ARRAY_TASK_ID" --overwrite
