// The Winograd products on AVX-512 (this file alone is compiled with -mavx512f; the backend calls it
// only where the CPU has it, native_isa.h). Over tiles: a block is 16 output channels x the 16 tiles
// of one zmm, 16 accumulators, each c one load of V and 16 FMAs with a broadcast weight. Over
// channels (8x8 planes): 64 output channels (four zmm) x 4 tiles, 16 accumulators, each c four
// weight loads and four broadcasts of V for 16 FMAs. The transforms stay the AVX2 ones.
#include <immintrin.h>

#include <algorithm>

#include "native_winograd_dims.h"

namespace engine::native::winograd {

namespace {

template <int R>
void product_block_512(const Dims& d, const float* u, const float* v, float* m, int64_t xi, int64_t kb) {
    const float* ub = u + (xi * k_blocks(d) + kb) * d.C * kKb512;
    __m512 acc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    const float* vx = v + xi * d.vstride;
    const int64_t C = d.C;
    for (int64_t c = 0; c < C; ++c, vx += kTb, ub += kKb512) {
        const __m512 x = _mm512_loadu_ps(vx);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(ub[r]), x, acc[r]);
    }
    float* mk = m + (kb * kKb512 * d.xis + xi) * kTb;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(mk + r * d.xis * kTb, acc[r]);
}

template <int NV>
void product_channels_512(const Dims& d, const float* u, const float* v, float* m, int64_t xi, int64_t kb) {
    const float* ub = u + (xi * k_blocks(d) + kb) * d.C * kKbc512;
    __m512 acc[kTbc][NV];
#pragma GCC unroll 4
    for (int t = 0; t < kTbc; ++t)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[t][j] = _mm512_setzero_ps();
    const float* vx = v + xi * d.vstride;
    for (int64_t c = 0; c < d.C; ++c, vx += kTbc, ub += kKbc512) {
        __m512 w[NV];
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) w[j] = _mm512_loadu_ps(ub + 16 * j);
#pragma GCC unroll 4
        for (int t = 0; t < kTbc; ++t) {
            const __m512 b = _mm512_set1_ps(vx[t]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[t][j] = _mm512_fmadd_ps(w[j], b, acc[t][j]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < kTbc; ++t)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) _mm512_storeu_ps(m + (xi * kTbc + t) * d.K + kb * kKbc512 + 16 * j, acc[t][j]);
}

}  // namespace

void product_avx512(const Dims& d, const float* u, const float* v, float* m, int64_t kb0, int64_t kb1) {
    for (int64_t kb = kb0; kb < kb1; ++kb)
        for (int64_t xi = 0; xi < d.xis; ++xi) switch (std::min<int64_t>(kKb512, d.K - kb * kKb512)) {
                case 16:
                    product_block_512<16>(d, u, v, m, xi, kb);
                    break;
                case 15:
                    product_block_512<15>(d, u, v, m, xi, kb);
                    break;
                case 14:
                    product_block_512<14>(d, u, v, m, xi, kb);
                    break;
                case 13:
                    product_block_512<13>(d, u, v, m, xi, kb);
                    break;
                case 12:
                    product_block_512<12>(d, u, v, m, xi, kb);
                    break;
                case 11:
                    product_block_512<11>(d, u, v, m, xi, kb);
                    break;
                case 10:
                    product_block_512<10>(d, u, v, m, xi, kb);
                    break;
                case 9:
                    product_block_512<9>(d, u, v, m, xi, kb);
                    break;
                case 8:
                    product_block_512<8>(d, u, v, m, xi, kb);
                    break;
                case 7:
                    product_block_512<7>(d, u, v, m, xi, kb);
                    break;
                case 6:
                    product_block_512<6>(d, u, v, m, xi, kb);
                    break;
                case 5:
                    product_block_512<5>(d, u, v, m, xi, kb);
                    break;
                case 4:
                    product_block_512<4>(d, u, v, m, xi, kb);
                    break;
                case 3:
                    product_block_512<3>(d, u, v, m, xi, kb);
                    break;
                case 2:
                    product_block_512<2>(d, u, v, m, xi, kb);
                    break;
                default:
                    product_block_512<1>(d, u, v, m, xi, kb);
                    break;
            }
}

void product_over_channels_avx512(const Dims& d, const float* u, const float* v, float* m, int64_t kb0, int64_t kb1) {
    for (int64_t kb = kb0; kb < kb1; ++kb)
        for (int64_t xi = 0; xi < d.xis; ++xi) switch (std::min<int64_t>(kKbc512, d.K - kb * kKbc512) / 16) {
                case 4:
                    product_channels_512<4>(d, u, v, m, xi, kb);
                    break;
                case 3:
                    product_channels_512<3>(d, u, v, m, xi, kb);
                    break;
                case 2:
                    product_channels_512<2>(d, u, v, m, xi, kb);
                    break;
                default:
                    product_channels_512<1>(d, u, v, m, xi, kb);
                    break;
            }
}

}  // namespace engine::native::winograd

