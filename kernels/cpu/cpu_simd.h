// Small AVX2 helpers shared by the native kernels.
#pragma once
#include <immintrin.h>

namespace engine::cpu {

// The sum of v's eight lanes.
inline float horizontal_sum(__m256 v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

}  // namespace engine::cpu
