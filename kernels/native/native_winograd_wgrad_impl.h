// The Winograd weight gradient's implementation (native_winograd_wgrad.h), written once for both
// vector widths and included by native_winograd_wgrad.cpp (AVX2) and native_winograd_wgrad_avx512.cpp.
// Everything here has internal linkage, so the two files' copies, compiled for different
// instruction sets, never stand in for each other at link time.
//
// Layout: each sample is first copied channels-last (the input with its zero border), so that a
// tile's 36 points of one vector of consecutive channels are one load each and the transforms run
// on 8 or 16 channels at once. The transforms of a chunk of samples (about kTilesPerChunk tiles) are
// stored in V (input) and M (gradient), each tile-major or point-major by its channel count
// (TransformLayout); then for every point the chunk's tiles are summed into the thread's transformed
// gradient gU[point][k][c] by rank-1 updates (a broadcast of M, a vector of V). G^T gU G is taken
// once, at the end of the thread's samples.
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "engine/aligned_vector.h"
#include "native_simd.h"
#include "native_winograd_wgrad.h"

namespace engine::native {
namespace {

constexpr int kPoints = 36;             // 6 x 6 transformed points per F(4x4, 3x3) tile
// Rank-1 updates per point: enough to hide gU's loads and stores, few enough that a chunk's V and M
// stay nearer the core (32 against 64: bench_wgrad 1.05-1.1x on 16x16 and 8x8 planes, the same on 32x32,
// where a sample is one chunk either way; the sums' order, and so the result, does not change).
constexpr int64_t kTilesPerChunk = 32;

struct Dims {
    int64_t C, K, H, W, tiles_h, tiles_w;
    int64_t tiles() const { return tiles_h * tiles_w; }
    int64_t chunk() const { return std::max<int64_t>(1, kTilesPerChunk / tiles()); }  // samples per chunk
    int64_t max_tiles() const { return chunk() * tiles(); }
    int64_t padded() const { return (H + 2) * (W + 2) * C; }
};

// Where a chunk's transforms of `channels` per tile are stored: point p of tile t at t * tile + p * point.
// A transform writes a tile's 36 points in turn. With few channels (a line or two per point),
// point-major storage (V[point][tile][c]) sends those writes to 36 lines far apart, and they took
// about half of the 16-channel layers' time; tile-major (V[tile][point][c]) writes them one after
// another: the weight gradient of 16 channels on 32x32 ran 1.4-1.5x faster, of 32 on 16x16 about
// 1.1x (bench_wgrad, AVX-512). With 64 channels or more a point is four lines or more, and
// point-major keeps the product's loads of one point on fewer pages (tile-major was 1.05x slower).
struct TransformLayout {
    int64_t tile, point;
};
TransformLayout transform_layout(const Dims& d, int64_t channels) {
    if (channels <= 32) return {kPoints * channels, channels};
    // One cache line more than a point's block, so that the 36 blocks a tile writes do not all fall in
    // one L1 set (their sizes are multiples of 4 KB).
    return {channels, d.max_tiles() * channels + 16};
}
inline int64_t transform_floats(const Dims& d, int64_t channels) {
    const TransformLayout l = transform_layout(d, channels);
    return std::max(d.max_tiles() * l.tile, kPoints * l.point);
}

// x [N, C, H, W] and the output channel count K.
Dims dims_of(const Shape& x, int64_t K) { return {x[1], K, x[2], x[3], x[2] / 4, x[3] / 4}; }

// x in every lane of a V: __m256 in the AVX2 file, __m512 in the AVX-512 one (native_simd.h's helpers).
template <class V>
inline V splat(float x) {
    return broadcast(&x, V{});
}

// B^T applied to 6 points: rows of the input transform.
template <class V>
inline void input_rows(const V d[6], V r[6]) {
    const V four = splat<V>(4.0f), five = splat<V>(5.0f), two = splat<V>(2.0f);
    const V d4_d2 = d[4] - d[2];
    r[0] = fmadd(four, d[0], d[4]) - five * d[2];
    r[1] = (d[3] + d[4]) - four * (d[1] + d[2]);
    r[2] = fmadd(four, d[1] - d[2], d[4] - d[3]);
    r[3] = fmadd(two, d[3] - d[1], d4_d2);
    r[4] = fmadd(two, d[1] - d[3], d4_d2);
    r[5] = fmadd(four, d[1], d[5]) - five * d[3];
}

// A applied to 4 output-gradient points, giving 6: the transpose of the forward output transform.
template <class V>
inline void gradient_rows(const V g[4], V m[6]) {
    const V two = splat<V>(2.0f), four = splat<V>(4.0f), eight = splat<V>(8.0f);
    const V even = g[0] + g[2], odd = g[1] + g[3];
    const V even4 = fmadd(four, g[2], g[0]), odd8 = fmadd(eight, g[3], two * g[1]);
    m[0] = g[0];
    m[1] = even + odd;
    m[2] = even - odd;
    m[3] = even4 + odd8;
    m[4] = even4 - odd8;
    m[5] = g[3];
}

// out[j * ldo + i] = in[i * ldi + j] for an 8 x 8 block.
inline void transpose8x8(const float* in, int64_t ldi, float* out, int64_t ldo) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + i * ldi);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4)
        for (int h = 0; h < 2; ++h) {
            r[i + h] = _mm256_shuffle_ps(t[i + h], t[i + h + 2], _MM_SHUFFLE(1, 0, 1, 0));
            r[i + h + 2] = _mm256_shuffle_ps(t[i + h], t[i + h + 2], _MM_SHUFFLE(3, 2, 3, 2));
        }
    // r[0..3]: columns {0, 4}, {2, 6}, {1, 5}, {3, 7} of rows 0-3 (low and high lanes); r[4..7]: of rows 4-7.
    static constexpr int kColumn[4] = {0, 2, 1, 3};
    for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(out + kColumn[i] * ldo, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
        _mm256_storeu_ps(out + (kColumn[i] + 4) * ldo, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
    }
}

