// linear_rows on AVX-512: a row of a is read once for up to kClasses classes, instead of once per
// class, with each class's four 8-lane accumulators of linear_dot held as two 16-lane ones (lanes
// 0-7 and 8-15 of `lo` are accumulators 0 and 1, of `hi` 2 and 3), so every lane sums the same
// products in the same order and the results are linear_dot's to the bit.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "native_linear.h"
#include "native_simd.h"

namespace engine::native {

namespace {

constexpr int kClasses = 12;  // 24 accumulators and the row's two vectors in the 32 registers

// Classes [j0, j0 + J) of one row.
template <int J>
void classes(const float* a, const float* b, const float* c, float* y, int64_t j0, int64_t K) {
    __m512 lo[J], hi[J];
#pragma GCC unroll 12
    for (int j = 0; j < J; ++j) lo[j] = hi[j] = _mm512_setzero_ps();
    const float* bj[J];
#pragma GCC unroll 12
    for (int j = 0; j < J; ++j) bj[j] = b + (j0 + j) * K;
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m512 a0 = _mm512_loadu_ps(a + k), a1 = _mm512_loadu_ps(a + k + 16);
#pragma GCC unroll 12
        for (int j = 0; j < J; ++j) {
            lo[j] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(bj[j] + k), lo[j]);
            hi[j] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(bj[j] + k + 16), hi[j]);
        }
    }
    for (; k + 8 <= K; k += 8) {  // into accumulator 0 alone: the low 8 lanes of lo
        const __m512 a0 = _mm512_maskz_loadu_ps(0x00ff, a + k);
#pragma GCC unroll 12
        for (int j = 0; j < J; ++j)
            lo[j] = _mm512_mask3_fmadd_ps(a0, _mm512_maskz_loadu_ps(0x00ff, bj[j] + k), lo[j], 0x00ff);
    }
#pragma GCC unroll 12
    for (int j = 0; j < J; ++j) {
        const __m256 acc01 =
            _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, lo[j], 0), _mm512_maskz_extractf32x8_ps(0xff, lo[j], 1));
        const __m256 acc23 =
            _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, hi[j], 0), _mm512_maskz_extractf32x8_ps(0xff, hi[j], 1));
        float s = horizontal_sum(_mm256_add_ps(acc01, acc23));
        for (int64_t t = k; t < K; ++t) s = std::fma(a[t], bj[j][t], s);
        y[j0 + j] = (c ? c[j0 + j] : 0.0f) + s;
    }
}

template <int J>
void classes_upto(int n, const float* a, const float* b, const float* c, float* y, int64_t j0, int64_t K) {
    if constexpr (J > 1)
        if (n < J) return classes_upto<J - 1>(n, a, b, c, y, j0, K);
    classes<J>(a, b, c, y, j0, K);
}

}  // namespace

void linear_rows_avx512(const float* a, const float* b, const float* c, float* y, int64_t i0, int64_t i1, int64_t N,
                        int64_t K) {
    for (int64_t i = i0; i < i1; ++i)
        for (int64_t j0 = 0; j0 < N; j0 += kClasses)
            classes_upto<kClasses>(int(std::min<int64_t>(kClasses, N - j0)), a + i * K, b, c, y + i * N, j0, K);
}

}  // namespace engine::native
