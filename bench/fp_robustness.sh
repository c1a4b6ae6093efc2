#!/usr/bin/env bash
# One row per suspect and oracle: the attack that made it, the test accuracy it keeps relative to
# the owner (first LIMIT test images, the suspect's own exit policy), the match count, the null it is
# tested against, the p-values of fp_check's two tests and its verdict. The time oracle runs the
# suspect in process on one thread.
# Pirates and independent models come from elsewhere (bench/fp_variants.sh, engine_train, bench/
# fp_false_accusation.sh); name each with the attack, e.g. pirate.model:prune30_ft or s3.model:independent.
# Beside the timing fingerprint, the prediction-based baselines (fp_gen --kind misclassified|ipguard|cae)
# get rows of their own, oracle "label:KIND", checked on the same suspects by the same decision rule.
# usage: bench/fp_robustness.sh FINGERPRINT OWNER_MODEL SUSPECT:ATTACK ...
#   FINGERPRINT "-": label fingerprints only
#   env: DATA (default ../shared/data/cifar10), LIMIT (default 1000), ORACLES (default "exit time"),
#        LABEL_FPS (label fingerprints, "KIND:PATH ...", e.g. "misclassified:m.fp ipguard:i.fp cae:c.fp"),
#        CHECK_ARGS (more fp_check arguments, timing rows only)
set -euo pipefail
cd "$(dirname "$0")/.."
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
