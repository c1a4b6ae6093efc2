#!/usr/bin/env bash
# One command, one table: the engine's per-exit latency, separability, batch-128 throughput and
# FMA-peak fraction (native and oneDNN backends, 1 and 2 threads), then the peers in the same run.
# usage: bench/run_bench.sh [REPS=300] [IMAGES=1000]   (run on an idle machine; say which machine in reports)
# Early exit: the engine's batch-1 average at q = 0.9 over the first IMAGES CIFAR-10 test images beside
# ONNX Runtime cut into per-exit segment models (bench/ort_segments.py, which pip-installs onnxruntime
# and onnx when they are missing: benchmark-only tools, never run-time dependencies).
# PEER_PYTHON=/path/to/python adds one more interpreter for the peers, e.g. a virtual environment
# with a newer PyTorch from PyPI than Debian's 1.13.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-300}
images=${2:-1000}
cmake --build build -j"$(nproc)" --target bench_exits bench_train >/dev/null
first_cpu=$(taskset -pc $$ | sed 's/.*: //' | cut -d, -f1 | cut -d- -f1)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
backends=native
if build/bin/bench_exits --models resnet56 --backends onednn --reps 1 >/dev/null 2>&1; then backends=native,onednn; fi
build/bin/bench_exits --reps "$reps" --backends "$backends"
echo
echo "early exit, batch 1, one thread pinned to CPU $first_cpu, q = 0.9:"
build/bin/bench_exits --models resnet56 --backends "$backends" --q 0.9 --images "$images"
taskset -c "$first_cpu" python3 bench/ort_segments.py --q 0.9 --images "$images" || true
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
echo
PYTHON=${PEER_PYTHON:-python3} bench/train_ratio.sh || true

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
