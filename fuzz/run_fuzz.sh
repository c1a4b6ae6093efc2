#!/usr/bin/env bash
# Builds fuzz_model_loader with clang (libFuzzer + AddressSanitizer, libengine instrumented) in
# its own build directory and fuzzes the model loaders for N seconds over a generated seed corpus.
# usage: fuzz/run_fuzz.sh [SECONDS=60]
# env:   FUZZ_BUILD_DIR (default build-fuzz), FUZZ_ONNX=ON|OFF (fuzz ONNX import too; default ON)
# Exits non-zero when the fuzzer finds a crash; the input that caused it is kept under
# $FUZZ_BUILD_DIR/fuzz-artifacts/ (replay: $FUZZ_BUILD_DIR/bin/fuzz_model_loader FILE).
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
flags="-fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DENGINE_WITH_FUZZERS=ON -DENGINE_BUILD_TESTS=OFF -DENGINE_WITH_ONNX="${FUZZ_ONNX:-ON}" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$build" -j2 --target fuzz_model_loader make_fuzz_seeds

corpus=$build/fuzz-corpus
artifacts=$build/fuzz-artifacts
mkdir -p "$corpus" "$artifacts"
"$build/bin/make_fuzz_seeds" "$corpus"
# A few small ONNX graphs from Debian's libonnx-testdata, when present, so ONNX import is fuzzed too.
testdata=/usr/share/libonnx-testdata/data/node
if [ "${FUZZ_ONNX:-ON}" = ON ] && [ -d "$testdata" ]; then
  for t in conv_with_strides_padding averagepool_2d_pads maxpool_2d_pads gemm_default_single_elem_vector_bias \
           flatten_axis1 relu add_bcast globalaveragepool batchnorm_example; do
    if [ -f "$testdata/test_$t/model.onnx" ]; then cp "$testdata/test_$t/model.onnx" "$corpus/onnx_$t.onnx"; fi
  done
fi

# Leaks are reported by LeakSanitizer as crashes too; -rss_limit_mb catches runaway allocations.
"$build/bin/fuzz_model_loader" -max_total_time="$seconds" -dict="$root/fuzz/model_loader.dict" \
  -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus"
echo "run_fuzz: no crash in ${seconds}s (corpus: $corpus)"
