// The input transform on AVX-512 for planes of 4 x 4 tiles (F(2x2) on 8x8, F(4x4) on 16x16): the
// block's 16 tiles are the whole plane, one zmm lane each (lane 4 ti + tj), read from the unpadded
// input. Each lane of a transform input, column j of tile row r, is input (m ti + r - 1, m tj + j - 1),
// zero outside the plane: permutes gather them from the plane's rows in registers, where the AVX2
// path pads the plane into phases first and then transforms four tiles a vector.
#include <immintrin.h>

#include "native_winograd_dims.h"
#include "native_winograd_tiles.h"

namespace engine::native::winograd {

namespace {

// F(4x4), 16x16: for kernel row r the four tile rows read input rows 4 ti + r - 1, one zmm each.
// Lanes of tile rows 0-1 gather from the first two, those of 2-3 from the last two (column 4 tj + p
// for phase p); column -1 and 16 (j = 0, 5) are phases 3 and 0 one tile over, zero at the border.
void grid4(const Dims& d, const float* x, float* v) {
    constexpr int A = Tile<4>::alpha;
    __m512i phase[4];
    for (int p = 0; p < 4; ++p) {
        alignas(64) int idx[16];
        for (int l = 0; l < 16; ++l) idx[l] = (l / 4 % 2) * 16 + 4 * (l % 4) + p;
        phase[p] = _mm512_load_si512(idx);
    }
    const __m512i left = _mm512_set_epi32(14, 13, 12, 12, 10, 9, 8, 8, 6, 5, 4, 4, 2, 1, 0, 0);     // tile tj - 1
    const __m512i right = _mm512_set_epi32(15, 15, 14, 13, 11, 11, 10, 9, 7, 7, 6, 5, 3, 3, 2, 1);  // tj + 1
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t c = 0; c < d.C; ++c) {
        const float* xc = x + c * 256;
        __m512 rows[A][A];
#pragma GCC unroll 6
        for (int r = 0; r < A; ++r) {
            __m512 in_rows[4];
#pragma GCC unroll 4
            for (int ti = 0; ti < 4; ++ti) {
                const int h = 4 * ti + r - 1;
                in_rows[ti] = h >= 0 && h < 16 ? _mm512_loadu_ps(xc + 16 * h) : zero;
            }
            __m512 in[A];
#pragma GCC unroll 4
            for (int p = 0; p < 4; ++p)
                in[p + 1] = _mm512_mask_blend_ps(0xff00, _mm512_permutex2var_ps(in_rows[0], phase[p], in_rows[1]),
                                                 _mm512_permutex2var_ps(in_rows[2], phase[p], in_rows[3]));
            in[0] = _mm512_maskz_permutexvar_ps(0xeeee, left, in[4]);
            in[5] = _mm512_maskz_permutexvar_ps(0x7777, right, in[1]);
            Tile<4>::input(in, rows[r]);
        }
        transform_columns<A, A, A>(rows, Tile<4>::input<__m512>, [&](int i, int s, __m512 value) {
            _mm512_storeu_ps(v + c * kTb + (i * A + s) * d.vstride, value);
        });
    }
}

// F(2x2), 8x8: the plane is four zmm (two rows each); each lane's input comes from the first two
// or the last two, by a permute of each pair under masks that also leave the border lanes zero.
void grid2(const Dims& d, const float* x, float* v) {
    constexpr int A = Tile<2>::alpha;
    __m512i idx[A][A];
    __mmask16 low[A][A], high[A][A];
    for (int r = 0; r < A; ++r)
        for (int j = 0; j < A; ++j) {
            alignas(64) int at[16];
            unsigned lo = 0, hi = 0;
            for (int l = 0; l < 16; ++l) {
                const int h = 2 * (l / 4) + r - 1, w = 2 * (l % 4) + j - 1;
                at[l] = (h * 8 + w) & 31;
                if (h >= 0 && h < 8 && w >= 0 && w < 8) (h < 4 ? lo : hi) |= 1u << l;
            }
            idx[r][j] = _mm512_load_si512(at);
            low[r][j] = __mmask16(lo), high[r][j] = __mmask16(hi);
        }
    for (int64_t c = 0; c < d.C; ++c) {
        const float* xc = x + c * 64;
        const __m512 z0 = _mm512_loadu_ps(xc), z1 = _mm512_loadu_ps(xc + 16), z2 = _mm512_loadu_ps(xc + 32),
                     z3 = _mm512_loadu_ps(xc + 48);
        __m512 rows[A][A];
#pragma GCC unroll 4
        for (int r = 0; r < A; ++r) {
            __m512 in[A];
#pragma GCC unroll 4
            for (int j = 0; j < A; ++j)
                in[j] = _mm512_or_ps(_mm512_maskz_permutex2var_ps(low[r][j], z0, idx[r][j], z1),
                                     _mm512_maskz_permutex2var_ps(high[r][j], z2, idx[r][j], z3));
            Tile<2>::input(in, rows[r]);
        }
        transform_columns<A, A, A>(rows, Tile<2>::input<__m512>, [&](int i, int s, __m512 value) {
            _mm512_storeu_ps(v + c * kTb + (i * A + s) * d.vstride, value);
        });
    }
}

}  // namespace

void input_transform_grid_avx512(const Dims& d, const float* x, float* v) {
    if (d.m == 4)
        grid4(d, x, v);
    else
        grid2(d, x, v);
}

}  // namespace engine::native::winograd
