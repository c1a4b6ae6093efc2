// Winograd F(m x m, 3x3), m = 2 or 4 (native_winograd_tiles.h). Per sample, the input is padded once
// (except on AVX-512 for F(4x4) and for planes of 4 x 4 tiles, whose input transforms read the input
// and make the border themselves);
// then, for each block of 16 tiles (so that the block's transformed input and product stay in L2):
//  1. input transform: every (m + 2)^2 input tile d (stride m) becomes B^T d B, (m + 2)^2 values
//     (positions xi). Padded rows are stored in m phases (column j at phase j % m), so that the
//     same column of adjacent tiles is one contiguous load. V is [xi][c][16 tiles], so that the
//     product reads it in order.
//  2. product: for each xi, M = U[xi] V (K x C times C x 16 tiles), register-blocked as the direct
//     kernel is: 6 output channels x 16 tiles, 12 accumulators. M is [k][xi][16 tiles]. Every
//     output block of one xi runs before the next xi, so V[xi] is read from L1 by all of them (a
//     block's whole V, 39-76 KB, is more than L1: block by block, it came from L2 K / 6 times).
//  3. output transform: A^T m A gives each m x m output tile; bias, residual and ReLU are applied
//     on the way out.
// F(4x4) on 8x8 planes has only 4 tiles a sample; there the product vectorises over output
// channels instead (native_winograd_channels.cpp).
#include "native_winograd.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "native_pad.h"
#include "native_winograd_dims.h"
#include "native_winograd_tiles.h"

