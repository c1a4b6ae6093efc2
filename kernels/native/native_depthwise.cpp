#include "native_depthwise.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "engine/aligned_vector.h"
#include "native_pad.h"
#include "native_simd.h"

namespace engine::native {

namespace {

// Depthwise convolution of one channel plane, direct loops.
void depthwise_plane(const Attrs& a, const ConvDims& d, const float* x, const float* w, float bias, float* y) {
    for (int64_t oh = 0; oh < d.OH; ++oh)
        for (int64_t ow = 0; ow < d.OW; ++ow) {
            float s = bias;
            for (int64_t kh = 0; kh < d.KH; ++kh) {
                const int64_t ih = oh * a.stride[0] - a.pad[0] + kh * a.dilation[0];
                if (ih < 0 || ih >= d.H) continue;
                for (int64_t kw = 0; kw < d.KW; ++kw) {
                    const int64_t iw = ow * a.stride[1] - a.pad[1] + kw * a.dilation[1];
                    if (iw >= 0 && iw < d.W) s += x[ih * d.W + iw] * w[kh * d.KW + kw];
                }
            }
            y[oh * d.OW + ow] = s;
        }
}

// One output plane y (+ the residual plane res, if given; then ReLU, if asked), with the epilogue
// applied to each vector before it is stored rather than in a second pass over y.
void depthwise3x3_plane(const ConvDims& d, int stride, const float* x, const float* w, float bias, const float* res,
                        bool relu, float* y, float* xp) {
    const int64_t Wp = d.W + 2, half = Wp / 2;
    pad_plane_for_stride(stride, x, d.H, d.W, xp);
    // Offset of tap (kh, kw) from output (oh, ow)'s window start, for each stride's layout.
    int64_t tap[9];
    for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) tap[kh * 3 + kw] = kh * Wp + (stride == 1 ? kw : (kw == 1 ? half : kw / 2));
    __m256 wv[9];
    for (int i = 0; i < 9; ++i) wv[i] = _mm256_broadcast_ss(w + i);
    const __m256 b = _mm256_set1_ps(bias);
    for (int64_t oh = 0; oh < d.OH; ++oh) {
        const float* win = xp + oh * stride * Wp;
        float* out = y + oh * d.OW;
        const float* r = res ? res + oh * d.OW : nullptr;
        int64_t ow = 0;
        for (; ow + 8 <= d.OW; ow += 8) {
            __m256 acc = b;
            for (int i = 0; i < 9; ++i) acc = _mm256_fmadd_ps(wv[i], _mm256_loadu_ps(win + ow + tap[i]), acc);
            store_epilogue(out + ow, acc, r ? r + ow : nullptr, relu);
        }
        for (; ow + 4 <= d.OW; ow += 4) {  // 4x4 outputs (MobileNet's late layers)
            __m128 acc = _mm256_castps256_ps128(b);
            for (int i = 0; i < 9; ++i)
                acc = _mm_fmadd_ps(_mm256_castps256_ps128(wv[i]), _mm_loadu_ps(win + ow + tap[i]), acc);
            if (r) acc = _mm_add_ps(acc, _mm_loadu_ps(r + ow));
            if (relu) acc = _mm_max_ps(acc, _mm_setzero_ps());
            _mm_storeu_ps(out + ow, acc);
        }
        for (; ow < d.OW; ++ow) {
            float acc = bias;
            for (int i = 0; i < 9; ++i) acc += w[i] * win[ow + tap[i]];
            if (r) acc += r[ow];
            out[ow] = relu && !(acc > 0.0f) ? 0.0f : acc;
        }
    }
}

}  // namespace

