// The input and output transforms on AVX-512 for planes of 4 x 4 tiles (F(2x2) on 8x8, F(4x4) on 16x16): the
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

// y = relu?(v + bias + residual?) for 16 consecutive output floats at `at` of channel k's plane.
inline void store_out(__m512 v, __m512 bias, const float* residual, bool relu, float* y, int64_t at) {
    v = _mm512_add_ps(v, bias);
    if (residual) v = _mm512_add_ps(v, _mm512_loadu_ps(residual + at));
    if (relu) v = _mm512_maskz_max_ps(0xffff, v, _mm512_setzero_ps());
    _mm512_storeu_ps(y + at, v);
}

// F(2x2), 8x8: out[a][b] holds pixel (2 ti + a, 2 tj + b) of every tile; one permute per a puts
// tile rows 0-1 (or 2-3) in pixel order, two rows a zmm, and 128-bit shuffles pair output rows
// 2 ti and 2 ti + 1, so that the plane is four contiguous zmm.
void out_grid2(const Dims& d, const float* m, const float* bias, const float* residual, bool relu, float* y, int64_t k0,
               int64_t k1) {
    constexpr int A = Tile<2>::alpha;
    __m512i pairs[2];  // pixel q of tile rows 2h, 2h + 1: row 2h + q / 8, column q % 8
    for (int h = 0; h < 2; ++h) {
        alignas(64) int idx[16];
        for (int q = 0; q < 16; ++q) idx[q] = (q % 2) * 16 + (2 * h + q / 8) * 4 + q % 8 / 2;
        pairs[h] = _mm512_load_si512(idx);
    }
    for (int64_t k = k0; k < k1; ++k) {
        const float* mk = m + k * d.xis * kTb;
        const __m512 bk = _mm512_set1_ps(bias ? bias[k] : 0.0f);
        __m512 rows[A][2];
#pragma GCC unroll 4
        for (int r = 0; r < A; ++r) {
            __m512 in[A];
#pragma GCC unroll 4
            for (int j = 0; j < A; ++j) in[j] = _mm512_loadu_ps(mk + (r * A + j) * kTb);
            Tile<2>::output(in, rows[r]);
        }
        __m512 out[2][2];
        transform_columns<A, 2, 2>(rows, Tile<2>::output<__m512>, [&](int a, int b, __m512 v) { out[a][b] = v; });
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const __m512 r0 = _mm512_permutex2var_ps(out[0][0], pairs[h], out[0][1]);  // rows 4h, 4h + 2
            const __m512 r1 = _mm512_permutex2var_ps(out[1][0], pairs[h], out[1][1]);  // rows 4h + 1, 4h + 3
            const int64_t at = k * 64 + h * 32;
            store_out(_mm512_maskz_shuffle_f32x4(0xffff, r0, r1, 0x44), bk, residual, relu, y, at);
            store_out(_mm512_maskz_shuffle_f32x4(0xffff, r0, r1, 0xee), bk, residual, relu, y, at + 16);
        }
    }
}

// F(4x4), 16x16: out[a][b] holds pixel (4 ti + a, 4 tj + b); 128-bit lane ti of each is tile row
// ti. A 4 x 4 transpose inside each 128-bit lane, then one of the 128-bit lanes, makes each output
// row 4 ti + a one zmm.
void out_grid4(const Dims& d, const float* m, const float* bias, const float* residual, bool relu, float* y, int64_t k0,
               int64_t k1) {
    constexpr int A = Tile<4>::alpha;
    for (int64_t k = k0; k < k1; ++k) {
        const float* mk = m + k * d.xis * kTb;
        const __m512 bk = _mm512_set1_ps(bias ? bias[k] : 0.0f);
        __m512 rows[A][4];
#pragma GCC unroll 6
        for (int r = 0; r < A; ++r) {
            __m512 in[A];
#pragma GCC unroll 6
            for (int j = 0; j < A; ++j) in[j] = _mm512_loadu_ps(mk + (r * A + j) * kTb);
            Tile<4>::output(in, rows[r]);
        }
        __m512 out[4][4];
        transform_columns<A, 4, 4>(rows, Tile<4>::output<__m512>, [&](int a, int b, __m512 v) { out[a][b] = v; });
#pragma GCC unroll 4
        for (int a = 0; a < 4; ++a) {
            const __mmask16 all = 0xffff;
            const __m512 t0 = _mm512_maskz_unpacklo_ps(all, out[a][0], out[a][1]),
                         t1 = _mm512_maskz_unpackhi_ps(all, out[a][0], out[a][1]);
            const __m512 t2 = _mm512_maskz_unpacklo_ps(all, out[a][2], out[a][3]),
                         t3 = _mm512_maskz_unpackhi_ps(all, out[a][2], out[a][3]);
            // Lane ti of tile[tj]: the 4 pixels of tile (ti, tj) in output row 4 ti + a.
            const __m512 tile0 = _mm512_maskz_shuffle_ps(all, t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
                         tile1 = _mm512_maskz_shuffle_ps(all, t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
            const __m512 tile2 = _mm512_maskz_shuffle_ps(all, t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
                         tile3 = _mm512_maskz_shuffle_ps(all, t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
            const __m512 u0 = _mm512_maskz_shuffle_f32x4(all, tile0, tile1, 0x44),
                         u1 = _mm512_maskz_shuffle_f32x4(all, tile0, tile1, 0xee);
            const __m512 u2 = _mm512_maskz_shuffle_f32x4(all, tile2, tile3, 0x44),
                         u3 = _mm512_maskz_shuffle_f32x4(all, tile2, tile3, 0xee);
            const int64_t at = k * 256 + a * 16;  // output row a of tile row 0; tile row ti is 64 floats on
            store_out(_mm512_maskz_shuffle_f32x4(all, u0, u2, 0x88), bk, residual, relu, y, at);
            store_out(_mm512_maskz_shuffle_f32x4(all, u0, u2, 0xdd), bk, residual, relu, y, at + 64);
            store_out(_mm512_maskz_shuffle_f32x4(all, u1, u3, 0x88), bk, residual, relu, y, at + 128);
            store_out(_mm512_maskz_shuffle_f32x4(all, u1, u3, 0xdd), bk, residual, relu, y, at + 192);
        }
    }
}

}  // namespace

void output_transform_grid_avx512(const Dims& d, const float* m, const float* bias, const float* residual, bool relu,
                                  float* y, int64_t k0, int64_t k1) {
    if (d.m == 4)
        out_grid4(d, m, bias, residual, relu, y, k0, k1);
    else
        out_grid2(d, m, bias, residual, relu, y, k0, k1);
}

void input_transform_grid_avx512(const Dims& d, const float* x, float* v) {
    if (d.m == 4)
        grid4(d, x, v);
    else
        grid2(d, x, v);
}

}  // namespace engine::native::winograd
