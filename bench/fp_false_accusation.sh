#!/usr/bin/env bash
# The false-accusation rate, measured: crafts a fingerprint of OWNER with the null calibrated on
# REFERENCES (independent models of the owner's architecture), then checks INDEPENDENT models that
# took no part in crafting. Every "match" among them is a false accusation. Prints one row per
# suspect and oracle, then the count and a one-sided 95 % (Clopper-Pearson) upper bound on the rate.
# The exit oracle reads the suspect's exits (deterministic: the decision on the model itself); the
# time oracle decides by timing alone, in process on one thread (TIME=0 skips it).
#
# Defaults, on the embedded small arch: owner weights/small_s1, reference weights/small_s2;
# independents weights/small_s3 (fully trained, another seed) plus SHORT copies of the small arch
# trained here with seeds 101.. (1 epoch on the first 10,000 CIFAR-10 images: independent but far
# weaker than small_s3; about a minute each on one shared core), plus the shared ResNet-56 seed 3 and MobileNet
# (other architectures, same input). The goal of issue 15 is <= 1 % over >= 10 independent models:
# a bound that low needs about 300 models with no accusation; with 12 the bound is about 22 %.
# usage: bench/fp_false_accusation.sh OUT [SHORT_COPIES]
#   env: OWNER, REFERENCES (space-separated), INDEPENDENTS (replaces the default list), DATA,
#        GEN_ARGS (extra fp_gen arguments), TIME=0|1, THREADS
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
short=${2:-10}
bin=build/bin
DATA=${DATA:-../shared/data/cifar10}
OWNER=${OWNER:-weights/small_s1.model}
REFERENCES=${REFERENCES:-weights/small_s2.model}
THREADS=${THREADS:-1}
TIME=${TIME:-1}
mkdir -p "$out"
[ -e "$DATA" ] || { echo "fp_false_accusation: no data at $DATA (set DATA=...)" >&2; exit 2; }

if [ -z "${INDEPENDENTS:-}" ]; then
  INDEPENDENTS="weights/small_s3.model"
  for ((s = 101; s < 101 + short; ++s)); do
    m=$out/short_s$s.model
    if [ ! -e "$m" ]; then
      echo "== training short independent copy seed $s" >&2
      $bin/engine_train --arch small --data "$DATA" --epochs 1 --limit 10000 --batch 128 --lr 0.1 --mode sdn \
        --seed $s --threads "$THREADS" --val-limit 0 --out "$m" > "$out/short_s$s.out" 2>&1
    fi
    INDEPENDENTS="$INDEPENDENTS $m"
  done
  for m in ../shared/models/resnet56_s3.onnx ../shared/models/mobilenet_s1.onnx; do
    [ -e "$m" ] && INDEPENDENTS="$INDEPENDENTS $m"
  done
fi

refs=()
for r in $REFERENCES; do refs+=(--reference "$r"); done
fp=$out/owner.fp
if [ ! -e "$fp" ]; then
  echo "== crafting $OWNER (references: $REFERENCES)" >&2
  # shellcheck disable=SC2086
  $bin/fp_gen "$OWNER" --out "$fp" --per-exit 10 --data "$DATA" --threads "$THREADS" "${refs[@]}" ${GEN_ARGS:-} \
    > "$out/owner.gen" 2>&1
fi

oracles=(exit)
[ "$TIME" = 1 ] && oracles+=(time)
printf '%-28s %-5s %8s %6s %9s %9s %-12s %s\n' suspect oracle matches null p_match p_nomatch verdict reps
accused=0
checked=0
for m in $INDEPENDENTS; do
  for oracle in "${oracles[@]}"; do
    rc=0
    $bin/fp_check "$fp" --suspect "$m" --oracle "$oracle" --json > "$out/check.json" 2>/dev/null || rc=$?
    [ "$rc" = 2 ] && { printf '%-28s %-5s error\n' "$(basename "$m")" "$oracle"; continue; }
    python3 - "$out/check.json" "$(basename "$m")" "$oracle" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print('%-28s %-5s %4d/%-3d %6.3f %9.2g %9.2g %-12s %d' % (sys.argv[2], sys.argv[3], j['matches'], j['inputs'],
      j['null_match_rate'], j['p_value'], j['p_value_pirate'], j['verdict'], j['reps']))
PY
    if [ "$oracle" = exit ]; then
      checked=$((checked + 1))
      [ "$rc" = 0 ] && accused=$((accused + 1))
    fi
  done
done
python3 - "$accused" "$checked" <<'PY'
import sys
k, n = int(sys.argv[1]), int(sys.argv[2])
# One-sided 95 % Clopper-Pearson upper bound on the rate, by bisection on the binomial tail.
from math import comb
def lower_tail(k, n, p): return sum(comb(n, i) * p**i * (1 - p)**(n - i) for i in range(k + 1))
lo, hi = 0.0, 1.0
for _ in range(60):
    mid = (lo + hi) / 2
    if lower_tail(k, n, mid) > 0.05: lo = mid
    else: hi = mid
print('false accusations (exit oracle): %d of %d independent models; 95 %% upper bound on the rate %.1f %%'
      % (k, n, 100 * hi if k < n else 100.0))
PY
