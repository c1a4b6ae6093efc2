#!/usr/bin/env bash
# Early-exit decisions of several backends on a whole test set, sample by sample: each backend's
# exit, class and confidence per image (engine_run eval --per-sample), then how many images any
# two backends send to a different exit or class, and the largest confidence difference.
# usage: bench/compare_decisions.sh MODEL THRESHOLD [DATA=../shared/data/cifar10] [BACKENDS=native,onednn,ref]
# The reference backend takes about an hour for ResNet-56 on the 10,000 CIFAR-10 test images.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?model}
q=${2:?threshold}
data=${3:-../shared/data/cifar10}
backends=${4:-native,onednn,ref}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cmake --build build -j"$(nproc)" --target engine_run >/dev/null
for b in ${backends//,/ }; do
  build/bin/engine_run eval "$model" --data "$data" --threshold "$q" --backend "$b" --latency-samples 0 \
    --per-sample "$out/$b.csv" --json >"$out/$b.json"
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]:8s} accuracy {100*j['accuracy']:.2f} %  exits {j['exit_histogram']}  {j['wall_s']:.1f} s\")" \
    "$out/$b.json" "$b"
done
python3 - "$out" ${backends//,/ } <<'EOF'
import csv, itertools, sys
out, names = sys.argv[1], sys.argv[2:]
rows = {n: list(csv.reader(open(f"{out}/{n}.csv")))[1:] for n in names}
for a, b in itertools.combinations(names, 2):
    differ = [r[0] for r, s in zip(rows[a], rows[b]) if r[:4] != s[:4]]
    worst = max(abs(float(r[4]) - float(s[4])) for r, s in zip(rows[a], rows[b]))
    print(f"{a} vs {b}: {len(differ)} of {len(rows[a])} images differ in exit or class"
          f"{' (first: ' + ', '.join(differ[:5]) + ')' if differ else ''}; largest confidence difference {worst:.1e}")
EOF