// rows x cols (both multiples of 8) of in, row stride ldi, into out[j * ldo + i].
void transpose(const float* in, int64_t rows, int64_t cols, int64_t ldi, float* out, int64_t ldo) {
    for (int64_t i = 0; i < rows; i += 8)
        for (int64_t j = 0; j < cols; j += 8) transpose8x8(in + i * ldi + j, ldi, out + j * ldo + i, ldo);
}

// Sample n channels-last with its zero border: xt[(y * (W + 2) + x) * C + c], y and x padded.
void input_channels_last(const Dims& d, const float* x, float* xt) {
    const int64_t Wp = d.W + 2, row = Wp * d.C;
    std::fill(xt, xt + row, 0.0f);
    std::fill(xt + (d.H + 1) * row, xt + (d.H + 2) * row, 0.0f);
    for (int64_t y = 0; y < d.H; ++y) {
        float* out = xt + (y + 1) * row;
        std::fill(out, out + d.C, 0.0f);
        std::fill(out + (Wp - 1) * d.C, out + Wp * d.C, 0.0f);
        transpose(x + y * d.W, d.C, d.W, d.H * d.W, out + d.C, d.C);
    }
}

// Sample n of gy channels-last: gt[(y * W + x) * K + k].
void gradient_channels_last(const Dims& d, const float* gy, float* gt) {
    transpose(gy, d.K, d.H * d.W, d.H * d.W, gt, d.K);
}

// V[tile0 + t][point][c] = (B^T x B)[point] for every tile t of one channels-last sample, stored as l says.
template <class V>
void transform_input(const Dims& d, const float* xt, int64_t tile0, TransformLayout l, float* v) {
    // Every extent in a local: a vector store may alias anything, so fields of d would be reloaded after each.
    const int64_t C = d.C, Wp = d.W + 2, tiles_h = d.tiles_h, tiles_w = d.tiles_w;
    for (int64_t ti = 0; ti < tiles_h; ++ti)
        for (int64_t tj = 0; tj < tiles_w; ++tj) {
            const float* corner = xt + (4 * ti * Wp + 4 * tj) * C;
            float* vt = v + (tile0 + ti * tiles_w + tj) * l.tile;
            for (int64_t c = 0; c < C; c += kLanes<V>) {
                V cols[6][6];  // cols[b][a']: B^T applied down column b
                for (int b = 0; b < 6; ++b) {
                    V col[6];
                    for (int a = 0; a < 6; ++a) col[a] = load(corner + (a * Wp + b) * C + c, V{});
                    input_rows(col, cols[b]);
                }
                for (int a = 0; a < 6; ++a) {
                    const V row[6] = {cols[0][a], cols[1][a], cols[2][a], cols[3][a], cols[4][a], cols[5][a]};
                    V out[6];
                    input_rows(row, out);
                    for (int b = 0; b < 6; ++b) store(vt + (a * 6 + b) * l.point + c, out[b]);
                }
            }
        }
}

