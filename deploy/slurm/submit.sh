#!/usr/bin/env bash
# geofuse on Slurm: train once, then map the scenes in an array of N shards, then merge.
#
#   bash deploy/slurm/submit.sh PIPELINE OUT [SHARDS]
#
# 1. `geofuse train` trains every method's model on the pipeline's training scenes (kept
#    when already up to date);
# 2. the array (`--dependency=afterok:` the training job) runs `geofuse run --shard I/N`,
#    one disjoint part of the scenes per task, all into OUT (a shared file system): each
#    task reuses the trained models and writes only its scenes' folders, the shared files
#    under OUT's lock;
# 3. `geofuse merge OUT` (after every task, failed or not) rewrites the top-level manifest,
#    the mosaics and the report from the scene folders.
set -euo pipefail
pipeline=${1:?usage: submit.sh PIPELINE OUT [SHARDS]}
out=${2:?usage: submit.sh PIPELINE OUT [SHARDS]}
shards=${3:-8}
here=$(cd "$(dirname "$0")" && pwd)
train=$(sbatch --parsable --job-name=geofuse-train --cpus-per-task=8 --mem=16G \
  --wrap "geofuse train '$pipeline' --out '$out'")
array=$(sbatch --parsable --dependency="afterok:$train" --array="0-$((shards - 1))" \
  --export="ALL,GEOFUSE_PIPELINE=$pipeline,GEOFUSE_OUT=$out,GEOFUSE_SHARDS=$shards" \
  "$here/map.sbatch")
merge=$(sbatch --parsable --dependency="afterany:$array" --job-name=geofuse-merge \
  --wrap "geofuse merge '$out'")
echo "train $train, map $array (${shards} shards), merge $merge"
