#include "native_linear.h"

#include <immintrin.h>
#include <omp.h>

#include <cmath>

#include "native_simd.h"

namespace engine::native {

float linear_dot(const float* a, const float* b, int64_t K) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t k = 0;
    for (; k + 32 <= K; k += 32)
        for (int r = 0; r < 4; ++r)
            acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8 * r), _mm256_loadu_ps(b + k + 8 * r), acc[r]);
    for (; k + 8 <= K; k += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc[0]);
    float s = horizontal_sum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; k < K; ++k) s = std::fma(a[k], b[k], s);
    return s;
}

void linear_rows(const float* a, const float* b, const float* c, float* y, int64_t M, int64_t N, int64_t K, Isa isa,
                 int threads) {
    auto rows = [&](int64_t i0, int64_t i1) {
        if (isa == Isa::avx512) return linear_rows_avx512(a, b, c, y, i0, i1, N, K);
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t j = 0; j < N; ++j) y[i * N + j] = (c ? c[j] : 0.0f) + linear_dot(a + i * K, b + j * K, K);
    };
    // A thread is worth waking for a few rows of a long dot product only (not at batch 1).
    if (threads <= 1 || M < 2 * threads || M * N * K < (int64_t(1) << 16)) return rows(0, M);
#pragma omp parallel num_threads(threads)
    {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        rows(M * t / nt, M * (t + 1) / nt);
    }
}

}  // namespace engine::native