// M[tile0 + t][point][k] = (A gy A^T)[point] for every tile t of one channels-last sample, stored as l says.
template <class V>
void transform_gradient(const Dims& d, const float* gt, int64_t tile0, TransformLayout l, float* m) {
    const int64_t K = d.K, W = d.W, tiles_h = d.tiles_h, tiles_w = d.tiles_w;  // locals: see transform_input
    for (int64_t ti = 0; ti < tiles_h; ++ti)
        for (int64_t tj = 0; tj < tiles_w; ++tj) {
            const float* corner = gt + (4 * ti * W + 4 * tj) * K;
            float* mt = m + (tile0 + ti * tiles_w + tj) * l.tile;
            for (int64_t k = 0; k < K; k += kLanes<V>) {
                V cols[4][6];  // cols[b][a']: A applied down column b
                for (int b = 0; b < 4; ++b) {
                    V col[4];
                    for (int a = 0; a < 4; ++a) col[a] = load(corner + (a * W + b) * K + k, V{});
                    gradient_rows(col, cols[b]);
                }
                for (int a = 0; a < 6; ++a) {
                    const V row[4] = {cols[0][a], cols[1][a], cols[2][a], cols[3][a]};
                    V out[6];
                    gradient_rows(row, out);
                    for (int b = 0; b < 6; ++b) store(mt + (a * 6 + b) * l.point + k, out[b]);
                }
            }
        }
}

