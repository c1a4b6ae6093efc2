#!/usr/bin/env bash
# ResNet-56 training throughput, batch 128, 2 threads: the engine (bench_train) against PyTorch
# (bench_train.py, same architecture and SDN loss) in interleaved rounds, the order alternating, so
# that the shared machine's slow and fast phases fall on both; prints each round and the ratio's
# median, least and greatest. The issue's goal is a ratio of 2 or more.
# usage: bench/train_ratio.sh [ROUNDS=4] [ITERS=8]    PYTHON=an interpreter with torch (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}
iters=${2:-8}
py=${PYTHON:-python3}
if ! torch_version=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
  echo "train_ratio: $py cannot import torch; set PYTHON= to an interpreter that can" >&2
  exit 1
fi
cmake --build build --target bench_train >/dev/null
rate() { awk '$1 == "resnet56" { print $4 }'; }  # images/s column of either tool's table
native_run() { build/bin/bench_train --threads 2 --iters "$iters" resnet56 | rate; }
peer_run() { "$py" bench/bench_train.py --threads 2 --iters "$iters" resnet56 | rate; }
echo "ResNet-56 training, batch 128, 2 threads, $iters steps a round; PyTorch $torch_version"
ratios=""
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then
    native=$(native_run); peer=$(peer_run)
  else
    peer=$(peer_run); native=$(native_run)
  fi
  [ -n "$native" ] && [ -n "$peer" ] || { echo "train_ratio: round $r gave no rate" >&2; exit 1; }
  ratio=$(awk -v a="$native" -v b="$peer" 'BEGIN { printf "%.2f", a / b }')
  echo "round $r: engine $native images/s, PyTorch $peer images/s, ratio $ratio"
  ratios="$ratios $ratio"
done
echo "$ratios" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '
  { v[NR] = $1 }
  END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "ratio engine / PyTorch: median %.2f, least %.2f, greatest %.2f over %d rounds\n", m, v[1], v[NR], NR }'
