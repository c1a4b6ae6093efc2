// The input is copied once per call into zero-bordered planes, so the inner loop reads every
// tap without a border test. A tile is kCo output channels x 16 output pixels (two 8-pixel row
// segments, on different rows when the width is 8): 12 accumulators; per tap two input loads
// and kCo weight broadcasts feed 2*kCo FMAs. The weights are read in their OIHW layout: one
// block's weights (kCo x C x 9 floats, 14 KB at 64 channels) stay in L1, so packing gains nothing.
// Stride 2: each padded row is stored as its even columns, then its odd columns, so the 8 pixels
// of a segment read 8 consecutive floats for every tap as well.
#include "native_conv3x3.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "engine/aligned_vector.h"
#include "native_pad.h"
#include "native_simd.h"

namespace engine::native {

namespace {

constexpr int kCo = 6;   // output channels per tile
constexpr int kSeg = 8;  // pixels per row segment (one ymm register)

struct Geometry {
    int64_t C, H, W, K, Wp, plane, P, OW;  // Wp, plane: width and size of a zero-bordered input plane
};

// Offset of tap (kh, kw) from a segment's window start in the padded planes of stride S.
template <int S>
inline int64_t tap(const Geometry& g, int kh, int kw) {
    if (S == 1) return kh * g.Wp + kw;
    return kh * g.Wp + (kw == 1 ? g.Wp / 2 : kw / 2);  // even columns [0, Wp/2), odd columns after
}

// Every channel of one sample, zero-bordered for stride 1 or 2 (native_pad.h).
void pad(const Geometry& g, int stride, const float* x, float* xp) {
    for (int64_t c = 0; c < g.C; ++c) pad_plane_for_stride(stride, x + c * g.H * g.W, g.H, g.W, xp + c * g.plane);
}

// One tile of R output channels: segment s reads the window at xs[s] and writes ys[s] (row
// stride P per channel); with one segment, xs[1] == xs[0] and ys[1] is null.
template <int R, int S>
void tile(const Geometry& g, const float* w, const float* bias, const float* const xs[2], float* const ys[2],
          const float* const rs[2], bool relu) {
    __m256 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = bias ? _mm256_broadcast_ss(bias + r) : _mm256_setzero_ps();
    const int64_t wstride = g.C * 9, plane = g.plane;
    const float* x0 = xs[0];
    const float* x1 = xs[1];
    for (int64_t c = 0; c < g.C; ++c, x0 += plane, x1 += plane) {
        const float* wc = w + c * 9;
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; ++kh)
            for (int kw = 0; kw < 3; ++kw) {
                const __m256 v0 = _mm256_loadu_ps(x0 + tap<S>(g, kh, kw));
                const __m256 v1 = _mm256_loadu_ps(x1 + tap<S>(g, kh, kw));
                for (int r = 0; r < R; ++r) {
                    const __m256 wv = _mm256_broadcast_ss(wc + r * wstride + kh * 3 + kw);
                    acc[r][0] = _mm256_fmadd_ps(wv, v0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(wv, v1, acc[r][1]);
                }
            }
    }
    const __m256 zero = _mm256_setzero_ps();
    for (int s = 0; s < 2 && ys[s]; ++s)
        for (int r = 0; r < R; ++r) {
            __m256 v = acc[r][s];
            if (rs[s]) v = _mm256_add_ps(v, _mm256_loadu_ps(rs[s] + r * g.P));
            if (relu) v = _mm256_max_ps(v, zero);
            _mm256_storeu_ps(ys[s] + r * g.P, v);
        }
}

// Output channels [k0, k0 + R) of one sample, every pixel.
template <int R, int S>
void channel_block(const Geometry& g, const float* xp, const float* w, const float* bias, const float* residual,
                   bool relu, float* y, int64_t k0) {
    w += k0 * g.C * 9;
    if (bias) bias += k0;
    y += k0 * g.P;
    if (residual) residual += k0 * g.P;
    int64_t row = 0, col = 0;  // where the next segment starts (segments never cross a row: OW % 8 == 0)
    for (int64_t p = 0; p < g.P; p += 2 * kSeg) {
        const float* xs[2];
        float* ys[2] = {nullptr, nullptr};
        const float* rs[2] = {nullptr, nullptr};
        for (int s = 0; s < 2; ++s) {
            if (p + s * kSeg == g.P) {  // a lone last segment: computed twice, stored once
                xs[1] = xs[0];
                break;
            }
            xs[s] = xp + row * S * g.Wp + col;
            ys[s] = y + p + s * kSeg;
            if (residual) rs[s] = residual + p + s * kSeg;
            col += kSeg;
            if (col == g.OW) col = 0, ++row;
        }
        tile<R, S>(g, w, bias, xs, ys, rs, relu);
    }
}

template <int S>
void block_s(const Geometry& g, const float* xp, const float* w, const float* bias, const float* residual, bool relu,
             float* y, int64_t k0) {
    switch (std::min<int64_t>(kCo, g.K - k0)) {
        case 6:
            return channel_block<6, S>(g, xp, w, bias, residual, relu, y, k0);
        case 5:
            return channel_block<5, S>(g, xp, w, bias, residual, relu, y, k0);
        case 4:
            return channel_block<4, S>(g, xp, w, bias, residual, relu, y, k0);
        case 3:
            return channel_block<3, S>(g, xp, w, bias, residual, relu, y, k0);
        case 2:
            return channel_block<2, S>(g, xp, w, bias, residual, relu, y, k0);
        default:
            return channel_block<1, S>(g, xp, w, bias, residual, relu, y, k0);
    }
}

void block(const Geometry& g, int stride, const float* xp, const float* w, const float* bias, const float* residual,
           bool relu, float* y, int64_t k0) {
    if (stride == 1) return block_s<1>(g, xp, w, bias, residual, relu, y, k0);
    block_s<2>(g, xp, w, bias, residual, relu, y, k0);
}

Geometry geometry(const Shape& x, const Shape& w, const Shape& y) {
    Geometry g{x[1], x[2], x[3], w[0], x[3] + 2, 0, y[2] * y[3], y[3]};
    g.plane = (g.H + 2) * g.Wp;
    return g;
}

int64_t blocks(const Geometry& g) { return (g.K + kCo - 1) / kCo; }

// Channel blocks [b0, b1) of one sample whose padded input is xp; residual and y point at the sample.
void sample(const Geometry& g, int stride, const float* xp, const float* w, const float* bias, const float* residual,
            bool relu, float* y, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) block(g, stride, xp, w, bias, residual, relu, y, b * kCo);
}

// Samples per weight-gradient chunk: enough pixels (1024) that the accumulators' final
// horizontal sums cost little next to the products.
int64_t wgrad_chunk(const Shape& x) { return std::max<int64_t>(1, 1024 / (x[2] * x[3])); }

// Output channels [k0, k0 + R) of a chunk of `samples` padded inputs: for each input channel and
// kernel row, 3 x R accumulators (one per kernel column) run over every pixel of every sample.
template <int R>
void wgrad_block(const Geometry& g, const float* xp, const float* gy, int64_t samples, int64_t k0, float* gw) {
    for (int64_t c = 0; c < g.C; ++c)
        for (int kh = 0; kh < 3; ++kh) {
            __m256 acc[R][3];
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = acc[r][2] = _mm256_setzero_ps();
            for (int64_t n = 0; n < samples; ++n) {
                const float* xr = xp + (n * g.C + c) * g.plane + kh * g.Wp;
                const float* gr = gy + (n * g.K + k0) * g.P;
                for (int64_t oh = 0; oh < g.H; ++oh, xr += g.Wp)
                    for (int64_t ow = 0; ow < g.W; ow += kSeg) {
                        const __m256 x0 = _mm256_loadu_ps(xr + ow), x1 = _mm256_loadu_ps(xr + ow + 1);
                        const __m256 x2 = _mm256_loadu_ps(xr + ow + 2);
#pragma GCC unroll 4
                        for (int r = 0; r < R; ++r) {
                            const __m256 d = _mm256_loadu_ps(gr + r * g.P + oh * g.W + ow);
                            acc[r][0] = _mm256_fmadd_ps(d, x0, acc[r][0]);
                            acc[r][1] = _mm256_fmadd_ps(d, x1, acc[r][1]);
                            acc[r][2] = _mm256_fmadd_ps(d, x2, acc[r][2]);
                        }
                    }
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
                for (int kw = 0; kw < 3; ++kw) gw[((k0 + r) * g.C + c) * 9 + kh * 3 + kw] += horizontal_sum(acc[r][kw]);
        }
}

}  // namespace

bool conv3x3_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    const int64_t s = a.stride[0];
    return a.groups == 1 && w[2] == 3 && w[3] == 3 && (s == 1 || s == 2) && a.stride[1] == s && a.dilation[0] == 1 &&
           a.dilation[1] == 1 && std::all_of(a.pad, a.pad + 4, [](int64_t p) { return p == 1; }) && y[3] % kSeg == 0 &&
           (s == 1 || (x[2] % 2 == 0 && x[3] % 2 == 0));
}

