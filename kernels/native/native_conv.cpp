#include "native_conv.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "native_conv3x3.h"
#include "native_depthwise_backward.h"
#include "native_gemm.h"
#include "native_pad.h"
#include "native_pointwise_backward.h"
#include "native_winograd.h"

namespace engine::native {

namespace {

struct ConvDims {
    int64_t N, C, H, W, K, Cg, KH, KW, OH, OW, Kg, P, CKK;
};

ConvDims dims(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    ConvDims d{x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], y[2], y[3], 0, 0, 0};
    d.Kg = d.K / a.groups;
    d.P = d.OH * d.OW;
    d.CKK = d.Cg * d.KH * d.KW;
    return d;
}

bool is_pointwise(const Attrs& a, const ConvDims& d) {
    return d.KH == 1 && d.KW == 1 && a.stride[0] == 1 && a.stride[1] == 1 && a.pad[0] == 0 && a.pad[1] == 0 &&
           a.pad[2] == 0 && a.pad[3] == 0;
}

// Output columns [lo, hi) whose input column ow*stride - pad + offset lies inside [0, W).
void valid_columns(int64_t OW, int64_t W, int64_t stride, int64_t start, int64_t& lo, int64_t& hi) {
    lo = start >= 0 ? 0 : (-start + stride - 1) / stride;
    hi = start >= W ? 0 : std::min(OW, (W - 1 - start) / stride + 1);
    if (hi < lo) hi = lo;
}

// col[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][ih][iw], zero where the window reads padding.
void im2col(const Attrs& a, const ConvDims& d, const float* x, float* col) {
    const int64_t sw = a.stride[1];
    for (int64_t c = 0; c < d.Cg; ++c)
        for (int64_t kh = 0; kh < d.KH; ++kh)
            for (int64_t kw = 0; kw < d.KW; ++kw) {
                float* row = col + ((c * d.KH + kh) * d.KW + kw) * d.P;
                const float* xc = x + c * d.H * d.W;
                const int64_t start = kw * a.dilation[1] - a.pad[1];
                int64_t lo, hi;
                valid_columns(d.OW, d.W, sw, start, lo, hi);
                for (int64_t oh = 0; oh < d.OH; ++oh) {
                    const int64_t ih = oh * a.stride[0] - a.pad[0] + kh * a.dilation[0];
                    float* out = row + oh * d.OW;
                    if (ih < 0 || ih >= d.H) {
                        std::fill(out, out + d.OW, 0.0f);
                        continue;
                    }
                    const float* src = xc + ih * d.W + start;
                    std::fill(out, out + lo, 0.0f);
                    if (sw == 1) std::memcpy(out + lo, src + lo, sizeof(float) * (hi - lo));
                    else
                        for (int64_t ow = lo; ow < hi; ++ow) out[ow] = src[ow * sw];
                    std::fill(out + hi, out + d.OW, 0.0f);
                }
            }
}

// The adjoint of im2col: adds every column entry back to the input element it came from.
void col2im_add(const Attrs& a, const ConvDims& d, const float* col, float* gx) {
    const int64_t sw = a.stride[1];
    for (int64_t c = 0; c < d.Cg; ++c)
        for (int64_t kh = 0; kh < d.KH; ++kh)
            for (int64_t kw = 0; kw < d.KW; ++kw) {
                const float* row = col + ((c * d.KH + kh) * d.KW + kw) * d.P;
                float* gc = gx + c * d.H * d.W;
                const int64_t start = kw * a.dilation[1] - a.pad[1];
                int64_t lo, hi;
                valid_columns(d.OW, d.W, sw, start, lo, hi);
                for (int64_t oh = 0; oh < d.OH; ++oh) {
                    const int64_t ih = oh * a.stride[0] - a.pad[0] + kh * a.dilation[0];
                    if (ih < 0 || ih >= d.H) continue;
                    float* dst = gc + ih * d.W + start;
                    const float* src = row + oh * d.OW;
                    for (int64_t ow = lo; ow < hi; ++ow) dst[ow * sw] += src[ow];
                }
            }
}

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

// Depthwise 3x3, padding 1, stride 1 or 2 (even sizes): the plane is copied once into a
// zero-bordered buffer (native_pad.h) so that eight outputs take nine unconditional 8-wide loads and FMAs.
bool depthwise3x3_fits(const Attrs& a, const ConvDims& d) {
    const int64_t s = a.stride[0];
    return d.KH == 3 && d.KW == 3 && (s == 1 || s == 2) && a.stride[1] == s && a.dilation[0] == 1 &&
           a.dilation[1] == 1 && std::all_of(a.pad, a.pad + 4, [](int64_t p) { return p == 1; }) &&
           (s == 1 || (d.H % 2 == 0 && d.W % 2 == 0));
}

size_t depthwise3x3_scratch(const ConvDims& d) { return size_t((d.H + 2) * (d.W + 2)); }

// One output plane y (+ the residual plane res, if given; then ReLU, if asked), with the epilogue
// applied to each vector before it is stored rather than in a second pass over y.
void depthwise3x3_plane(const ConvDims& d, int stride, const float* x, const float* w, float bias, const float* res,
                        bool relu, float* y, float* xp) {
    const int64_t Wp = d.W + 2, half = Wp / 2;
    pad_plane_for_stride(stride, x, d.H, d.W, xp);
    // Offset of tap (kh, kw) from output (oh, ow)'s window start, for each stride's layout.
    int64_t tap[9];
    for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw)
            tap[kh * 3 + kw] = kh * Wp + (stride == 1 ? kw : (kw == 1 ? half : kw / 2));
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
            if (r) acc = _mm256_add_ps(acc, _mm256_loadu_ps(r + ow));
            if (relu) acc = _mm256_max_ps(acc, _mm256_setzero_ps());
            _mm256_storeu_ps(out + ow, acc);
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

// Rows [k0, k1) of y (row k at y + k * ld, `cols` elements) set to bias[k], or zero: where a GEMM
// then accumulates the product.
void start_rows(float* y, const float* bias, int64_t k0, int64_t k1, int64_t cols, int64_t ld) {
    for (int64_t k = k0; k < k1; ++k) std::fill(y + k * ld, y + k * ld + cols, bias ? bias[k] : 0.0f);
}

// y = relu?(y + residual?) in place over `rows` rows of `cols` elements, `ld` apart, from element
// `at` of y and of residual (which has y's layout), for the paths whose kernels have no epilogue of
// their own. They call it on the block they have just written, while it is still in cache.
void epilogue(const float* residual, bool relu, float* y, int64_t at, int64_t rows, int64_t cols, int64_t ld) {
    if (!residual && !relu) return;
    for (int64_t r = 0; r < rows; ++r) {
        float* __restrict out = y + at + r * ld;
        if (residual) {
            const float* __restrict add = residual + at + r * ld;
            for (int64_t i = 0; i < cols; ++i) out[i] += add[i];
        }
        if (relu)
            for (int64_t i = 0; i < cols; ++i) out[i] = out[i] > 0.0f ? out[i] : 0.0f;
    }
}

DepthwisePlane depthwise_plane_of(const Attrs& a, const ConvDims& d) {
    return {d.H, d.W, d.OH, d.OW, d.KH, d.KW, a.stride[0], a.stride[1], a.pad[0], a.pad[1], a.dilation[0], a.dilation[1]};
}

}  // namespace