// gu[r][0 .. NV vectors) += sum over t of m[t][r] * v[t][0 .. NV vectors), for R output channels.
template <class V, int R, int NV>
void rank1_block(int64_t tiles, const float* m, int64_t ldm, const float* v, int64_t ldv, float* gu, int64_t ldu) {
    constexpr int L = kLanes<V>;
    V acc[R][NV];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NV; ++j) acc[r][j] = load(gu + r * ldu + L * j, V{});
    for (int64_t t = 0; t < tiles; ++t) {
        V vv[NV];
        for (int j = 0; j < NV; ++j) vv[j] = load(v + t * ldv + L * j, V{});
        for (int r = 0; r < R; ++r) {
            const V b = broadcast(m + t * ldm + r, V{});
            for (int j = 0; j < NV; ++j) acc[r][j] = fmadd(b, vv[j], acc[r][j]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NV; ++j) store(gu + r * ldu + L * j, acc[r][j]);
}

// rank1_block for `rows` (1..R) output channels.
template <class V, int NV, int R>
void rank1_rows(int rows, int64_t tiles, const float* m, int64_t ldm, const float* v, int64_t ldv, float* gu,
                int64_t ldu) {
    if constexpr (R > 1)
        if (rows < R) return rank1_rows<V, NV, R - 1>(rows, tiles, m, ldm, v, ldv, gu, ldu);
    rank1_block<V, R, NV>(tiles, m, ldm, v, ldv, gu, ldu);
}

// gu [K, C] += m[tiles, K]^T v[tiles, C] for one point, whose tiles lie mt and vt floats apart, in
// blocks of output channels by two vectors of input channels (one for a last odd vector). AVX2: 6
// rows, 12 or 6 accumulators. AVX-512: 12 rows by two vectors, 16 by one (16-channel layers: K = 16
// in one block).
template <class V>
void accumulate_point(const Dims& d, int64_t tiles, const float* m, int64_t mt, const float* v, int64_t vt, float* gu) {
    constexpr int L = kLanes<V>;
    constexpr int kRowsWide = L == 16 ? 12 : 6, kRowsNarrow = L == 16 ? 16 : 6;
    int64_t c0 = 0;
    for (; c0 + 2 * L <= d.C; c0 += 2 * L)
        for (int64_t k0 = 0; k0 < d.K; k0 += kRowsWide)
            rank1_rows<V, 2, kRowsWide>(int(std::min<int64_t>(kRowsWide, d.K - k0)), tiles, m + k0, mt, v + c0, vt,
                                        gu + k0 * d.C + c0, d.C);
    if (c0 < d.C)
        for (int64_t k0 = 0; k0 < d.K; k0 += kRowsNarrow)
            rank1_rows<V, 1, kRowsNarrow>(int(std::min<int64_t>(kRowsNarrow, d.K - k0)), tiles, m + k0, mt, v + c0, vt,
                                          gu + k0 * d.C + c0, d.C);
}

// gw[k][c] += G^T gu[.][k][c] G, with G the F(4x4, 3x3) weight transform (6 x 3).
void gradient_to_weights(const Dims& d, const float* gu, float* gw) {
    static const double G[6][3] = {{1.0 / 4, 0, 0},
                                   {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                   {0, 0, 1}};
    const int64_t pair_stride = d.K * d.C;
    for (int64_t k = 0; k < d.K; ++k)
        for (int64_t c = 0; c < d.C; ++c) {
            const float* u = gu + k * d.C + c;
            double left[3][6] = {};  // G^T gu
            for (int p = 0; p < 3; ++p)
                for (int a = 0; a < 6; ++a)
                    for (int b = 0; b < 6; ++b) left[p][b] += G[a][p] * u[(a * 6 + b) * pair_stride];
            float* out = gw + (k * d.C + c) * 9;
            for (int p = 0; p < 3; ++p)
                for (int q = 0; q < 3; ++q) {
                    double s = 0;
                    for (int b = 0; b < 6; ++b) s += left[p][b] * G[b][q];
                    out[p * 3 + q] += float(s);
                }
        }
}

// gw += the weight gradient of samples [n0, n1) (native_winograd_wgrad.h), on vectors V.
template <class V>
void weight_grad(TensorView x, TensorView gy, float* gw, int64_t n0, int64_t n1, float* scratch) {
    const Dims d = dims_of(x.shape, gy.shape[1]);
    const TransformLayout vl = transform_layout(d, d.C), ml = transform_layout(d, d.K);
    const int64_t pair = d.K * d.C;
    float* xt = scratch;  // each part on a line of its own (whole_lines), as the scratch starts on one
    float* gt = xt + whole_lines(d.padded());
    float* v = gt + whole_lines(d.H * d.W * d.K);
    float* m = v + whole_lines(transform_floats(d, d.C));
    float* gu = m + whole_lines(transform_floats(d, d.K));
    std::fill(gu, gu + kPoints * pair, 0.0f);
    for (int64_t first = n0; first < n1; first += d.chunk()) {
        const int64_t samples = std::min(d.chunk(), n1 - first);
        for (int64_t s = 0; s < samples; ++s) {
            input_channels_last(d, x.data + (first + s) * d.C * d.H * d.W, xt);
            transform_input<V>(d, xt, s * d.tiles(), vl, v);
            gradient_channels_last(d, gy.data + (first + s) * d.K * d.H * d.W, gt);
            transform_gradient<V>(d, gt, s * d.tiles(), ml, m);
        }
        for (int p = 0; p < kPoints; ++p)
            accumulate_point<V>(d, samples * d.tiles(), m + p * ml.point, ml.tile, v + p * vl.point, vl.tile,
                                gu + p * pair);
    }
    gradient_to_weights(d, gu, gw);
}

// Floats of scratch weight_grad needs, for either vector type.
inline size_t scratch_floats(const Dims& d) {
    return size_t(whole_lines(d.padded()) + whole_lines(d.H * d.W * d.K) + whole_lines(transform_floats(d, d.C)) +
                  whole_lines(transform_floats(d, d.K)) + whole_lines(kPoints * d.K * d.C));
}

}  // namespace
}  // namespace engine::native
