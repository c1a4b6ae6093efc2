#!/usr/bin/env bash
# One row per suspect and oracle: the attack that made it, the test accuracy it keeps relative to
# the owner (first LIMIT test images, the suspect's own exit policy), the match count, the p-values
# of fp_check's two tests and its verdict. The time oracle runs the suspect in process on one thread.
# Pirates and independent models come from elsewhere (bench/fp_variants.sh, engine_train, bench/
# fp_false_accusation.sh); name each with the attack, e.g. pirate.model:prune30_ft or s3.model:independent.
# usage: bench/fp_robustness.sh FINGERPRINT OWNER_MODEL SUSPECT:ATTACK ...
#   env: DATA (default ../shared/data/cifar10), LIMIT (default 1000), ORACLES (default "exit time"),
#        CHECK_ARGS (more fp_check arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
fp=$1
owner=$2
shift 2
DATA=${DATA:-../shared/data/cifar10}
LIMIT=${LIMIT:-1000}
ORACLES=${ORACLES:-exit time}
bin=build/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
accuracy() { $bin/engine_run eval "$1" --data "$DATA" --limit "$LIMIT" --json 2>/dev/null |
  python3 -c "import json,sys; print(json.load(sys.stdin)['accuracy'])"; }
owner_acc=$(accuracy "$owner")
printf '%-24s %-14s %-5s %8s %8s %9s %9s %-12s %s\n' suspect attack oracle acc_kept matches p_match p_nomatch verdict queries
for spec in "$@"; do
  model=${spec%%:*}
  attack=${spec#*:}
  [ "$attack" = "$spec" ] && attack=-
  acc=$(accuracy "$model" || echo nan)
  for oracle in $ORACLES; do
    rc=0
    # shellcheck disable=SC2086
    $bin/fp_check "$fp" --suspect "$model" --oracle "$oracle" ${CHECK_ARGS:-} --json > "$tmp/c.json" 2> "$tmp/c.err" || rc=$?
    if [ "$rc" = 2 ]; then
      printf '%-24s %-14s %-5s error: %s\n' "$(basename "$model")" "$attack" "$oracle" "$(tail -1 "$tmp/c.err")"
      continue
    fi
    python3 - "$tmp/c.json" "$(basename "$model")" "$attack" "$oracle" "$acc" "$owner_acc" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
acc, owner = float(sys.argv[5]), float(sys.argv[6])
print('%-24s %-14s %-5s %8.3f %4d/%-3d %9.2g %9.2g %-12s %d' % (sys.argv[2], sys.argv[3], sys.argv[4], acc / owner,
      j['matches'], j['inputs'], j['p_value'], j['p_value_pirate'], j['verdict'], j['queries']))
PY
  done
done