bool conv_is_depthwise(const Attrs& a, const Shape& w) { return a.groups > 1 && w[1] == 1 && w[0] == a.groups; }

namespace {

// Stride-1 3x3 convolutions whose width the direct kernel takes: their input gradient is the
// direct convolution of the output gradient with the flipped, transposed weights; the weight
// gradient of the same convolutions has a direct kernel too (conv3x3_weight_grad).
bool direct_input_grad(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    return a.stride[0] == 1 && conv3x3_fits(a, x, w, y);
}

// wt[c][k][2 - kh][2 - kw] = w[k][c][kh][kw]
void flip_transpose_3x3(TensorView w, float* wt) {
    const int64_t K = w.shape[0], C = w.shape[1];
    for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < C; ++c)
            for (int i = 0; i < 9; ++i) wt[(c * K + k) * 9 + 8 - i] = w.data[(k * C + c) * 9 + i];
}

// The input gradient's convolution: of the output gradient with the flipped, transposed weights.
Attrs input_grad_attrs() {
    Attrs a;
    a.stride[0] = a.stride[1] = 1;
    std::fill(a.pad, a.pad + 4, int64_t(1));
    return a;
}

// The Winograd plan for the input gradient, a stride-1 convolution of the output gradient.
WinogradPlan winograd_input_grad(const Shape& x, const Shape& w, const Shape& y) {
    return winograd_plan(input_grad_attrs(), y, Shape{w[1], w[0], 3, 3}, x);
}

