// Per sample, the input is padded once; then, for each block of 16 tiles (so that the block's
// transformed input and product stay in L1/L2):
//  1. input transform: every 4x4 input tile d (stride 2) becomes B^T d B, 16 values (positions
//     xi). Padded rows are stored as their even columns, then their odd ones, so the four columns
//     of four adjacent tiles are four contiguous loads. V is [xi][c][16 tiles], so that the
//     product reads it in order.
//  2. product: for each xi, M = U[xi] V (K x C times C x 16 tiles), register-blocked as the direct
//     kernel is: 6 output channels x 16 tiles, 12 accumulators. M is [k][xi][16 tiles].
//  3. output transform: A^T m A gives each 2x2 output tile; bias, residual and ReLU are applied
//     on the way out.
#include "cpu_winograd.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "cpu_pad.h"

namespace engine::cpu {

namespace {

constexpr int kKb = 6;   // output channels per product block
constexpr int kTb = 16;  // tiles per product block

struct Dims {
    int64_t C, H, W, K, TW, T, half, Wp, plane;  // TW: tiles per row; T: tiles; half: floats per row half
};

Dims dims_of(const Shape& x, const Shape& w) {
    Dims d{x[1], x[2], x[3], w[0], x[3] / 2, x[2] / 2 * (x[3] / 2), x[3] / 2 + 1, 0, 0};
    d.Wp = 2 * d.half;
    d.plane = (d.H + 2) * d.Wp;
    return d;
}

int64_t k_blocks(const Dims& d) { return (d.K + kKb - 1) / kKb; }
int64_t tile_blocks(const Dims& d) { return d.T / kTb; }

// Floats of the padded input (shared by a sample's threads), and of one thread's V and M blocks.
size_t padded_floats(const Dims& d) { return size_t(d.C * d.plane); }
size_t block_floats(const Dims& d) { return size_t(16 * kTb * (d.C + d.K)); }

// Channels [c0, c1) of one sample, zero-bordered with even and odd columns apart (cpu_pad.h).
void pad_channels(const Dims& d, const float* x, float* xp, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) pad_plane_deinterleaved(x + c * d.H * d.W, d.H, d.W, xp + c * d.plane);
}

// Lane-count generic arithmetic for the transforms: 4 tiles (__m128) or 8 (__m256) at once.
inline __m128 load(const float* p, __m128) { return _mm_loadu_ps(p); }
inline __m256 load(const float* p, __m256) { return _mm256_loadu_ps(p); }
inline void store(float* p, __m128 v) { _mm_storeu_ps(p, v); }
inline void store(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline __m128 add(__m128 a, __m128 b) { return _mm_add_ps(a, b); }
inline __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
inline __m128 sub(__m128 a, __m128 b) { return _mm_sub_ps(a, b); }
inline __m256 sub(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }

// The two output columns of each tile, interleaved into 2 * lanes consecutive pixels.
inline void interleave(__m128 c0, __m128 c1, __m256 out[1]) {
    out[0] = _mm256_set_m128(_mm_unpackhi_ps(c0, c1), _mm_unpacklo_ps(c0, c1));
}
inline void interleave(__m256 c0, __m256 c1, __m256 out[2]) {
    const __m256 lo = _mm256_unpacklo_ps(c0, c1), hi = _mm256_unpackhi_ps(c0, c1);  // per 128-bit lane
    out[0] = _mm256_permute2f128_ps(lo, hi, 0x20);
    out[1] = _mm256_permute2f128_ps(lo, hi, 0x31);
}

// V = B^T d B for the 16 tiles of block b, Vec::lanes adjacent tiles at once (one lane each).
template <class Vec>
void input_transform(const Dims& d, const float* xp, int64_t b, float* v) {
    constexpr int lanes = sizeof(Vec) / sizeof(float);
    const int64_t xi_stride = d.C * kTb;
    for (int64_t c = 0; c < d.C; ++c) {
        const float* p = xp + c * d.plane;
        float* vc = v + c * kTb;
        for (int64_t g = 0; g < kTb; g += lanes) {
            const int64_t t = b * kTb + g, ti = t / d.TW, tj = t % d.TW;
            Vec rows[4][4];  // d B: row r of the tiles times B
            for (int r = 0; r < 4; ++r) {
                const float* even = p + (2 * ti + r) * d.Wp + tj;
                const float* odd = even + d.half;
                const Vec d0 = load(even, Vec{}), d1 = load(odd, Vec{});
                const Vec d2 = load(even + 1, Vec{}), d3 = load(odd + 1, Vec{});
                rows[r][0] = sub(d0, d2);
                rows[r][1] = add(d1, d2);
                rows[r][2] = sub(d2, d1);
                rows[r][3] = sub(d1, d3);
            }
            for (int s = 0; s < 4; ++s) {
                store(vc + (0 * 4 + s) * xi_stride + g, sub(rows[0][s], rows[2][s]));
                store(vc + (1 * 4 + s) * xi_stride + g, add(rows[1][s], rows[2][s]));
                store(vc + (2 * 4 + s) * xi_stride + g, sub(rows[2][s], rows[1][s]));
                store(vc + (3 * 4 + s) * xi_stride + g, sub(rows[1][s], rows[3][s]));
            }
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
    const float* vx = v + xi * d.C * kTb;
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
    float* mk = m + (kb * kKb * 16 + xi) * kTb;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        _mm256_storeu_ps(mk + r * 16 * kTb, acc[r][0]);
        _mm256_storeu_ps(mk + r * 16 * kTb + 8, acc[r][1]);
    }
}

// Output channel blocks [kb0, kb1).
void product(const Dims& d, const float* u, const float* v, float* m, int64_t kb0, int64_t kb1) {
    for (int64_t kb = kb0; kb < kb1; ++kb)
        for (int64_t xi = 0; xi < 16; ++xi) switch (std::min<int64_t>(kKb, d.K - kb * kKb)) {
                case 6: product_block<6>(d, u, v, m, xi, kb); break;
                case 5: product_block<5>(d, u, v, m, xi, kb); break;
                case 4: product_block<4>(d, u, v, m, xi, kb); break;
                case 3: product_block<3>(d, u, v, m, xi, kb); break;
                case 2: product_block<2>(d, u, v, m, xi, kb); break;
                default: product_block<1>(d, u, v, m, xi, kb); break;
            }
}

// Output channels [k0, k1) of block b's tiles: y = A^T m A, Vec::lanes tiles at once.
template <class Vec>
void output_transform(const Dims& d, const float* m, int64_t b, const float* bias, const float* residual, bool relu,
                      float* y, int64_t k0, int64_t k1) {
    constexpr int lanes = sizeof(Vec) / sizeof(float);
    const int64_t P = d.H * d.W;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t k = k0; k < k1; ++k) {
        const float* mk = m + k * 16 * kTb;
        const __m256 bk = _mm256_set1_ps(bias ? bias[k] : 0.0f);
        for (int64_t g = 0; g < kTb; g += lanes) {
            const int64_t t = b * kTb + g, ti = t / d.TW, tj = t % d.TW;
            Vec a0[4], a1[4];  // m A, per row of the 4x4 tile
            for (int r = 0; r < 4; ++r) {
                const Vec m0 = load(mk + (r * 4 + 0) * kTb + g, Vec{}), m1 = load(mk + (r * 4 + 1) * kTb + g, Vec{});
                const Vec m2 = load(mk + (r * 4 + 2) * kTb + g, Vec{}), m3 = load(mk + (r * 4 + 3) * kTb + g, Vec{});
                a0[r] = add(add(m0, m1), m2);
                a1[r] = sub(sub(m1, m2), m3);
            }
            const Vec rows[2][2] = {{add(add(a0[0], a0[1]), a0[2]), add(add(a1[0], a1[1]), a1[2])},
                                    {sub(sub(a0[1], a0[2]), a0[3]), sub(sub(a1[1], a1[2]), a1[3])}};
            for (int a = 0; a < 2; ++a) {
                __m256 out[lanes / 4];
                interleave(rows[a][0], rows[a][1], out);
                for (int h = 0; h < lanes / 4; ++h) {
                    const int64_t at = k * P + (2 * ti + a) * d.W + 2 * tj + 8 * h;
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
void blocks(const Dims& d, const float* xp, const float* u, const float* bias, const float* residual, bool relu,
            float* y, int64_t b0, int64_t b1, int64_t kb0, int64_t kb1, float* work) {
    float* v = work;
    float* m = work + 16 * kTb * d.C;
    const bool wide = d.TW % 8 == 0;  // eight tiles to a row group
    const int64_t k0 = kb0 * kKb, k1 = std::min(d.K, kb1 * kKb);
    for (int64_t b = b0; b < b1; ++b) {
        if (wide) input_transform<__m256>(d, xp, b, v);
        else input_transform<__m128>(d, xp, b, v);
        product(d, u, v, m, kb0, kb1);
        if (wide) output_transform<__m256>(d, m, b, bias, residual, relu, y, k0, k1);
        else output_transform<__m128>(d, m, b, bias, residual, relu, y, k0, k1);
    }
}

}  // namespace

bool winograd_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    if (x.rank != 4 || w.rank != 4 || y.rank != 4 || a.groups != 1 || w[2] != 3 || w[3] != 3) return false;
    if (a.stride[0] != 1 || a.stride[1] != 1 || a.dilation[0] != 1 || a.dilation[1] != 1) return false;
    if (!std::all_of(a.pad, a.pad + 4, [](int64_t p) { return p == 1; })) return false;
    const int64_t H = x[2], W = x[3];
    // A tile block's V and M (16 KB per 256 channels in and out) must stay in L2 beside the weights.
    const bool small = x[1] + w[0] <= 256;
    return small && y[2] == H && y[3] == W && H % 2 == 0 && W % 8 == 0 && (H / 2) * (W / 2) % kTb == 0;
}

size_t winograd_scratch(const Shape& x, const Shape& w, int threads) {
    const Dims d = dims_of(x, w);
    return size_t(std::max(threads, 1)) * (padded_floats(d) + block_floats(d));
}

size_t winograd_weights_floats(const Shape& w) { return size_t(16 * (w[0] + kKb - 1) / kKb * kKb * w[1]); }

void winograd_weights(TensorView w, float* u) {
    const int64_t K = w.shape[0], C = w.shape[1], KB = (K + kKb - 1) / kKb;
    std::fill(u, u + winograd_weights_floats(w.shape), 0.0f);  // [xi][k block][c][k in block]
    for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < C; ++c) {
            const float* g = w.data + (k * C + c) * 9;
            float gg[4][3];  // G g, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
            for (int j = 0; j < 3; ++j) {
                gg[0][j] = g[j];
                gg[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                gg[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                gg[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; ++i) {
                const float row[4] = {gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]),
                                      0.5f * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
                for (int j = 0; j < 4; ++j) u[((size_t(i * 4 + j) * KB + k / kKb) * C + c) * kKb + k % kKb] = row[j];
            }
        }
}

void winograd_forward_sample(TensorView x, int64_t n, const float* u, const Shape& w, const float* bias,
                             const float* residual, bool relu, TensorView y, float* scratch) {
    const Dims d = dims_of(x.shape, w);
    const int64_t out_size = d.K * d.H * d.W;
    pad_channels(d, x.data + n * d.C * d.H * d.W, scratch, 0, d.C);
    blocks(d, scratch, u, bias, residual ? residual + n * out_size : nullptr, relu, y.data + n * out_size, 0,
           tile_blocks(d), 0, k_blocks(d), scratch + padded_floats(d));
}

void winograd_forward(TensorView x, const float* u, const Shape& w, const float* bias, const float* residual, bool relu,
                      TensorView y, float* scratch, int threads) {
    const Dims d = dims_of(x.shape, w);
    const int64_t N = x.shape[0], in_size = d.C * d.H * d.W, out_size = d.K * d.H * d.W;
    const size_t per_thread = padded_floats(d) + block_floats(d);
    auto res = [&](int64_t n) { return residual ? residual + n * out_size : nullptr; };
    if (threads == 1 || N >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t n = 0; n < N; ++n)
            winograd_forward_sample(x, n, u, w, bias, residual, relu, y, scratch + omp_get_thread_num() * per_thread);
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
            if (tile_blocks(d) >= nt) share(tile_blocks(d), b0, b1);
            else share(k_blocks(d), kb0, kb1);
            blocks(d, scratch, u, bias, res(n), relu, y.data + n * out_size, b0, b1, kb0, kb1,
                   scratch + padded_floats(d) + t * block_floats(d));
        }
    }
}

}  // namespace engine::cpu
