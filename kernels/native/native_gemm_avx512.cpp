// The packed GEMM's micro-kernel on AVX-512 (this file alone is compiled with -mavx512f; native_gemm.cpp
// calls it only where the CPU has it, native_isa.h): 6 rows by two packed B panels of 16 columns, one
// zmm each, so that its 12 accumulators carry twice the AVX2 kernel's columns; or, where B is a
// single panel (planes of 16 pixels), two A panels of 6 rows by that panel. Each lane runs the
// AVX2 kernel's fused multiply-adds in the same order, so C gets the same values to the bit.
#include <immintrin.h>

#include "native_gemm_kernels.h"
#include "native_gemm_narrow_impl.h"

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

void narrow_panel_48_avx512(int N, int64_t K, const float* Ap, const float* B, int64_t ldb, float* C, int64_t ldc,
                            int64_t rows) {
    switch (N) {
        case 1:
            return narrow_panel_rows<__m512, 1>(K, Ap, B, ldb, C, ldc, rows);
        case 2:
            return narrow_panel_rows<__m512, 2>(K, Ap, B, ldb, C, ldc, rows);
        case 3:
            return narrow_panel_rows<__m512, 3>(K, Ap, B, ldb, C, ldc, rows);
        default:
            return narrow_panel_rows<__m512, 4>(K, Ap, B, ldb, C, ldc, rows);
    }
}

}  // namespace engine::native