// The input and output transforms of a 16-tile block in zmm registers, for planes with a multiple of 8
// tiles a row: each zmm is loaded, and each result stored, as two groups of 8 tiles adjacent in one
// row. (With 4 tiles a row, four 128-bit pieces a zmm, they measured no faster than the AVX2 ones: C = 32,
// 16x16, ratio 1.01, against 0.93 for C = 16, 32x32 with 8-tile groups.)
#include "native_winograd_tiles.h"

namespace engine::native::winograd {

namespace {

// Where group q of block b's tiles starts: tile row and tile column.
struct Group {
    int64_t ti, tj;
};

inline Group group_of(const Dims& d, int64_t b, int q) {
    const int64_t t = b * kTb + q * 8;
    return {t / d.TW, t % d.TW};
}

template <int M>
void input_transform_zmm(const Dims& d, const float* xp, int64_t b, float* v) {
    constexpr int A = Tile<M>::alpha;
    int64_t at[2];  // offset of each group's window in a padded plane
    for (int q = 0; q < 2; ++q) {
        const Group g = group_of(d, b, q);
        at[q] = M * g.ti * d.Wp + g.tj;
    }
    for (int64_t c = 0; c < d.C; ++c) {
        const float* p = xp + c * d.plane;
        float* vc = v + c * kTb;
        __m512 rows[A][A];
#pragma GCC unroll 8
        for (int r = 0; r < A; ++r) {
            __m512 in[A];
#pragma GCC unroll 8
            for (int j = 0; j < A; ++j) {
                const float* col = p + r * d.Wp + (j % M) * d.seg + j / M;
                in[j] = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(col + at[0])),
                                           _mm256_loadu_ps(col + at[1]), 1);
            }
            Tile<M>::input(in, rows[r]);
        }
        transform_columns<A, A, A>(rows, Tile<M>::template input<__m512>, [&](int i, int s, __m512 value) {
            _mm512_storeu_ps(vc + (i * A + s) * d.vstride, value);
        });
    }
}