// One thread's backward scratch, in this order: im2col of x (or padded samples of the direct weight
// gradient), the column gradient (or the direct or Winograd input gradient's working space),
// private weight and bias gradients, flipped weights, their Winograd transform.
struct BackwardScratch {
    size_t col, gcol, gw, wt, u, total;
};

BackwardScratch backward_scratch(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    const ConvDims d = dims(a, x, w, y);
    const size_t gradients = size_t(d.K * d.CKK + d.K);
    if (a.groups == 1 && is_pointwise(a, d)) {
        const size_t col = pointwise_backward_scratch(x, w);
        return {col, 0, gradients, 0, 0, col + gradients};
    }
    size_t col = size_t(d.CKK * d.P);
    if (conv3x3_fits(a, x, w, y)) col = std::max(col, conv3x3_scratch_per_thread(x));
    BackwardScratch s{col, col, gradients, 0, 0, 0};
    if (direct_input_grad(a, x, w, y)) {
        s.col = std::max(s.col, conv3x3_wgrad_scratch_per_thread(x));
        s.gcol = std::max(s.gcol, conv3x3_scratch_per_thread(y));
        s.wt = size_t(w.numel());
        if (const WinogradPlan plan = winograd_input_grad(x, w, y)) {
            const Shape wt{w[1], w[0], 3, 3};
            s.gcol = std::max(s.gcol, winograd_scratch(plan, y, wt, 1));
            s.u = winograd_weights_floats(plan, y, wt);
        }
    }
    s.total = s.col + s.gcol + s.gw + s.wt + s.u;
    return s;
}

}  // namespace

size_t conv_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, bool backward) {
    ConvDims d = dims(a, x, w, y);
    if (conv_is_depthwise(a, w)) {
        const size_t plane = depthwise3x3_fits(a, d) ? depthwise3x3_scratch(d) : 0;
        // Backward: private weight and bias gradients, then the planes of the plane kernel.
        const size_t gradients = size_t(d.K * d.KH * d.KW + d.K) + depthwise_backward_scratch(depthwise_plane_of(a, d));
        return backward ? std::max(plane, gradients) : plane;
    }
    if (backward) return backward_scratch(a, x, w, y).total;
    size_t col = size_t(d.CKK * d.P);
    if (conv3x3_fits(a, x, w, y)) col = std::max(col, conv3x3_scratch_per_thread(x));
    return col;
}

bool conv_gemm_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    return a.groups == 1 && !conv3x3_fits(a, x, w, y);
}

namespace {

bool gemm_narrow(const Shape& y) { return y[2] * y[3] <= kNarrowColumns; }

}  // namespace

size_t conv_gemm_packed_floats(const Shape& w, const Shape& y) {
    const int64_t K = w[0], CKK = w[1] * w[2] * w[3];
    return gemm_narrow(y) ? packed_a_rows_floats(K, CKK) : packed_a_floats(K, CKK);
}

