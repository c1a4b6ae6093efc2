// The packed GEMM's micro-kernel on AVX-512 (this file alone is compiled with -mavx512f; native_gemm.cpp
// calls it only where the CPU has it, native_isa.h): 6 rows by two packed B panels of 16 columns, one
// zmm each, so that its 12 accumulators carry twice the AVX2 kernel's columns; or, where B is a
// single panel (planes of 16 pixels), two A panels of 6 rows by that panel. Each lane runs the
// AVX2 kernel's fused multiply-adds in the same order, so C gets the same values to the bit.
#include <immintrin.h>

#include "native_gemm_kernels.h"

namespace engine::native {

namespace {

// Row r of a tile: what its sums are added to, then the ReLU.
inline __m512 base_of(const TileStore& s, const float* cr, int r) {
    if (!s.from_bias) return _mm512_loadu_ps(cr);
    return s.bias ? _mm512_set1_ps(s.bias[r]) : _mm512_setzero_ps();
}

inline void store_row(const TileStore& s, float* cr, __m512 v) {
    if (s.relu) v = _mm512_maskz_max_ps(0xffff, v, _mm512_setzero_ps());  // maskz: GCC 12 warns on the plain form
    _mm512_storeu_ps(cr, v);
}

}  // namespace

void micro_kernel_6x32_avx512(int64_t kc, const float* Ap, const float* Bp0, const float* Bp1, float* C, int64_t ldc,
                              int rows, TileStore store) {
    prefetch_tile(C, ldc, rows, 32);
    __m512 c[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < 6; ++r) c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_loadu_ps(Bp0 + 16 * k), b1 = _mm512_loadu_ps(Bp1 + 16 * k);
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r) {
            const __m512 a = _mm512_set1_ps(Ap[6 * k + r]);
            c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < 6; ++r) {
        if (r >= rows) break;
        float* cr = C + r * ldc;
        store_row(store, cr, _mm512_add_ps(base_of(store, cr, r), c[r][0]));
        store_row(store, cr + 16, _mm512_add_ps(base_of(store, cr + 16, r), c[r][1]));
    }
}

void micro_kernel_12x16_avx512(int64_t kc, const float* Ap0, const float* Ap1, const float* Bp, float* C, int64_t ldc,
                               TileStore store) {
    prefetch_tile(C, ldc, 12, 16);
    __m512 c[12];
#pragma GCC unroll 12
    for (int r = 0; r < 12; ++r) c[r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b = _mm512_loadu_ps(Bp + 16 * k);
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r) {
            c[r] = _mm512_fmadd_ps(_mm512_set1_ps(Ap0[6 * k + r]), b, c[r]);
            c[6 + r] = _mm512_fmadd_ps(_mm512_set1_ps(Ap1[6 * k + r]), b, c[6 + r]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < 12; ++r) {
        float* cr = C + r * ldc;
        store_row(store, cr, _mm512_add_ps(base_of(store, cr, r), c[r]));
    }
}

namespace {

template <int N>
void narrow_panel_48(int64_t K, const float* Ap, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t rows) {
    __m512 acc[3][N];
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n) acc[0][n] = acc[1][n] = acc[2][n] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; ++k, Ap += 48) {
        const __m512 a0 = _mm512_loadu_ps(Ap), a1 = _mm512_loadu_ps(Ap + 16), a2 = _mm512_loadu_ps(Ap + 32);
#pragma GCC unroll 4
        for (int n = 0; n < N; ++n) {
            const __m512 b = _mm512_set1_ps(B[k * ldb + n]);
            acc[0][n] = _mm512_fmadd_ps(a0, b, acc[0][n]);
            acc[1][n] = _mm512_fmadd_ps(a1, b, acc[1][n]);
            acc[2][n] = _mm512_fmadd_ps(a2, b, acc[2][n]);
        }
    }
    alignas(64) float tile[N][48];
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n)
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v) _mm512_store_ps(tile[n] + 16 * v, acc[v][n]);
    for (int64_t r = 0; r < rows; ++r)
        for (int n = 0; n < N; ++n) C[r * ldc + n] += tile[n][r];
}

}  // namespace

void narrow_panel_48_avx512(int N, int64_t K, const float* Ap, const float* B, int64_t ldb, float* C, int64_t ldc,
                            int64_t rows) {
    switch (N) {
        case 1:
            return narrow_panel_48<1>(K, Ap, B, ldb, C, ldc, rows);
        case 2:
            return narrow_panel_48<2>(K, Ap, B, ldb, C, ldc, rows);
        case 3:
            return narrow_panel_48<3>(K, Ap, B, ldb, C, ldc, rows);
        default:
            return narrow_panel_48<4>(K, Ap, B, ldb, C, ldc, rows);
    }
}

}  // namespace engine::native
