#!/usr/bin/env bash
# The one device check of the cuda backend: on a machine with a GPU, runs its tests (every op case
# forward and backward and the model zoo against the CPU backends, early exit inside a CUDA graph
# against Plan::run_early, the shared models' per-exit logits against PyTorch's, the early-exit
# decisions on all 10,000 CIFAR-10 test images against the native backend, a training step's
# gradients) and prints the benchmark table (bench_gpu: ResNet-56 SDN batch-1 latency per exit,
# median and p99; batch-256 images/s; training images/s) with PyTorch on the same GPU when python3
# can import torch there. Everything it prints also goes to $OUT/gpu_check.log when $OUT is set.
#
# The device machine gets the repository's working tree only (not ../shared), has no registry to
# install from, and its image lacks this project's C++ dependencies (fmt, ONNX, doctest, ...). So the
# binaries are built HERE (nvcc and cuDNN are installed on the development machines) and travel in
# .gpu_carry/ with the data; the device supplies the CUDA runtime, cuBLAS and cuDNN 9 libraries,
# which this script finds (CUDA toolkit folders or the nvidia-* Python wheels beside PyTorch).
#
# 1. Here, in the repository root (about 2-4 minutes on 2 cores; 45-50 MB in .gpu_carry/):
#        bench/gpu_check.sh --prepare            # SHARED=../shared by default
# 2. The device tool's run, from the same checkout (the session's own repo root):
#        run(command="bench/gpu_check.sh", carry=[".gpu_carry"], timeout_s=540)
#    It needs about 4-6 minutes: tests up to 4, bench 1-2, PyTorch about 1. Each step has its own
#    timeout so that a hang cannot eat the session's 15 device minutes.
# Without carried binaries (no --prepare) it tries to build in build-gpu/ there with -j16, which works
# only where cmake finds every dependency.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=${GPU_CARRY:-.gpu_carry}
SHARED=${SHARED:-../shared}

if [ "${1:-}" = "--prepare" ]; then
    set -e
    exclude="$(git rev-parse --git-common-dir)/info/exclude"
    grep -qx "/$CARRY/" "$exclude" 2>/dev/null || echo "/$CARRY/" >>"$exclude"
    mkdir -p build-gpu
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DENGINE_WITH_CUDA=ON -DENGINE_WITH_ONEDNN=OFF >build-gpu/configure.log 2>&1 ||
        { cat build-gpu/configure.log; exit 1; }
    grep -q "cuda backend: on" build-gpu/configure.log ||
        { grep "cuda backend" build-gpu/configure.log; echo "gpu_check: CUDA not found here"; exit 1; }
    cmake --build build-gpu -j2 --target test_cuda test_cuda_plan bench_gpu
    rm -rf "$CARRY"
    mkdir -p "$CARRY/bin" "$CARRY/lib" "$CARRY/models" "$CARRY/data/cifar10"
    for b in test_cuda test_cuda_plan bench_gpu; do
        cp build-gpu/bin/$b "$CARRY/bin/" && strip "$CARRY/bin/$b"
    done
    # Shared libraries a CUDA image may lack; the CUDA, cuBLAS and cuDNN ones come from the device.
    for lib in $(ldd build-gpu/bin/test_cuda build-gpu/bin/bench_gpu | awk '/=>/ {print $3}' | sort -u); do
        case "$(basename "$lib")" in
            libc.so*|libm.so*|libstdc++*|libgcc_s*|ld-linux*|libpthread*|libdl.so*|librt.so*|libcuda*|libcublas*|libcudnn*) ;;
            *) cp -L "$lib" "$CARRY/lib/" ;;
        esac
    done
    cp "$SHARED/models/resnet56_s1.onnx" "$SHARED/models/resnet56_s1.reference.safetensors" \
       "$SHARED/models/resnet56_s3.onnx" "$SHARED/models/resnet56_s3.reference.safetensors" "$CARRY/models/"
    cp "$SHARED/data/cifar10/test_batch.bin" "$SHARED/data/cifar10/batches.meta.txt" "$CARRY/data/cifar10/"
    du -sh "$CARRY"
    echo "gpu_check: ready; now run(command=\"bench/gpu_check.sh\", carry=[\"$CARRY\"], timeout_s=540)"
    exit 0
fi

LOG=${OUT:+$OUT/gpu_check.log}
exec > >(tee ${LOG:-/dev/null}) 2>&1
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step machine
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: not available"
command -v nvcc >/dev/null && nvcc --version | tail -1

# CUDA runtime, cuBLAS and cuDNN 9 from the machine: toolkit folders, then the wheels beside PyTorch.
libdirs=""
pydirs=$(python3 -c 'import glob, os, site; ps = site.getsitepackages() + [site.getusersitepackages()]; print(" ".join(d for p in ps for d in glob.glob(os.path.join(p, "nvidia", "*", "lib"))))' 2>/dev/null)
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu $pydirs; do
    [ -d "$d" ] && ls "$d" | grep -q -E '^lib(cudart|cublas|cudnn)\.so' && libdirs="$libdirs:$d"
done
# Only our binaries get this path: python3 (PyTorch) keeps its own libraries.
LIBPATH="$PWD/$CARRY/lib${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "library path for the engine's binaries: $LIBPATH"
with_libs() { LD_LIBRARY_PATH="$LIBPATH" "$@"; }

BIN=$CARRY/bin
if [ ! -x "$BIN/test_cuda" ]; then
    step "no carried binaries in $CARRY/bin: building here (build-gpu, -j16)"
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DENGINE_WITH_CUDA=ON -DENGINE_WITH_ONEDNN=OFF &&
        timeout 300 cmake --build build-gpu -j16 --target test_cuda test_cuda_plan bench_gpu || { echo "gpu_check: build failed"; exit 1; }
    BIN=build-gpu/bin
fi
for b in test_cuda test_cuda_plan bench_gpu; do
    missing=$(with_libs ldd "$BIN/$b" 2>&1 | grep "not found")
    [ -n "$missing" ] && { echo "gpu_check: $b is missing libraries:"; echo "$missing"; }
done
export ENGINE_SHARED_DIR="$PWD/$CARRY" ENGINE_CIFAR_DIR="$PWD/$CARRY/data/cifar10"

status=0
step "host-side tests (test_cuda_plan)"
with_libs timeout 60 "$BIN/test_cuda_plan" || status=1
step "GPU tests (test_cuda)"
with_libs timeout 200 "$BIN/test_cuda" || status=1
step "bench_gpu (ResNet-56 SDN, CIFAR-10 test set)"
with_libs timeout 120 "$BIN/bench_gpu" "$CARRY/models/resnet56_s1.onnx" --data "$CARRY/data/cifar10" --reps 400 || status=1
step "PyTorch on the same GPU"
if python3 -c 'import torch' 2>/dev/null; then
    timeout 90 python3 bench/bench_gpu_torch.py --reps 400 || echo "PyTorch bench failed or timed out"
else
    echo "PyTorch: not importable on this machine (python3 -c 'import torch' failed): no peer figures"
fi
step "done, status $status"
exit $status
