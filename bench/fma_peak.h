// Measured single-core FMA peak: 12 independent 256-bit FMA chains, enough to cover the FMA
// latency on AVX2 cores, timed over many iterations.
#pragma once
#include <immintrin.h>

#include <chrono>

namespace bench {

inline double fma_peak_gflops(long iterations = 20'000'000) {
    __m256 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    auto start = std::chrono::steady_clock::now();
    for (long it = 0; it < iterations; ++it)
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    __m256 sum = acc[0];
    for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
    volatile float sink = _mm256_cvtss_f32(sum);
    (void)sink;
    return double(iterations) * 12 * 8 * 2 / s * 1e-9;
}

}  // namespace bench
