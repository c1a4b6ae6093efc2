// Winograd F(4x4, 3x3) on 8x8 planes, vectorised over output channels: a sample's four 4x4 tiles
// would fill a quarter of the tile-vectorised kernel's 16 lanes (native_winograd.cpp). V is
// [xi][c][4 tiles], U [xi][24-channel block][c][24], M [xi][tile][K]; the product broadcasts V and
// keeps 4 tiles x 3 vectors of 8 channels in 12 accumulators, and the output transform works on 8
// channels at once.
#include <immintrin.h>

#include <algorithm>

#include "native_winograd_dims.h"
#include "native_winograd_tiles.h"

namespace engine::native::winograd {

namespace {

// V for the 4 tiles (2 x 2) of an 8x8 plane, one lane each: lanes 0-1 are the top two tiles,
// lanes 2-3 the bottom two, four padded rows further down.
void input_transform_4_tiles(const Dims& d, const float* xp, float* v) {
    constexpr int A = Tile<4>::alpha;
    const auto load_pair = [](const float* p) {
        return _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p)));
    };
    for (int64_t c = 0; c < d.C; ++c) {
        const float* p = xp + c * d.plane;
        __m128 rows[A][A];
#pragma GCC unroll 8
        for (int r = 0; r < A; ++r) {
            const float* top = p + r * d.Wp;
            const float* bottom = top + 4 * d.Wp;
            __m128 in[A];
#pragma GCC unroll 8
            for (int j = 0; j < A; ++j) {
                const int64_t at = (j % 4) * d.seg + j / 4;
                in[j] = _mm_loadh_pi(load_pair(top + at), reinterpret_cast<const __m64*>(bottom + at));
            }
            Tile<4>::input(in, rows[r]);
        }
        transform_columns<A, A, A>(rows, Tile<4>::input<__m128>, [&](int i, int s, __m128 value) {
            _mm_storeu_ps(v + (i * A + s) * d.vstride + c * kTbc, value);  // B^T d B at position (i, s)
        });
    }
}

// M[xi][tile][channels of block kb] = U[xi] block kb times V[xi], NV vectors of 8 channels.
template <int NV>
void product_over_channels(const Dims& d, const float* u, const float* v, float* m, int64_t xi, int64_t kb) {
    const float* ub = u + (xi * k_blocks(d) + kb) * d.C * kKbc;
    __m256 acc[kTbc][NV];
#pragma GCC unroll 4
    for (int t = 0; t < kTbc; ++t)
#pragma GCC unroll 3
        for (int j = 0; j < NV; ++j) acc[t][j] = _mm256_setzero_ps();
    const float* vx = v + xi * d.vstride;
    for (int64_t c = 0; c < d.C; ++c, vx += kTbc, ub += kKbc) {
        __m256 w[NV];
#pragma GCC unroll 3
        for (int j = 0; j < NV; ++j) w[j] = _mm256_loadu_ps(ub + 8 * j);
#pragma GCC unroll 4
        for (int t = 0; t < kTbc; ++t) {
            const __m256 b = _mm256_broadcast_ss(vx + t);
#pragma GCC unroll 3
            for (int j = 0; j < NV; ++j) acc[t][j] = _mm256_fmadd_ps(w[j], b, acc[t][j]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < kTbc; ++t)
#pragma GCC unroll 3
        for (int j = 0; j < NV; ++j) _mm256_storeu_ps(m + (xi * kTbc + t) * d.K + kb * kKbc + 8 * j, acc[t][j]);
}

// Output channels [k0, k1) (multiples of 8) of the 4 tiles: y = A^T m A, 8 channels at once.
void output_over_channels(const Dims& d, const float* m, const float* bias, const float* residual, bool relu, float* y,
                          int64_t k0, int64_t k1) {
    constexpr int A = Tile<4>::alpha;
    const int64_t P = d.H * d.W;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t t = 0; t < kTbc; ++t) {
        const int64_t ti = t / 2, tj = t % 2;
        for (int64_t k = k0; k < k1; k += 8) {
            const __m256 bk = bias ? _mm256_loadu_ps(bias + k) : zero;
            __m256 rows[A][4];
#pragma GCC unroll 8
            for (int r = 0; r < A; ++r) {
                __m256 in[A];
#pragma GCC unroll 8
                for (int j = 0; j < A; ++j) in[j] = _mm256_loadu_ps(m + ((r * A + j) * kTbc + t) * d.K + k);
                Tile<4>::output(in, rows[r]);
            }
            __m256 tile[4][4];  // [output row][output column], 8 channels each, bias added
            transform_columns<A, 4, 4>(rows, Tile<4>::output<__m256>,
                                       [&](int a, int j, __m256 value) { tile[a][j] = _mm256_add_ps(value, bk); });
#pragma GCC unroll 4
            for (int a = 0; a < 4; ++a) {
                __m256 px[4];  // px[h]: the row's 4 pixels of channels k + 2h (low half) and k + 2h + 1
                interleave(tile[a], px);
#pragma GCC unroll 4
                for (int h = 0; h < 4; ++h) {
                    const int64_t lo = (k + 2 * h) * P + (4 * ti + a) * d.W + 4 * tj, hi = lo + P;
                    __m256 o = px[h];
                    if (residual) o = _mm256_add_ps(o, _mm256_loadu2_m128(residual + hi, residual + lo));
                    if (relu) o = _mm256_max_ps(o, zero);
                    _mm256_storeu2_m128(y + hi, y + lo, o);
                }
            }
        }
    }
}

}  // namespace

void blocks_over_channels(const Dims& d, const float* xp, const float* u, const float* bias, const float* residual,
                          bool relu, float* y, int64_t kb0, int64_t kb1, float* work) {
    float* v = work;
    float* m = work + d.xis * d.vstride;
    input_transform_4_tiles(d, xp, v);
    if (d.avx512)
        product_over_channels_avx512(d, u, v, m, kb0, kb1);
    else
        for (int64_t xi = 0; xi < d.xis; ++xi)
            for (int64_t kb = kb0; kb < kb1; ++kb) switch ((std::min<int64_t>(kKbc, d.K - kb * kKbc) + 7) / 8) {
                    case 3:
                        product_over_channels<3>(d, u, v, m, xi, kb);
                        break;
                    case 2:
                        product_over_channels<2>(d, u, v, m, xi, kb);
                        break;
                    default:
                        product_over_channels<1>(d, u, v, m, xi, kb);
                        break;
                }
    output_over_channels(d, m, bias, residual, relu, y, kb0 * d.kb, std::min(d.K, kb1 * d.kb));
}

}  // namespace engine::native::winograd
