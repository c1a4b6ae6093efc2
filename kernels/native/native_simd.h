// Small vector helpers shared by the native kernels: loads, stores and arithmetic chosen by the vector
// type, for kernels written once for several widths (__m128, __m256, and __m512 in files compiled for
// AVX-512). Internal linkage: an AVX-512 file's copy, compiled with EVEX encodings allowed, must never
// stand in at link time for an AVX2 file's, which runs on CPUs without AVX-512.
#pragma once
#include <immintrin.h>

namespace engine::native {
namespace {

template <class V>
constexpr int kLanes = int(sizeof(V) / sizeof(float));

// Unaligned loads and stores.
inline __m128 load(const float* p, __m128) { return _mm_loadu_ps(p); }
inline __m256 load(const float* p, __m256) { return _mm256_loadu_ps(p); }
inline void store(float* p, __m128 v) { _mm_storeu_ps(p, v); }
inline void store(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline __m256 broadcast(const float* p, __m256) { return _mm256_broadcast_ss(p); }
inline __m256 fmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
// A convolution's fused epilogue on 8 outputs: y = relu?(v + residual?), residual at y's offset.
inline void store_epilogue(float* y, __m256 v, const float* residual, bool relu) {
    if (residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual));
    if (relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
    _mm256_storeu_ps(y, v);
}
#ifdef __AVX512F__
inline __m512 load(const float* p, __m512) { return _mm512_loadu_ps(p); }
inline void store(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
inline __m512 broadcast(const float* p, __m512) { return _mm512_set1_ps(*p); }
inline __m512 fmadd(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
#endif

// The sum of v's eight lanes.
inline float horizontal_sum(__m256 v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

}  // namespace
}  // namespace engine::native