void conv_gemm_pack(TensorView w, const Shape& y, float* out) {
    const int64_t K = w.shape[0], CKK = w.shape[1] * w.shape[2] * w.shape[3];
    if (gemm_narrow(y)) pack_a_rows(K, CKK, w.data, CKK, out);
    else pack_a_whole(K, CKK, w.data, CKK, out);
}

size_t conv_gemm_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    const ConvDims d = dims(a, x, w, y);
    return is_pointwise(a, d) ? 0 : size_t(d.CKK * d.P);
}

void conv_gemm_forward(const Attrs& a, TensorView x, const float* packed_w, const Shape& w, const float* bias,
                       const float* residual, TensorView y, float* scratch, int threads) {
    const ConvDims d = dims(a, x.shape, w, y.shape);
    const bool pointwise = is_pointwise(a, d);
    const size_t col_floats = conv_gemm_scratch_per_thread(a, x.shape, w, y.shape);
    // The product's right-hand side for sample n: the input itself (1x1), or its column matrix.
    auto operand = [&](int64_t n, float* col) -> const float* {
        const float* xn = x.data + n * d.C * d.H * d.W;
        if (pointwise) return xn;
        im2col(a, d, xn, col);
        return col;
    };
    if (gemm_narrow(y.shape)) {
        // Threads share out (sample, row panel) pairs, in contiguous runs: each writes its own rows
        // of y, and builds a sample's column matrix once for its run of that sample's panels.
        const int64_t panels = narrow_panels(d.K), jobs = d.N * panels;
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            float* col = scratch + t * col_floats;
            const float* B = nullptr;
            for (int64_t job = jobs * t / nt, have = -1; job < jobs * (t + 1) / nt; ++job) {
                const int64_t n = job / panels, panel = job % panels;
                if (n != have) B = operand(n, col), have = n;
                float* yn = y.data + n * d.K * d.P;
                const int64_t k0 = panel * kNarrowRows, k1 = std::min(d.K, k0 + kNarrowRows);
                start_rows(yn, bias, k0, k1, d.P, d.P);
                gemm_packed_narrow(d.K, d.P, d.CKK, packed_w, B, d.P, yn, d.P, panel, panel + 1);
                epilogue(residual, a.fused_relu, y.data, (n * d.K + k0) * d.P, k1 - k0, d.P, d.P);
            }
        }
        return;
    }
    // Rows [k0, k1) and columns [p0, p1) of sample n's output: bias, then += W B.
    auto block = [&](int64_t n, const float* B, int64_t k0, int64_t k1, int64_t p0, int64_t p1) {
        float* yn = y.data + n * d.K * d.P;
        start_rows(yn + p0, bias, k0, k1, p1 - p0, d.P);
        gemm_packed_nn(d.K, p1 - p0, d.CKK, packed_w, B + p0, d.P, yn + p0, d.P, k0, k1);
        epilogue(residual, a.fused_relu, y.data, (n * d.K + k0) * d.P + p0, k1 - k0, p1 - p0, d.P);
    };
    if (d.N >= threads || threads == 1) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t n = 0; n < d.N; ++n)
            block(n, operand(n, scratch + omp_get_thread_num() * col_floats), 0, d.K, 0, d.P);
        return;
    }
    // Too few samples to share out: split each product between the threads, by its larger side:
    // output channels (each thread reads its share of the weights) where the weights outnumber the
    // columns, else pixels. Either way each thread builds the whole column matrix.
    const bool by_rows = d.K >= d.P;
    const int64_t row_steps = (d.K + kPackedRowStep - 1) / kPackedRowStep;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float* col = scratch + t * col_floats;
        for (int64_t n = 0; n < d.N; ++n) {
            const float* B = operand(n, col);
            if (by_rows)
                block(n, B, std::min(d.K, kPackedRowStep * (row_steps * t / nt)),
                      std::min(d.K, kPackedRowStep * (row_steps * (t + 1) / nt)), 0, d.P);
            else
                block(n, B, 0, d.K, d.P * t / nt, d.P * (t + 1) / nt);
        }
    }
}

