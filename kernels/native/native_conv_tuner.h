// Plan-time choice of each convolution's kernel on the running CPU: the candidates
// (native_conv_kernels.h) are timed once per convolution shape and instruction set, on one sample and
// one thread (batch-1 latency is what the engine is for), and the fastest runs that convolution at
// every batch size and thread count, so that a sample's result does not depend on its batch. The
// choice is kept in the process and in a small per-CPU file, so that later processes on the same CPU
// model plan without timing. Nothing here runs on the inference path.
#pragma once
#include <string>
#include <vector>

#include "native_conv_kernels.h"

namespace engine::native {

enum class KernelMode { fixed, tuned };
// ENGINE_KERNELS: "fixed" (the rule the backend had before tuning: reproducible on every machine)
// or "tuned" (the default); throws naming any other value.
KernelMode kernel_mode_from_env();

// The kernel to run this convolution (a with its fused flags; x at any batch).
ConvKernel conv_kernel_tuned(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, Isa isa);

// The fastest of `candidates` on synthetic data of these shapes, by the least time of several
// interleaved rounds; the first candidate unless another is at least 3 % faster.
ConvKernel conv_kernel_fastest(const std::vector<ConvKernel>& candidates, const Attrs& a, const Shape& x,
                               const Shape& w, const Shape& y, int threads);

// Each candidate's time per run (seconds), one entry per round, from `rounds` interleaved rounds of
// enough repetitions for about 3 ms, each run on the next of enough copies of the weights that they
// come from beyond L2 (from L3), as in a network: what conv_kernel_fastest decides on, and bench_kernels prints.
std::vector<std::vector<double>> conv_kernel_times(const std::vector<ConvKernel>& candidates, const Attrs& a,
                                                   const Shape& x, const Shape& w, const Shape& y, int threads,
                                                   int rounds);

// "<model name> <isa flags>" of the running CPU, as the cache file records it.
std::string cpu_model();
// ENGINE_KERNEL_CACHE (a file; empty or "off": no file), else $XDG_CACHE_HOME/engine/kernels-<hash of
// cpu_model()>.json, else ~/.cache/engine/...; empty where there is neither.
std::string kernel_cache_path();
// Forgets what this process learnt; the file is read again at the next choice (for tests).
void kernel_cache_reset();

}  // namespace engine::native