namespace engine::native {

namespace {

using namespace winograd;

// Channels [c0, c1) of one sample, zero-bordered, each padded row in m phases (native_pad.h);
// nothing where the input transform reads the input itself.
void pad_channels(const Dims& d, const float* x, float* xp, int64_t c0, int64_t c1) {
    if (d.unpadded) return;
    for (int64_t c = c0; c < c1; ++c) {
        if (d.m == 4)
            pad_plane_deinterleaved4(x + c * d.H * d.W, d.H, d.W, xp + c * d.plane);
        else
            pad_plane_deinterleaved(x + c * d.H * d.W, d.H, d.W, xp + c * d.plane);
    }
}

// V = B^T d B for the 16 tiles of block b, Vec::lanes adjacent tiles at once (one lane each).
template <int M, class Vec>
void input_transform(const Dims& d, const float* xp, int64_t b, float* v) {
    constexpr int A = Tile<M>::alpha, lanes = sizeof(Vec) / sizeof(float);
    for (int64_t c = 0; c < d.C; ++c) {
        const float* p = xp + c * d.plane;
        float* vc = v + c * kTb;
        for (int64_t g = 0; g < kTb; g += lanes) {
            const int64_t t = b * kTb + g, ti = t / d.TW, tj = t % d.TW;
            Vec rows[A][A];  // d B: row r of the tiles times B
#pragma GCC unroll 8
            for (int r = 0; r < A; ++r) {
                const float* row = p + (M * ti + r) * d.Wp + tj;
                Vec in[A];
#pragma GCC unroll 8
                for (int j = 0; j < A; ++j) in[j] = load(row + (j % M) * d.seg + j / M, Vec{});
                Tile<M>::input(in, rows[r]);
            }
            transform_columns<A, A, A>(rows, Tile<M>::template input<Vec>, [&](int i, int s, Vec value) {
                store(vc + (i * A + s) * d.vstride + g, value);  // B^T d B at position (i, s)
            });
        }
    }
}

// M[k0 .. k0 + R)[xi] = U[xi] block kb times V[xi], for the block's 16 tiles.
template <int R>
void product_block(const Dims& d, const float* u, const float* v, float* m, int64_t xi, int64_t kb) {
    const float* ub = u + (xi * k_blocks(d) + kb) * d.C * kKb;
    // Every loop over r is unrolled, or GCC keeps the accumulators on the stack.
    __m256 acc[R][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float* vx = v + xi * d.vstride;
    const int64_t C = d.C;
    for (int64_t c = 0; c < C; ++c, vx += kTb) {
        const __m256 v0 = _mm256_loadu_ps(vx), v1 = _mm256_loadu_ps(vx + 8);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m256 w = _mm256_broadcast_ss(ub + c * kKb + r);
            acc[r][0] = _mm256_fmadd_ps(w, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(w, v1, acc[r][1]);
        }
    }
    float* mk = m + (kb * kKb * d.xis + xi) * kTb;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        _mm256_storeu_ps(mk + r * d.xis * kTb, acc[r][0]);
        _mm256_storeu_ps(mk + r * d.xis * kTb + 8, acc[r][1]);
    }
}

// Output channel blocks [kb0, kb1).
void product(const Dims& d, const float* u, const float* v, float* m, int64_t kb0, int64_t kb1) {
    if (d.avx512) return product_avx512(d, u, v, m, kb0, kb1);
    for (int64_t xi = 0; xi < d.xis; ++xi)
        for (int64_t kb = kb0; kb < kb1; ++kb) switch (std::min<int64_t>(kKb, d.K - kb * kKb)) {
                case 6:
                    product_block<6>(d, u, v, m, xi, kb);
                    break;
                case 5:
                    product_block<5>(d, u, v, m, xi, kb);
                    break;
                case 4:
                    product_block<4>(d, u, v, m, xi, kb);
                    break;
                case 3:
                    product_block<3>(d, u, v, m, xi, kb);
                    break;
                case 2:
                    product_block<2>(d, u, v, m, xi, kb);
                    break;
                default:
                    product_block<1>(d, u, v, m, xi, kb);
                    break;
            }
}

// Output channels [k0, k1) of block b's tiles: y = A^T m A, Vec::lanes tiles at once.
template <int M, class Vec>
void output_transform(const Dims& d, const float* m, int64_t b, const float* bias, const float* residual, bool relu,
                      float* y, int64_t k0, int64_t k1) {
    constexpr int A = Tile<M>::alpha, lanes = sizeof(Vec) / sizeof(float), pieces = M * lanes / 8;
    const int64_t P = d.H * d.W;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t k = k0; k < k1; ++k) {
        const float* mk = m + k * d.xis * kTb;
        const __m256 bk = _mm256_set1_ps(bias ? bias[k] : 0.0f);
        for (int64_t g = 0; g < kTb; g += lanes) {
            const int64_t t = b * kTb + g, ti = t / d.TW, tj = t % d.TW;
            Vec rows[A][M];  // m A, per row of the tile
#pragma GCC unroll 8
            for (int r = 0; r < A; ++r) {
                Vec in[A];
#pragma GCC unroll 8
                for (int j = 0; j < A; ++j) in[j] = load(mk + (r * A + j) * kTb + g, Vec{});
                Tile<M>::output(in, rows[r]);
            }
            Vec tile[M][M];  // A^T m A: [output row][output column]
            transform_columns<A, M, M>(rows, Tile<M>::template output<Vec>,
                                       [&](int a, int j, Vec value) { tile[a][j] = value; });
#pragma GCC unroll 8
            for (int a = 0; a < M; ++a) {
                __m256 out[pieces];
                interleave(tile[a], out);
#pragma GCC unroll 8
                for (int h = 0; h < pieces; ++h) {
                    const int64_t at = k * P + (M * ti + a) * d.W + M * tj + 8 * h;
                    __m256 o = _mm256_add_ps(out[h], bk);
                    if (residual) o = _mm256_add_ps(o, _mm256_loadu_ps(residual + at));
                    if (relu) o = _mm256_max_ps(o, zero);
                    _mm256_storeu_ps(y + at, o);
                }
            }
        }
    }
}

// Tile blocks [b0, b1), output channel blocks [kb0, kb1) of one padded sample.
template <int M>
void blocks(const Dims& d, const float* xp, const float* u, const float* bias, const float* residual, bool relu,
            float* y, int64_t b0, int64_t b1, int64_t kb0, int64_t kb1, float* work) {
    float* v = work;
    float* m = work + d.xis * d.vstride;
    const bool wide = d.TW % 8 == 0;  // eight tiles to a row group
    const int64_t k0 = kb0 * d.kb, k1 = std::min(d.K, kb1 * d.kb);
    for (int64_t b = b0; b < b1; ++b) {
        if (d.avx512 && wide)
            input_transform_avx512(d, xp, b, v);
        else if (d.grid)
            input_transform_grid_avx512(d, xp, v);
        else if (wide)
            input_transform<M, __m256>(d, xp, b, v);
        else
            input_transform<M, __m128>(d, xp, b, v);
        product(d, u, v, m, kb0, kb1);
        if (d.avx512 && wide)
            output_transform_avx512(d, m, b, bias, residual, relu, y, k0, k1);
        else if (d.grid)
            output_transform_grid_avx512(d, m, bias, residual, relu, y, k0, k1);
        else if (wide)
            output_transform<M, __m256>(d, m, b, bias, residual, relu, y, k0, k1);
        else
            output_transform<M, __m128>(d, m, b, bias, residual, relu, y, k0, k1);
    }
}

void run_blocks(const Dims& d, const float* xp, const float* u, const float* bias, const float* residual, bool relu,
                float* y, int64_t b0, int64_t b1, int64_t kb0, int64_t kb1, float* work) {
    if (d.over_channels)
        blocks_over_channels(d, xp, u, bias, residual, relu, y, kb0, kb1, work);
    else if (d.m == 4)
        blocks<4>(d, xp, u, bias, residual, relu, y, b0, b1, kb0, kb1, work);
    else
        blocks<2>(d, xp, u, bias, residual, relu, y, b0, b1, kb0, kb1, work);
}

// Where U keeps position xi of output channel k and input channel c: [xi][k block][c][k in block].
inline size_t weight_index(const Dims& d, int64_t xi, int64_t k, int64_t c) {
    return size_t(((xi * k_blocks(d) + k / d.kb) * d.C + c) * d.kb + k % d.kb);
}

// G g G^T of the filters of output channels k .. k + L - 1 (L = 1, or 4 with D = __m256d: adjacent
// channels of one output block) and input channel c, stored in U at weight_index.
template <int M, class D>
void transform_filters(const Dims& d, const float* w, float* u, int64_t k, int64_t c) {
    constexpr int A = Tile<M>::alpha;
    const int64_t C = d.C;
    auto taps_at = [&](int t) {  // tap t of each filter
        if constexpr (sizeof(D) == sizeof(double))
            return D(w[(k * C + c) * 9 + t]);
        else
            return _mm256_set_pd(w[((k + 3) * C + c) * 9 + t], w[((k + 2) * C + c) * 9 + t],
                                 w[((k + 1) * C + c) * 9 + t], w[(k * C + c) * 9 + t]);
    };
    D rows[3][A];  // g G^T
    for (int r = 0; r < 3; ++r) {
        const D taps[3] = {taps_at(3 * r), taps_at(3 * r + 1), taps_at(3 * r + 2)};
        Tile<M>::weights(taps, rows[r]);
    }
    for (int j = 0; j < A; ++j) {
        const D col[3] = {rows[0][j], rows[1][j], rows[2][j]};
        D out[A];
        Tile<M>::weights(col, out);
        for (int i = 0; i < A; ++i) {
            float* at = u + weight_index(d, i * A + j, k, c);
            if constexpr (sizeof(D) == sizeof(double))
                *at = float(out[i]);
            else
                _mm_storeu_ps(at, _mm256_cvtpd_ps(out[i]));
        }
    }
}

// G g G^T for every (output, input) channel pair, at positions [xi][k block][c][k in block], in double;
// four output channels at a time where they share a block, and the input channels shared out between
// threads: the divisions take about 0.2 ms a layer of 64 channels, and training transforms every
// layer twice a step. Each value is computed alone, so the thread count does not change it.
template <int M>
void transform_weights(const Dims& d, TensorView w, float* u, int threads) {
    constexpr int A = Tile<M>::alpha;
    const int64_t K = d.K, C = d.C, KB = k_blocks(d);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t c = 0; c < C; ++c) {
        for (int64_t k = K; k < KB * d.kb; ++k)  // the last block's lanes beyond K: zero
            for (int64_t xi = 0; xi < A * A; ++xi) u[weight_index(d, xi, k, c)] = 0.0f;
        for (int64_t k = 0; k < K;) {
            const bool four = k + 4 <= K && k % d.kb + 4 <= d.kb;
            if (four)
                transform_filters<M, __m256d>(d, w.data, u, k, c);
            else
                transform_filters<M, double>(d, w.data, u, k, c);
            k += four ? 4 : 1;
        }
    }
}

}  // namespace

