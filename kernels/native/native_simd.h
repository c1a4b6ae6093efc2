// Small AVX2 helpers shared by the native kernels.
#pragma once
#include <immintrin.h>

namespace engine::native {

// Unaligned loads and stores of 4 (__m128) or 8 (__m256) floats, chosen by the vector type, for
// kernels written once for both widths.
inline __m128 load(const float* p, __m128) { return _mm_loadu_ps(p); }
inline __m256 load(const float* p, __m256) { return _mm256_loadu_ps(p); }
inline void store(float* p, __m128 v) { _mm_storeu_ps(p, v); }
inline void store(float* p, __m256 v) { _mm256_storeu_ps(p, v); }

// The sum of v's eight lanes.
inline float horizontal_sum(__m256 v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

}  // namespace engine::native
