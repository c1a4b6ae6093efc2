#!/usr/bin/env bash
# Time oracle against the exit oracle on a white-box suspect (run in process, pinned to core 0):
# per-exit agreement at 1, 3 and 10 repetitions per input, on a quiet machine and while a bounded
# load generator keeps core 1 busy (a busy loop killed after at most 10 minutes).
# usage: bench/oracle_agreement.sh FINGERPRINT SUSPECT_MODEL
set -euo pipefail
cd "$(dirname "$0")/.."
fp=$1
suspect=$2
bin=build/bin
[ -x $bin/fp_check ] || { echo "oracle_agreement: build fp_check first" >&2; exit 1; }
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %4s %9s %8s  %s\n' load reps agreement matches "agreement per exit (exit oracle's exit -> same exit by time)"
run() {  # label reps
  taskset -c 0 $bin/fp_check "$fp" --suspect "$suspect" --reps "$2" --json |
    python3 -c "import json,sys; j=json.load(sys.stdin); print('%-8s %4d %9.3f %5d/%d  %s' % ('$1', $2, j['oracle_agreement'], j['matches'], j['inputs'], ' '.join('%.2f' % a for a in j['oracle_agreement_per_exit'])))"
}
for reps in 1 3 10; do run idle $reps; done
timeout 600 taskset -c 1 sh -c 'while :; do :; done' &
load=$!
trap 'kill $load 2>/dev/null || true' EXIT
for reps in 1 3 10; do run busy $reps; done
