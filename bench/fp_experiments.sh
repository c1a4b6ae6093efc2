#!/usr/bin/env bash
# Verifies every suspect against one fingerprint, by time (in process, one thread) and, as the
# white-box reference, by exit index; prints one JSON line per suspect and oracle.
# usage: bench/fp_experiments.sh FINGERPRINT SUSPECT[@THRESHOLD] ...
set -euo pipefail
fp=$1
shift
for spec in "$@"; do
  model=${spec%@*}
  extra=()
  [ "$spec" != "$model" ] && extra=(--suspect-threshold "${spec##*@}")
  for oracle in time exit; do
    printf '%s\t%s\t' "$spec" "$oracle"
    build/bin/fp_check "$fp" --suspect "$model" --oracle "$oracle" --reps 15 --json "${extra[@]}" || echo
  done
done
