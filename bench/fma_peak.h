// Measured single-core FMA peak with the widest vectors the native kernels run here: 16
// independent 512-bit FMA chains where they run AVX-512 (isa_of_this_cpu), else 12 of 256 bits,
// enough to cover the FMA latency on either, timed over many iterations. A core with two 512-bit
// FMA units doubles its peak on AVX-512 (this sandbox's Xeon: 176 against 94 GFLOP/s), so a
// percentage of the 256-bit peak would overstate AVX-512 kernels twofold. The same chains, sized to
// a given duration, measure the machine's own timing noise (compute_only_ms).
#pragma once
#include <immintrin.h>

#include <chrono>

#include "native/native_isa.h"

namespace bench {

// 12 x 8 FMA chains for `iterations` steps: 192 FLOP a step, no memory traffic.
__attribute__((noinline)) inline float fma_chains(long iterations) {
    __m256 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iterations; ++it)
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    __m256 sum = acc[0];
    for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
    return _mm256_cvtss_f32(sum);
}

// 16 x 16 FMA chains for `iterations` steps: 512 FLOP a step. Called only where AVX-512 runs.
__attribute__((noinline, target("avx512f"))) inline float fma_chains_512(long iterations) {
    __m512 acc[16];
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < iterations; ++it)
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    __m512 sum = acc[0];
    for (int i = 1; i < 16; ++i) sum = _mm512_add_ps(sum, acc[i]);
    return _mm512_cvtss_f32(sum);
}

// Which chains: the width of the native kernels on this CPU, and the FLOP of one step.
inline bool peak_on_avx512() { return engine::native::isa_of_this_cpu() == engine::native::Isa::avx512; }
inline const char* peak_isa_name() { return peak_on_avx512() ? "AVX-512" : "AVX2"; }
inline double flop_per_step() { return peak_on_avx512() ? 16 * 16 * 2 : 12 * 8 * 2; }
inline float widest_fma_chains(long iterations) {
    return peak_on_avx512() ? fma_chains_512(iterations) : fma_chains(iterations);
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double fma_peak_gflops(long iterations = 20'000'000) {
    const auto start = std::chrono::steady_clock::now();
    volatile float sink = widest_fma_chains(iterations);
    (void)sink;
    return double(iterations) * flop_per_step() / seconds_since(start) * 1e-9;
}

// A compute-only job that lasts about `ms` at `peak_gflops`, timed once (ms): what the machine alone
// (interrupts, the hypervisor, frequency) adds to a job of that length. Its spread is a floor under
// any kernel's latency spread on this machine.
inline double compute_only_ms(double ms, double peak_gflops) {
    // Read through a volatile, so that no call is taken for the same as the last and folded away.
    const volatile long iterations = long(ms * 1e-3 * peak_gflops * 1e9 / flop_per_step());
    const auto t0 = std::chrono::steady_clock::now();
    volatile float sink = widest_fma_chains(iterations);
    (void)sink;
    return seconds_since(t0) * 1e3;
}

}  // namespace bench