// Depthwise 3x3, padding 1, stride 1 or 2 (even sizes). The plane kernel above copies the plane once
// into a zero-bordered buffer (native_pad.h) so that eight outputs take nine unconditional 8-wide loads
// and FMAs; at stride 1, small planes and rows of 8-32 pixels have kernels of their own that read the
// plane itself (native_depthwise_small.cpp, native_depthwise_rows.cpp).
bool depthwise3x3_fits(const Attrs& a, const ConvDims& d) {
    const int64_t s = a.stride[0];
    return d.KH == 3 && d.KW == 3 && (s == 1 || s == 2) && a.stride[1] == s && a.dilation[0] == 1 &&
           a.dilation[1] == 1 && std::all_of(a.pad, a.pad + 4, [](int64_t p) { return p == 1; }) &&
           (s == 1 || (d.H % 2 == 0 && d.W % 2 == 0));
}

bool conv_is_depthwise(const Attrs& a, const Shape& w) { return a.groups > 1 && w[1] == 1 && w[0] == a.groups; }

// Which AVX-512 kernel takes a convolution: small planes, rows, or neither.
Avx512Depthwise avx512_depthwise_of(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    if (x.rank != 4 || w.rank != 4 || y.rank != 4 || !conv_is_depthwise(a, w) || x[1] != w[0])
        return Avx512Depthwise::none;
    const ConvDims d = conv_dims(a, x, w, y);
    const int64_t s = a.stride[0], pixels = d.OH * d.OW;
    if (!depthwise3x3_fits(a, d) || d.H != s * d.OH || d.W != s * d.OW) return Avx512Depthwise::none;
    if ((pixels == 4 || pixels == 8 || pixels == 16) && d.K % (16 / pixels) == 0) return Avx512Depthwise::small;
    if (d.OW == 8 || d.OW == 16 || d.OW == 32) return Avx512Depthwise::rows;
    return Avx512Depthwise::none;
}

bool depthwise_avx512_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    return avx512_depthwise_of(a, x, w, y) != Avx512Depthwise::none;
}

void depthwise_forward_avx512(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                              TensorView y, int threads) {
    if (avx512_depthwise_of(a, x.shape, w.shape, y.shape) == Avx512Depthwise::small)
        depthwise_small_forward_avx512(a, x, w, bias, residual, y, threads);
    else
        depthwise_rows_forward_avx512(a, x, w, bias, residual, y, threads);
}

size_t depthwise_scratch_per_thread(const Attrs& a, const ConvDims& d) {
    return depthwise3x3_fits(a, d) ? whole_lines(size_t((d.H + 2) * (d.W + 2))) : 0;
}

DepthwisePlane depthwise_plane_of(const Attrs& a, const ConvDims& d) {
    return {d.H,         d.W,         d.OH,     d.OW,     d.KH,          d.KW,
            a.stride[0], a.stride[1], a.pad[0], a.pad[1], a.dilation[0], a.dilation[1]};
}

void depthwise_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                       TensorView y, float* scratch, int threads) {
    const ConvDims d = conv_dims(a, x.shape, w.shape, y.shape);
    const size_t per_thread = depthwise_scratch_per_thread(a, d);
    if (depthwise_small_fits(a, d)) return depthwise_small_forward(a, x, w, bias, residual, y, threads);
    if (depthwise_rows_fits(a, d)) return depthwise_rows_forward(a, x, w, bias, residual, y, threads);
    const bool fast = depthwise3x3_fits(a, d);
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < d.N; ++n)
        for (int64_t k = 0; k < d.K; ++k) {
            const float* xk = x.data + (n * d.C + k) * d.H * d.W;
            float* yk = y.data + (n * d.K + k) * d.P;
            const float bk = bias ? bias[k] : 0.0f;
            if (fast) {
                depthwise3x3_plane(d, int(a.stride[0]), xk, w.data + k * 9, bk,
                                   residual ? residual + (n * d.K + k) * d.P : nullptr, a.fused_relu, yk,
                                   scratch + omp_get_thread_num() * per_thread);
                continue;
            }
            depthwise_plane(a, d, xk, w.data + k * d.KH * d.KW, bk, yk);
            conv_epilogue(residual, a.fused_relu, y.data, (n * d.K + k) * d.P, 1, d.P, d.P);
        }
}

}  // namespace engine::native