size_t conv3x3_scratch_per_thread(const Shape& x) { return whole_lines(size_t(x[1] * (x[2] + 2) * (x[3] + 2))); }

size_t conv3x3_wgrad_scratch_per_thread(const Shape& x) {
    return size_t(wgrad_chunk(x)) * conv3x3_scratch_per_thread(x);
}

void conv3x3_weight_grad(TensorView x, TensorView gy, float* gw, int64_t n0, int64_t n1, float* scratch) {
    const Geometry g = geometry(x.shape, Shape{gy.shape[1], x.shape[1], 3, 3}, gy.shape);
    const int64_t chunk = wgrad_chunk(x.shape), in_size = g.C * g.H * g.W;
    for (int64_t first = n0; first < n1; first += chunk) {
        const int64_t samples = std::min(chunk, n1 - first);
        for (int64_t i = 0; i < samples; ++i) pad(g, 1, x.data + (first + i) * in_size, scratch + i * g.C * g.plane);
        const float* gyc = gy.data + first * g.K * g.P;
        for (int64_t k0 = 0; k0 < g.K; k0 += 4) switch (std::min<int64_t>(4, g.K - k0)) {
                case 4:
                    wgrad_block<4>(g, scratch, gyc, samples, k0, gw);
                    break;
                case 3:
                    wgrad_block<3>(g, scratch, gyc, samples, k0, gw);
                    break;
                case 2:
                    wgrad_block<2>(g, scratch, gyc, samples, k0, gw);
                    break;
                default:
                    wgrad_block<1>(g, scratch, gyc, samples, k0, gw);
                    break;
            }
    }
}

