// Measured single-core FMA peak: 12 independent 256-bit FMA chains, enough to cover the FMA
// latency on AVX2 cores, timed over many iterations. The same chains, sized to a given duration,
// measure the machine's own timing noise (compute_only_ms).
#pragma once
#include <immintrin.h>

#include <chrono>

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

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double fma_peak_gflops(long iterations = 20'000'000) {
    const auto start = std::chrono::steady_clock::now();
    volatile float sink = fma_chains(iterations);
    (void)sink;
    return double(iterations) * 12 * 8 * 2 / seconds_since(start) * 1e-9;
}

// A compute-only job that lasts about `ms` at `peak_gflops`, timed once (ms): what the machine alone
// (interrupts, the hypervisor, frequency) adds to a job of that length. Its spread is a floor under
// any kernel's latency spread on this machine.
inline double compute_only_ms(double ms, double peak_gflops) {
    // Read through a volatile, so that no call is taken for the same as the last and folded away.
    const volatile long iterations = long(ms * 1e-3 * peak_gflops * 1e9 / (12 * 8 * 2));
    const auto t0 = std::chrono::steady_clock::now();
    volatile float sink = fma_chains(iterations);
    (void)sink;
    return seconds_since(t0) * 1e3;
}

}  // namespace bench