namespace {

// 3x3, stride 1, padding 1, one group, output as large as the input.
bool winograd_geometry(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    if (x.rank != 4 || w.rank != 4 || y.rank != 4 || a.groups != 1 || w[2] != 3 || w[3] != 3) return false;
    if (a.stride[0] != 1 || a.stride[1] != 1 || a.dilation[0] != 1 || a.dilation[1] != 1) return false;
    if (!std::all_of(a.pad, a.pad + 4, [](int64_t p) { return p == 1; })) return false;
    return y[2] == x[2] && y[3] == x[3];
}

// The planes split into m x m tiles, 16 to a block, rows of a multiple of 4 tiles (the output transform's stores).
bool tiles_fit(const Shape& x, int64_t m) {
    const int64_t H = x[2], W = x[3];
    return H % m == 0 && W % (4 * m) == 0 && (H / m) * (W / m) % kTb == 0;
}

}  // namespace

WinogradPlan winograd_plan(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    if (!winograd_geometry(a, x, w, y)) return {};
    const int64_t H = x[2], W = x[3], channels = x[1] + w[0];
    // A tile block's V and M must stay in L2 beside the weights: at most 288 KB for F4 (128
    // channels in and out), 256 KB for F2 (256 channels).
    if (channels <= 128 && tiles_fit(x, 4)) return {4, false};
    if (channels <= 128 && H == 8 && W == 8 && w[0] % 8 == 0) return {4, true};
    if (channels <= 256 && tiles_fit(x, 2)) return {2, false};
    return {};
}