void conv_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual, TensorView y,
                  float* scratch, int threads) {
    if (conv3x3_fits(a, x.shape, w.shape, y.shape))
        return conv3x3_forward(x, w, bias, residual, a.fused_relu, y, scratch, threads);
    const ConvDims d = dims(a, x.shape, w.shape, y.shape);
    const size_t per_thread = conv_scratch_per_thread(a, x.shape, w.shape, y.shape, false);
    if (conv_is_depthwise(a, w.shape)) {
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
                epilogue(residual, a.fused_relu, y.data, (n * d.K + k) * d.P, 1, d.P, d.P);
            }
        return;
    }
    const bool pointwise = is_pointwise(a, d);
    auto one_sample = [&](int64_t n, float* col, int64_t row_begin, int64_t row_end) {
        for (int64_t g = 0; g < a.groups; ++g) {
            const float* xg = x.data + (n * d.C + g * d.Cg) * d.H * d.W;
            const float* B = xg;
            if (!pointwise) {
                im2col(a, d, xg, col);
                B = col;
            }
            float* yg = y.data + (n * d.K + g * d.Kg) * d.P;
            start_rows(yg, bias ? bias + g * d.Kg : nullptr, row_begin, row_end, d.P, d.P);
            gemm_nn(row_end - row_begin, d.P, d.CKK, w.data + (g * d.Kg + row_begin) * d.CKK, d.CKK, B, d.P,
                    yg + row_begin * d.P, d.P);
            epilogue(residual, a.fused_relu, y.data, (n * d.K + g * d.Kg + row_begin) * d.P, row_end - row_begin, d.P,
                     d.P);
        }
    };
    if (d.N >= threads || threads == 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t n = 0; n < d.N; ++n) one_sample(n, scratch + omp_get_thread_num() * per_thread, 0, d.Kg);
    } else {
        // Too few samples to share out: split the output channels instead (each thread redoes im2col,
        // which is cheap next to the product).
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const int64_t begin = d.Kg * t / nt, end = d.Kg * (t + 1) / nt;
            for (int64_t n = 0; n < d.N; ++n)
                if (begin < end) one_sample(n, scratch + t * per_thread, begin, end);
        }
    }
}

