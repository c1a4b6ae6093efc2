#!/usr/bin/env bash
# One command, one table: the engine's per-exit latency, separability, batch-128 throughput and
# FMA-peak fraction (native and oneDNN backends, 1 and 2 threads), then the peers in the same run.
# usage: bench/run_bench.sh [REPS=300]   (run on an idle machine; say which machine in reports)
# PEER_PYTHON=/path/to/python adds one more interpreter for the peers, e.g. a virtual environment
# with a newer PyTorch from PyPI than Debian's 1.13.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-300}
cmake --build build -j"$(nproc)" --target bench_exits bench_train >/dev/null
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
backends=native
if build/bin/bench_exits --models resnet56 --backends onednn --reps 1 >/dev/null 2>&1; then backends=native,onednn; fi
build/bin/bench_exits --reps "$reps" --backends "$backends"
echo
echo "peers (same weights for ONNX Runtime; same architectures for PyTorch):"
for py in python3 /usr/bin/python3 ${PEER_PYTHON:-}; do
  command -v "$py" >/dev/null && "$py" bench/bench_peers.py --reps "$reps" || true
done
echo
echo "training, batch 128, 2 threads (images/s):"
build/bin/bench_train 2>/dev/null || true
[ "$backends" = native ] || build/bin/bench_train --backend onednn 2>/dev/null || true
/usr/bin/python3 bench/bench_train.py --threads 2 2>/dev/null || python3 bench/bench_train.py --threads 2 || true
[ -z "${PEER_PYTHON:-}" ] || "$PEER_PYTHON" bench/bench_train.py --threads 2 || true

# This sandbox has AVX-512, which oneDNN, ONNX Runtime and PyTorch use; the product targets AVX2-only
# CPUs (Zen 3). The same tables with oneDNN (ours and PyTorch's) and PyTorch's own kernels capped to
# AVX2 show the comparison on the target ISA (ONNX Runtime has no such switch).
export DNNL_MAX_CPU_ISA=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
echo
echo "capped to AVX2 (DNNL_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2):"
[ "$backends" = native ] || build/bin/bench_exits --reps "$reps" --backends onednn
/usr/bin/python3 bench/bench_peers.py --reps "$reps" 2>/dev/null || true
build/bin/bench_train --backend onednn 2>/dev/null || true
/usr/bin/python3 bench/bench_train.py --threads 2 2>/dev/null || true
