#!/usr/bin/env bash
# The main job, on the embedded default (weights/): craft a timing fingerprint for the owner's
# model, make a pirated copy of it (pruned 30 % and fine-tuned), and verify the pirate and an
# independently trained model by response time alone, each served by `engine_run serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-demo-output}
OWNER=${OWNER:-weights/small_s1.model}              # the model we protect
REFERENCE=${REFERENCE:-weights/small_s2.model}      # an independent model the owner trained: calibrates the null
STEER=${STEER:-weights/small_s4.model weights/small_s5.model}  # more such models: steer selection away from them
INDEPENDENT=${INDEPENDENT:-weights/small_s3.model}  # another independent model: must be rejected

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target engine_run engine_train fp_gen fp_check >/dev/null
[ -e "$DATA" ] || { echo "demo: CIFAR-10 not found at $DATA (set DATA=...)" >&2; exit 1; }
mkdir -p "$OUT"
bin=build/bin

echo "== the owner's model"
$bin/engine_run info "$OWNER"
$bin/engine_run eval "$OWNER" --data "$DATA" --limit 2000 --latency-samples 100

echo "== crafting the fingerprint (owner side)"
# Crafted from noise (the default); DATA trains the owner's own fine-tuned, adversarial and
# head-retrained copies that join the ensemble (about a minute); REFERENCE is held out and
# calibrates the null; selection keeps the inputs that do not transfer to the STEER models
# (fp_gen crafts more candidates for each: about a minute and a half).
steer=()
for m in $STEER; do steer+=(--reference "$m"); done
$bin/fp_gen "$OWNER" --out "$OUT/owner.fp" --data "$DATA" "${steer[@]}" --null-reference "$REFERENCE"

echo "== a pirate prunes 30 % of the stolen weights and fine-tunes them"
$bin/engine_train --from "$OWNER" --data "$DATA" --epochs 1 --limit 5000 --lr 0.01 --schedule constant \
  --prune 0.3 --val-limit 1000 --out "$OUT/pirate.model" --log "$OUT/pirate.log.jsonl"

echo "== both suspects answer only through a loopback HTTP port"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
serve() {  # model port
  $bin/engine_run serve "$1" --listen "127.0.0.1:$2" 2>"$OUT/serve_$2.log" &
  pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: server for $1 did not start (see $OUT/serve_$2.log)" >&2
  exit 1
}
serve "$OUT/pirate.model" 18731
serve "$INDEPENDENT" 18732

for suspect in "pirated copy:18731" "independent model:18732"; do
  name=${suspect%%:*}
  port=${suspect##*:}
  echo "== verifying the $name by time alone"
  # fp_check exits 0 for match, 1 for no-match, 3 for inconclusive and 2 for an error.
  status=0
  $bin/fp_check "$OUT/owner.fp" --suspect-url "http://127.0.0.1:$port" --reps 15 --plot "$OUT/check_$port.svg" || status=$?
  [ "$status" -ne 2 ] || { echo "demo: fp_check failed on the $name" >&2; exit 1; }
done
echo "plots: $OUT/check_18731.svg $OUT/check_18732.svg"