WinogradPlan winograd_plan_for(int m, bool over_channels, bool avx512, const Attrs& a, const Shape& x, const Shape& w,
                               const Shape& y) {
    if (!winograd_geometry(a, x, w, y) || x[1] + w[0] > 1024) return {};
    if (over_channels) {
        if (m != 4 || x[2] != 8 || x[3] != 8 || w[0] % (avx512 ? 16 : 8) != 0) return {};
    } else if (!tiles_fit(x, m)) {
        return {};
    }
    return {m, over_channels, avx512};
}

size_t winograd_scratch(WinogradPlan plan, const Shape& x, const Shape& w, int threads) {
    const Dims d = dims_of(plan, x, w);
    return size_t(std::max(threads, 1)) * (padded_floats(d) + block_floats(d));
}

size_t winograd_weights_floats(WinogradPlan plan, const Shape& x, const Shape& w) {
    return weights_floats(dims_of(plan, x, w));
}

void winograd_weights(WinogradPlan plan, const Shape& x, TensorView w, float* u, int threads) {
    const Dims d = dims_of(plan, x, w.shape);
    if (plan.m == 4)
        transform_weights<4>(d, w, u, threads);
    else
        transform_weights<2>(d, w, u, threads);
}

void winograd_forward_sample(WinogradPlan plan, TensorView x, int64_t n, const float* u, const Shape& w,
                             const float* bias, const float* residual, bool relu, TensorView y, float* scratch) {
    const Dims d = dims_of(plan, x.shape, w);
    const int64_t out_size = d.K * d.H * d.W;
    const float* xn = x.data + n * d.C * d.H * d.W;
    pad_channels(d, xn, scratch, 0, d.C);
    run_blocks(d, d.unpadded ? xn : scratch, u, bias, residual ? residual + n * out_size : nullptr, relu,
               y.data + n * out_size, 0, tile_blocks(d), 0, k_blocks(d), scratch + padded_floats(d));
}

void winograd_forward(WinogradPlan plan, TensorView x, const float* u, const Shape& w, const float* bias,
                      const float* residual, bool relu, TensorView y, float* scratch, int threads) {
    const Dims d = dims_of(plan, x.shape, w);
    const int64_t N = x.shape[0], in_size = d.C * d.H * d.W, out_size = d.K * d.H * d.W;
    const size_t per_thread = padded_floats(d) + block_floats(d);
    auto res = [&](int64_t n) { return residual ? residual + n * out_size : nullptr; };
    if (threads == 1 || N >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t n = 0; n < N; ++n)
            winograd_forward_sample(plan, x, n, u, w, bias, residual, relu, y,
                                    scratch + omp_get_thread_num() * per_thread);
        return;
    }
    // Fewer samples than threads: the threads pad a share of the channels each, then take a share
    // of the tile blocks or, where there are too few, of the output channel blocks.
    for (int64_t n = 0; n < N; ++n) {
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const auto share = [&](int64_t total, int64_t& begin, int64_t& end) {
                begin = total * t / nt, end = total * (t + 1) / nt;
            };
            int64_t c0, c1, b0 = 0, b1 = tile_blocks(d), kb0 = 0, kb1 = k_blocks(d);
            share(d.C, c0, c1);
            pad_channels(d, x.data + n * in_size, scratch, c0, c1);
#pragma omp barrier
            if (tile_blocks(d) >= nt)
                share(tile_blocks(d), b0, b1);
            else
                share(k_blocks(d), kb0, kb1);
            run_blocks(d, d.unpadded ? x.data + n * in_size : scratch, u, bias, res(n), relu, y.data + n * out_size, b0,
                       b1, kb0, kb1, scratch + padded_floats(d) + t * block_floats(d));
        }
    }
}

}  // namespace engine::native