void conv_backward(const Attrs& a, TensorView x, TensorView w, TensorView gy, TensorView gx, TensorView gw,
                   float* gbias, float* scratch, int threads) {
    const ConvDims d = dims(a, x.shape, w.shape, gy.shape);
    const size_t per_thread = conv_scratch_per_thread(a, x.shape, w.shape, gy.shape, true);
    const bool depthwise = conv_is_depthwise(a, w.shape);
    const bool pointwise = is_pointwise(a, d);
    const bool pointwise_samples = pointwise && a.groups == 1;  // a whole range of samples at once
    const bool direct = direct_input_grad(a, x.shape, w.shape, gy.shape);
    const bool direct_gx = gx.data && direct, direct_gw = gw.data && direct;
    const WinogradPlan winograd_gx = direct_gx ? winograd_input_grad(x.shape, w.shape, gy.shape) : WinogradPlan{};
    const BackwardScratch layout = depthwise ? BackwardScratch{} : backward_scratch(a, x.shape, w.shape, gy.shape);
    const int64_t wsize = w.numel();
    int used = 1;
    // Each thread accumulates weight gradients privately; they are summed in thread order at
    // the end, so results are identical for the same thread count.
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        if (t == 0) used = omp_get_num_threads();
        float* mine = scratch + t * per_thread;
        float* gw_t = mine + layout.col + layout.gcol;
        float* gb_t = gw_t + wsize;
        float* wt = gb_t + d.K;  // flipped weights, one copy per thread; depthwise: the plane kernel's scratch
        float* u = wt + layout.wt;  // their Winograd transform
        std::fill(gw_t, gw_t + wsize + d.K, 0.0f);
        const Shape wt_shape{d.C, d.K, 3, 3};
        if (direct_gx) flip_transpose_3x3(w, wt);
        if (winograd_gx) winograd_weights(winograd_gx, gy.shape, TensorView{wt, wt_shape}, u);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < d.N; ++n) {
            if (depthwise) {
                const DepthwisePlane plane = depthwise_plane_of(a, d);
                for (int64_t k = 0; k < d.K; ++k) {
                    const float* gyk = gy.data + (n * d.K + k) * d.P;
                    depthwise_plane_backward(plane, x.data + (n * d.C + k) * d.H * d.W, w.data + k * d.KH * d.KW, gyk,
                                             gx.data ? gx.data + (n * d.C + k) * d.H * d.W : nullptr,
                                             gw.data ? gw_t + k * d.KH * d.KW : nullptr, wt);
                    if (gbias)
                        for (int64_t p = 0; p < d.P; ++p) gb_t[k] += gyk[p];
                }
                continue;
            }
            if (pointwise_samples) continue;
            float* col = mine;
            float* gcol = mine + layout.col;
            // gx[n] += conv(gy[n], wt): the kernels' residual epilogue reads gx[n], then writes it.
            if (winograd_gx) winograd_forward_sample(winograd_gx, gy, n, u, wt_shape, nullptr, gx.data, false, gx, gcol);
            else if (direct_gx) conv3x3_forward_sample(gy, TensorView{wt, wt_shape}, nullptr, gx.data, false, gx, n, gcol);
            for (int64_t g = 0; g < a.groups; ++g) {
                const float* xg = x.data + (n * d.C + g * d.Cg) * d.H * d.W;
                const float* gyg = gy.data + (n * d.K + g * d.Kg) * d.P;
                const float* wg = w.data + g * d.Kg * d.CKK;
                if (gw.data && !direct_gw) {
                    const float* B = xg;
                    if (!pointwise) {
                        im2col(a, d, xg, col);
                        B = col;
                    }
                    gemm_nt(d.Kg, d.CKK, d.P, gyg, d.P, B, d.P, gw_t + g * d.Kg * d.CKK, d.CKK);
                }
                if (gbias)
                    for (int64_t k = 0; k < d.Kg; ++k)
                        for (int64_t p = 0; p < d.P; ++p) gb_t[g * d.Kg + k] += gyg[k * d.P + p];
                if (gx.data && !direct_gx) {
                    float* gxg = gx.data + (n * d.C + g * d.Cg) * d.H * d.W;
                    if (pointwise) {  // the column matrix is the input itself
                        gemm_tn(d.CKK, d.P, d.Kg, wg, d.CKK, gyg, d.P, gxg, d.P);
                        continue;
                    }
                    std::fill(gcol, gcol + d.CKK * d.P, 0.0f);
                    gemm_tn(d.CKK, d.P, d.Kg, wg, d.CKK, gyg, d.P, gcol, d.P);
                    col2im_add(a, d, gcol, gxg);
                }
            }
        }
        // This thread's share of the samples, as a contiguous range.
        const int nt = omp_get_num_threads();
        const int64_t n_begin = d.N * t / nt, n_end = d.N * (t + 1) / nt;
        if (direct_gw) conv3x3_weight_grad(x, gy, gw_t, n_begin, n_end, mine);
        if (pointwise_samples)
            pointwise_backward(x, w, gy, gx, gw.data ? gw_t : nullptr, gbias ? gb_t : nullptr, n_begin, n_end, mine);
    }
    for (int t = 0; t < used; ++t) {
        const float* gw_t = scratch + t * per_thread + layout.col + layout.gcol;
        if (gw.data)
            for (int64_t i = 0; i < wsize; ++i) gw[i] += gw_t[i];
        if (gbias)
            for (int64_t k = 0; k < d.K; ++k) gbias[k] += gw_t[wsize + k];
    }
}

}  // namespace engine::native