void conv3x3_forward_sample(TensorView x, TensorView w, const float* bias, const float* residual, bool relu,
                            TensorView y, int64_t n, float* scratch) {
    const Geometry g = geometry(x.shape, w.shape, y.shape);
    const int stride = int(x.shape[3] / y.shape[3]);
    const int64_t out_size = g.K * g.P;
    pad(g, stride, x.data + n * g.C * g.H * g.W, scratch);
    sample(g, stride, scratch, w.data, bias, residual ? residual + n * out_size : nullptr, relu, y.data + n * out_size,
           0, blocks(g));
}

void conv3x3_forward(TensorView x, TensorView w, const float* bias, const float* residual, bool relu, TensorView y,
                     float* scratch, int threads) {
    const int64_t N = x.shape[0];
    const size_t per_thread = conv3x3_scratch_per_thread(x.shape);
    if (threads == 1) {
        for (int64_t n = 0; n < N; ++n) conv3x3_forward_sample(x, w, bias, residual, relu, y, n, scratch);
        return;
    }
    if (N >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t n = 0; n < N; ++n)
            conv3x3_forward_sample(x, w, bias, residual, relu, y, n, scratch + omp_get_thread_num() * per_thread);
        return;
    }
    // Too few samples to share out: one padded copy, channel blocks split across threads.
    const Geometry g = geometry(x.shape, w.shape, y.shape);
    const int stride = int(x.shape[3] / y.shape[3]);
    const int64_t in_size = g.C * g.H * g.W, out_size = g.K * g.P, nb = blocks(g);
    for (int64_t n = 0; n < N; ++n) {
        pad(g, stride, x.data + n * in_size, scratch);
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            sample(g, stride, scratch, w.data, bias, residual ? residual + n * out_size : nullptr, relu,
                   y.data + n * out_size, nb * t / nt, nb * (t + 1) / nt);
        }
    }
}

}  // namespace engine::native