// F(4x4) from the unpadded input (d.unpadded): the zero border and the phases made in registers,
// not in a padded copy. For kernel row r, each group's input row (4 ti + r - 1, zero outside the
// plane) is read as 32 columns from 4 tj; two permutes split them into the phases (columns 4t + p,
// p = 0..3), and 128-bit shuffles put group 0's 8 tiles beside group 1's. Tile column j reads
// column 4t + j - 1: phases 0..3 for j = 1..4, and phase 3 one tile left (j = 0) or phase 0 one tile
// right (j = 5), with the columns beyond the group's 32 (-1 and 32) taken from the row or the border.
// It replaces the padded copy's pass over every plane; the values, hence the results, are the same.
void input_transform_unpadded4(const Dims& d, const float* x, int64_t b, float* v) {
    constexpr int A = Tile<4>::alpha;
    const __m512i phases01 = _mm512_set_epi32(29, 25, 21, 17, 13, 9, 5, 1, 28, 24, 20, 16, 12, 8, 4, 0);
    const __m512i phases23 = _mm512_set_epi32(31, 27, 23, 19, 15, 11, 7, 3, 30, 26, 22, 18, 14, 10, 6, 2);
    const __m512i left = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 8, 6, 5, 4, 3, 2, 1, 0, 0);     // tile t - 1
    const __m512i right = _mm512_set_epi32(15, 15, 14, 13, 12, 11, 10, 9, 7, 7, 6, 5, 4, 3, 2, 1);  // tile t + 1
    int64_t row0[2], col0[2];  // each group's first input row (kernel row 0) and column
    for (int q = 0; q < 2; ++q) {
        const Group g = group_of(d, b, q);
        row0[q] = 4 * g.ti - 1;
        col0[q] = 4 * g.tj;
    }
    const bool inner = col0[0] > 0 || col0[1] > 0 || col0[0] + 32 < d.W || col0[1] + 32 < d.W;
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t c = 0; c < d.C; ++c) {
        const float* xc = x + c * d.H * d.W;
        float* vc = v + c * kTb;
        __m512 rows[A][A];
#pragma GCC unroll 6
        for (int r = 0; r < A; ++r) {
            __m512 p01[2], p23[2];
            float before[2], after[2];  // columns col0 - 1 and col0 + 32 of each group's row
#pragma GCC unroll 2
            for (int q = 0; q < 2; ++q) {
                const int64_t h = row0[q] + r;
                if (h < 0 || h >= d.H) {
                    p01[q] = p23[q] = zero;
                    before[q] = after[q] = 0.0f;
                    continue;
                }
                const float* in = xc + h * d.W + col0[q];
                const __m512 lo = _mm512_loadu_ps(in), hi = _mm512_loadu_ps(in + 16);
                p01[q] = _mm512_permutex2var_ps(lo, phases01, hi);  // phase 0 | phase 1, 8 tiles each
                p23[q] = _mm512_permutex2var_ps(lo, phases23, hi);
                before[q] = col0[q] > 0 ? in[-1] : 0.0f;
                after[q] = col0[q] + 32 < d.W ? in[32] : 0.0f;
            }
            __m512 in[A];
            in[1] = _mm512_maskz_shuffle_f32x4(0xffff, p01[0], p01[1], 0x44);  // phase 0: group 0's tiles | group 1's
            in[2] = _mm512_maskz_shuffle_f32x4(0xffff, p01[0], p01[1], 0xee);
            in[3] = _mm512_maskz_shuffle_f32x4(0xffff, p23[0], p23[1], 0x44);
            in[4] = _mm512_maskz_shuffle_f32x4(0xffff, p23[0], p23[1], 0xee);
            in[0] = _mm512_maskz_permutexvar_ps(0xfefe, left, in[4]);
            in[5] = _mm512_maskz_permutexvar_ps(0x7f7f, right, in[1]);
            if (inner) {  // a group away from the plane's left or right edge: its neighbours' columns
                const __m512 edge =
                    _mm512_set_ps(after[1], 0, 0, 0, 0, 0, 0, before[1], after[0], 0, 0, 0, 0, 0, 0, before[0]);
                in[0] = _mm512_mask_mov_ps(in[0], 0x0101, edge);
                in[5] = _mm512_mask_mov_ps(in[5], 0x8080, edge);
            }
            Tile<4>::input(in, rows[r]);
        }
        transform_columns<A, A, A>(rows, Tile<4>::input<__m512>, [&](int i, int s, __m512 value) {
            _mm512_storeu_ps(vc + (i * A + s) * d.vstride, value);
        });
    }
}

