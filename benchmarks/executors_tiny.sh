#!/bin/bash
# The tiny graph under each executor, each in a fresh KUAIREC_HOME and Dagster instance; prints the wall times.
#   bash benchmarks/executors_tiny.sh [OUT_DIR]      (default /tmp/kuairec-executors)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-/tmp/kuairec-executors}
DAGSTER=${DAGSTER:-$REPO/.venv/bin/dagster}
mkdir -p "$OUT"
printf 'execution:\n  config:\n    multiprocess:\n      start_method:\n        spawn: {}\n' > "$OUT/spawn.yaml"
cd "$REPO"
for mode in in_process multiprocess multiprocess_spawn; do
  d=$OUT/$mode; rm -rf "$d"; mkdir -p "$d"
  sed "s#data/dagster#$d/dag#" dagster.yaml > "$d/dagster.yaml"
  extra=(); exe=$mode
  if [ "$mode" = multiprocess_spawn ]; then exe=multiprocess; extra=(-c "$OUT/spawn.yaml"); fi
  start=$(date +%s.%N)
  KUAIREC_EXECUTOR=$exe KUAIREC_HOME=$d/home KUAIREC_PROFILE=tiny DAGSTER_HOME=$d \
    "$DAGSTER" asset materialize -m kuairec_pipeline.definitions --select '*' "${extra[@]}" > "$d/log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  echo "$mode rc=$rc wall_s=$(echo "$end - $start" | bc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
done
