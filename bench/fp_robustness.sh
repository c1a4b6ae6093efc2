#!/usr/bin/env bash
# Issue 15's robustness table. One row per suspect and oracle: the attack that made it, the test
# accuracy it keeps relative to the owner (first LIMIT test images, the suspect's own exit policy),
# the match count, the p-values of fp_check's two tests and its verdict. The time oracle runs the
# suspect in process on one thread; the exit oracle reads its exits (the white-box reference).
#
# bench/fp_robustness.sh --build OUT [OWNER]   builds everything, then prints both tables:
#   the pirates of bench/fp_pirates.sh, independent models (same architecture: weights/small_s3..s14 and SHORT
#   copies trained here for 2 epochs on 20,000 images, seeds 101..; other architectures: the shared
#   resnet56_s3 and mobilenet_s1), and two fingerprints of OWNER (default weights/small_s1.model):
#   "default" (fp_gen with nothing but a same-architecture --reference REFERENCE) and "full" (a
#   second same-architecture reference, copy seed 100, steering selection; 20 inputs per exit) and, where
#   the STEER models exist, "steered" (scripts/demo.sh's recipe: they steer selection, REFERENCE is held
#   out; its table leaves them out of the independents, since they took part in crafting),
#   beside the prediction-based baselines (fp_gen --kind misclassified|ipguard|cae, the same two
#   references) in the default table.
#   env: REFERENCE (default weights/small_s2.model, or resnet56_s3 for a ResNet-56 owner), STEER (default
#        weights/small_s4.model weights/small_s5.model for a small owner, none for others), SHORT (4),
#        THREADS (1), plus fp_pirates.sh's (SCRATCH_EPOCHS, ...) and the table's below.
# bench/fp_robustness.sh FINGERPRINT OWNER SUSPECT:ATTACK ...   prints the table for given suspects
#   (name each with the attack, e.g. pirate.model:prune30_ft); label fingerprints get rows of their own,
#   oracle "label:KIND", by the same decision rule; FINGERPRINT "-": label fingerprints only.
#   env: DATA (default ../shared/data/cifar10), LIMIT (default 1000), ORACLES (default "exit time"),
#        LABEL_FPS (label fingerprints, "KIND:PATH ...", e.g. "misclassified:m.fp ipguard:i.fp cae:c.fp"),
#        CHECK_ARGS (more fp_check arguments, timing rows only)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --build ]; then
  out=${2:?usage: bench/fp_robustness.sh --build OUT [OWNER]}
  OWNER=${3:-weights/small_s1.model}
  DATA=${DATA:-../shared/data/cifar10}
  THREADS=${THREADS:-1}
  bin=build/bin
  mkdir -p "$out/independent"
  case "$OWNER" in
    *resnet56*) REFERENCE=${REFERENCE:-../shared/models/resnet56_s3.onnx}; arch=resnet56 ;;
    *) REFERENCE=${REFERENCE:-weights/small_s2.model}; arch=small
       STEER=${STEER-weights/small_s4.model weights/small_s5.model} ;;
  esac
  steering=()
  for m in ${STEER:-}; do [ -e "$m" ] && steering+=("$m"); done
  pirates=$(DATA=$DATA THREADS=$THREADS bench/fp_pirates.sh "$OWNER" "$out/pirates")
  independents=()
  for m in weights/small_s[3-9].model weights/small_s1[0-4].model ../shared/models/resnet56_s3.onnx ../shared/models/mobilenet_s1.onnx; do
    [ -e "$m" ] && [ "$m" != "$REFERENCE" ] && [ "$m" != "$OWNER" ] && independents+=("$m:independent")
  done
  short() {  # seed: a same-architecture copy trained here (2 epochs, first 20,000 images)
    local m=$out/independent/${arch}_s$1.model
    if [ ! -e "$m" ]; then
      echo "== independent copy seed $1" >&2
      $bin/engine_train --arch "$arch" --data "$DATA" --epochs 2 --limit 20000 --lr 0.1 --mode sdn --seed "$1" \
        --threads "$THREADS" --val-limit 0 --out "$m" > "$m.out" 2>&1
    fi
    echo "$m"
  }
  for ((s = 101; s < 101 + ${SHORT:-4}; ++s)); do independents+=("$(short $s):independent_short"); done
  steer=$(short 100)
  if [ ! -e "$out/default.fp" ]; then
    echo "== crafting the default fingerprint" >&2
    $bin/fp_gen "$OWNER" --out "$out/default.fp" --reference "$REFERENCE" --data "$DATA" --threads "$THREADS" \
      > "$out/default.gen" 2>&1
  fi
  own=()  # the default's own copies (fine-tuned, adversarial, head-retrained) join the other recipes too
  for m in "$out"/default.fp.own_*.model; do [ -e "$m" ] && own+=(--variant "$m"); done
  if [ ! -e "$out/full.fp" ]; then
    echo "== crafting the full-recipe fingerprint" >&2
    $bin/fp_gen "$OWNER" --out "$out/full.fp" --reference "$steer" --reference "$REFERENCE" --per-exit 20 \
      "${own[@]}" --data "$DATA" --threads "$THREADS" > "$out/full.gen" 2>&1
  fi
  recipes="default full"
  if [ ${#steering[@]} -gt 0 ]; then
    recipes="$recipes steered"
    if [ ! -e "$out/steered.fp" ]; then
      echo "== crafting the steered fingerprint" >&2
      steer_args=()
      for m in "${steering[@]}"; do steer_args+=(--reference "$m"); done
      $bin/fp_gen "$OWNER" --out "$out/steered.fp" "${steer_args[@]}" --null-reference "$REFERENCE" "${own[@]}" \
        --data "$DATA" --threads "$THREADS" > "$out/steered.gen" 2>&1
    fi
  fi
  labels=
  for kind in misclassified ipguard cae; do
    if [ ! -e "$out/$kind.fp" ]; then
      echo "== crafting the $kind label fingerprint" >&2
      $bin/fp_gen "$OWNER" --kind "$kind" --out "$out/$kind.fp" --reference "$steer" --reference "$REFERENCE" \
        "${own[@]}" --data "$DATA" --threads "$THREADS" > "$out/$kind.gen" 2>&1 || { echo "fp_gen --kind $kind failed: see $out/$kind.gen" >&2; continue; }
    fi
    labels="$labels $kind:$out/$kind.fp"
  done
  for recipe in $recipes; do
    echo
    echo "$recipe fingerprint of $OWNER: $(grep -h 'null match rate' "$out/$recipe.gen")"
    [ "$recipe" = default ] && label_fps=$labels || label_fps=
    suspects=()
    for spec in "${independents[@]}"; do
      [ "$recipe" = steered ] && [[ " ${steering[*]} " == *" ${spec%%:*} "* ]] && continue
      suspects+=("$spec")
    done
    # shellcheck disable=SC2086
    LABEL_FPS="$label_fps" "$0" "$out/$recipe.fp" "$OWNER" "$OWNER:owner" $pirates "${suspects[@]}"
  done
  exit 0
fi
fp=$1
owner=$2
shift 2
DATA=${DATA:-../shared/data/cifar10}
LIMIT=${LIMIT:-1000}
ORACLES=${ORACLES:-exit time}
LABEL_FPS=${LABEL_FPS:-}
bin=build/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
accuracy() { $bin/engine_run eval "$1" --data "$DATA" --limit "$LIMIT" --json 2>/dev/null |
  python3 -c "import json,sys; print(json.load(sys.stdin)['accuracy'])"; }
owner_acc=$(accuracy "$owner")
# row MODEL ATTACK ORACLE_NAME ACC FINGERPRINT FP_CHECK_ARGS...: one fp_check and its line of the table
row() {
  local model=$1 attack=$2 name=$3 acc=$4 file=$5 rc=0
  shift 5
  $bin/fp_check "$file" --suspect "$model" "$@" --json > "$tmp/c.json" 2> "$tmp/c.err" || rc=$?
  if [ "$rc" = 2 ]; then
    printf '%-24s %-15s %-20s error: %s\n' "$(basename "$model")" "$attack" "$name" "$(tail -1 "$tmp/c.err")"
    return
  fi
  python3 - "$tmp/c.json" "$(basename "$model")" "$attack" "$name" "$acc" "$owner_acc" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
acc, owner = float(sys.argv[5]), float(sys.argv[6])
print('%-24s %-15s %-20s %8.3f %4d/%-3d %6.3f %9.2g %9.2g %-12s %d' % (sys.argv[2], sys.argv[3], sys.argv[4],
      acc / owner, j['matches'], j['inputs'], j['null_match_rate'], j['p_value'], j['p_value_pirate'], j['verdict'],
      j['queries']))
PY
}
printf '%-24s %-15s %-20s %8s %8s %6s %9s %9s %-12s %s\n' suspect attack oracle acc_kept matches null p_match \
  p_nomatch verdict queries
for spec in "$@"; do
  model=${spec%%:*}
  attack=${spec#*:}
  [ "$attack" = "$spec" ] && attack=-
  acc=$(accuracy "$model" || echo nan)
  if [ "$fp" != - ]; then
    for oracle in $ORACLES; do
      # shellcheck disable=SC2086
      row "$model" "$attack" "$oracle" "$acc" "$fp" --oracle "$oracle" ${CHECK_ARGS:-}
    done
  fi
  for label in $LABEL_FPS; do
    row "$model" "$attack" "label:${label%%:*}" "$acc" "${label#*:}" --oracle label
  done
done