// F(4x4): output row a of both groups from c[j] = column j of row a of the block's 16 tiles (lanes
// 0-7 group 0, 8-15 group 1), interleaved in zmm: 16 shuffles for both groups' 32 pixels each,
// where the 256-bit halves took 32. Then y = relu?(. + bias + residual?) at row0 + at[q], as the
// AVX2 epilogue computes it.
inline void store_row_pair(const __m512 (&c)[4], __m512 bias, const float* residual, bool relu, float* y, int64_t row0,
                           const int64_t (&at)[2]) {
    const __mmask16 all = 0xffff;
    const __m512 lo01 = _mm512_maskz_unpacklo_ps(all, c[0], c[1]), hi01 = _mm512_maskz_unpackhi_ps(all, c[0], c[1]);
    const __m512 lo23 = _mm512_maskz_unpacklo_ps(all, c[2], c[3]), hi23 = _mm512_maskz_unpackhi_ps(all, c[2], c[3]);
    // 128-bit lane L of t0, t1, t2, t3: the four pixels of tile 4L, 4L + 1, 4L + 2, 4L + 3.
    const __m512 t0 = _mm512_maskz_shuffle_ps(all, lo01, lo23, _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 t1 = _mm512_maskz_shuffle_ps(all, lo01, lo23, _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 t2 = _mm512_maskz_shuffle_ps(all, hi01, hi23, _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 t3 = _mm512_maskz_shuffle_ps(all, hi01, hi23, _MM_SHUFFLE(3, 2, 3, 2));
#pragma GCC unroll 2
    for (int q = 0; q < 2; ++q) {
        // Lanes 2q, 2q + 1 (group q's tiles 0-3 and 4-7) of t0 and t1, then of t2 and t3.
        const __m512 a =
            q ? _mm512_maskz_shuffle_f32x4(all, t0, t1, 0xee) : _mm512_maskz_shuffle_f32x4(all, t0, t1, 0x44);
        const __m512 b =
            q ? _mm512_maskz_shuffle_f32x4(all, t2, t3, 0xee) : _mm512_maskz_shuffle_f32x4(all, t2, t3, 0x44);
        const __m512 half[2] = {_mm512_maskz_shuffle_f32x4(all, a, b, 0x88),
                                _mm512_maskz_shuffle_f32x4(all, a, b, 0xdd)};
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const int64_t o = row0 + at[q] + 16 * h;
            __m512 x = _mm512_add_ps(half[h], bias);
            if (residual) x = _mm512_add_ps(x, _mm512_loadu_ps(residual + o));
            if (relu) x = _mm512_maskz_max_ps(0xffff, x, _mm512_setzero_ps());  // maskz: GCC 12 warns on the plain form
            _mm512_storeu_ps(y + o, x);
        }
    }
}

template <int M>
void output_transform_zmm(const Dims& d, const float* m, int64_t b, const float* bias, const float* residual, bool relu,
                          float* y, int64_t k0, int64_t k1) {
    constexpr int A = Tile<M>::alpha;
    const int64_t P = d.H * d.W;
    int64_t at[2];  // offset of each group's first output pixel in a plane
    for (int q = 0; q < 2; ++q) {
        const Group g = group_of(d, b, q);
        at[q] = M * g.ti * d.W + M * g.tj;
    }
    for (int64_t k = k0; k < k1; ++k) {
        const float* mk = m + k * d.xis * kTb;
        const float bias_k = bias ? bias[k] : 0.0f;
        __m512 rows[A][M];
#pragma GCC unroll 8
        for (int r = 0; r < A; ++r) {
            __m512 in[A];
#pragma GCC unroll 8
            for (int j = 0; j < A; ++j) in[j] = _mm512_loadu_ps(mk + (r * A + j) * kTb);
            Tile<M>::output(in, rows[r]);
        }
        __m512 tile[M][M];
        transform_columns<A, M, M>(rows, Tile<M>::template output<__m512>,
                                   [&](int a, int j, __m512 value) { tile[a][j] = value; });
        if constexpr (M == 4) {
            const __m512 bk = _mm512_set1_ps(bias_k);
#pragma GCC unroll 4
            for (int a = 0; a < M; ++a) store_row_pair(tile[a], bk, residual, relu, y, k * P + a * d.W, at);
        } else {  // F(2x2): each group's rows as 256-bit halves
            const __m256 bk = _mm256_set1_ps(bias_k), zero = _mm256_setzero_ps();
#pragma GCC unroll 2
            for (int q = 0; q < 2; ++q)
#pragma GCC unroll 4
                for (int a = 0; a < M; ++a) {
                    __m256 cols[M];  // group q's 8 tiles
#pragma GCC unroll 4
                    for (int j = 0; j < M; ++j)
                        cols[j] = q ? _mm512_maskz_extractf32x8_ps(0xff, tile[a][j], 1)
                                    : _mm512_maskz_extractf32x8_ps(0xff, tile[a][j], 0);
                    __m256 out[M];
                    interleave(cols, out);
#pragma GCC unroll 4
                    for (int h = 0; h < M; ++h) {
                        const int64_t o = k * P + at[q] + a * d.W + 8 * h;
                        __m256 x = _mm256_add_ps(out[h], bk);
                        if (residual) x = _mm256_add_ps(x, _mm256_loadu_ps(residual + o));
                        if (relu) x = _mm256_max_ps(x, zero);
                        _mm256_storeu_ps(y + o, x);
                    }
                }
        }
    }
}

}  // namespace

void input_transform_avx512(const Dims& d, const float* xp, int64_t b, float* v) {
    if (d.unpadded)
        input_transform_unpadded4(d, xp, b, v);
    else if (d.m == 4)
        input_transform_zmm<4>(d, xp, b, v);
    else
        input_transform_zmm<2>(d, xp, b, v);
}

void output_transform_avx512(const Dims& d, const float* m, int64_t b, const float* bias, const float* residual,
                             bool relu, float* y, int64_t k0, int64_t k1) {
    if (d.m == 4)
        output_transform_zmm<4>(d, m, b, bias, residual, relu, y, k0, k1);
    else
        output_transform_zmm<2>(d, m, b, bias, residual, relu, y, k0, k1);
}

}  // namespace engine::native::winograd
