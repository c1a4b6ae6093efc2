#include "native_conv_backward.h"

#include <omp.h>

#include <algorithm>

#include "engine/aligned_vector.h"
#include "native_conv.h"
#include "native_conv3x3.h"
#include "native_conv_dims.h"
#include "native_depthwise.h"
#include "native_gemm.h"
#include "native_im2col.h"
#include "native_pointwise_backward.h"
#include "native_winograd.h"
#include "native_winograd_wgrad.h"

namespace engine::native {

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

// The Winograd plan for the input gradient, a stride-1 convolution of the output gradient: the
// fixed rule's tiles, with AVX-512 products where isa allows them.
WinogradPlan winograd_input_grad(const Shape& x, const Shape& w, const Shape& y, Isa isa) {
    const Attrs a = input_grad_attrs();
    const Shape wt{w[1], w[0], 3, 3};
    const WinogradPlan plan = winograd_plan(a, y, wt, x);
    if (plan && isa == Isa::avx512)
        if (const WinogradPlan wide = winograd_plan_for(plan.m, plan.over_channels, true, a, y, wt, x)) return wide;
    return plan;
}

// The backward's scratch: first what all threads share, the flipped weights and their Winograd
// transform (wt, u: made once); then each thread's, in this order: im2col of x (or padded samples of
// the direct weight gradient), the column gradient (or the direct or Winograd input gradient's
// working space), private weight and bias gradients. Each in whole lines (line_aligned).
struct BackwardScratch {
    size_t col, gcol, gw, wt, u;
    BackwardScratch line_aligned() const {
        return {whole_lines(col), whole_lines(gcol), whole_lines(gw), whole_lines(wt), whole_lines(u)};
    }
    size_t per_thread() const { return col + gcol + gw; }
    size_t shared() const { return wt + u; }
};

BackwardScratch backward_scratch(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, Isa isa) {
    const ConvDims d = conv_dims(a, x, w, y);
    const size_t gradients = size_t(d.K * d.CKK + d.K);
    if (a.groups == 1 && conv_is_pointwise(a, d)) {
        return BackwardScratch{pointwise_backward_scratch(x, w), 0, gradients, 0, 0}.line_aligned();
    }
    size_t col = size_t(d.CKK * d.P);
    if (conv3x3_fits(a, x, w, y)) col = std::max(col, conv3x3_scratch_per_thread(x));
    BackwardScratch s{col, col, gradients, 0, 0};
    if (direct_input_grad(a, x, w, y)) {
        s.col = std::max(s.col, winograd_wgrad_fits(x, w, y) ? winograd_wgrad_scratch_per_thread(x, w)
                                                             : conv3x3_wgrad_scratch_per_thread(x));
        s.gcol = std::max(s.gcol, conv3x3_scratch_per_thread(y));
        s.wt = size_t(w.numel());
        if (const WinogradPlan plan = winograd_input_grad(x, w, y, isa)) {
            const Shape wt{w[1], w[0], 3, 3};
            s.gcol = std::max(s.gcol, winograd_scratch(plan, y, wt, 1));
            s.u = winograd_weights_floats(plan, y, wt);
        }
    }
    return s.line_aligned();
}

// One thread's part of the scratch, at least the forward's (the same buffer serves both).
size_t per_thread_floats(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, const BackwardScratch& s) {
    const size_t forward = conv_scratch_per_thread(a, x, w, y);
    if (!conv_is_depthwise(a, w)) return whole_lines(std::max(forward, s.per_thread()));
    // Private weight and bias gradients, then the planes of the plane kernel.
    const ConvDims d = conv_dims(a, x, w, y);
    return whole_lines(
        std::max(forward, size_t(d.K * d.KH * d.KW + d.K) + depthwise_backward_scratch(depthwise_plane_of(a, d))));
}

}  // namespace

size_t conv_backward_scratch(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, Isa isa, int threads) {
    const BackwardScratch s = conv_is_depthwise(a, w) ? BackwardScratch{} : backward_scratch(a, x, w, y, isa);
    return s.shared() + size_t(std::max(threads, 1)) * per_thread_floats(a, x, w, y, s);
}

void conv_backward(const Attrs& a, TensorView x, TensorView w, TensorView gy, TensorView gx, bool gx_fresh,
                   TensorView gw, float* gbias, float* scratch, Isa isa, int threads) {
    const ConvDims d = conv_dims(a, x.shape, w.shape, gy.shape);
    const bool depthwise = conv_is_depthwise(a, w.shape);
    // Small depthwise planes on AVX-512: each thread its contiguous range of samples, after the loop.
    const bool depthwise_lanes =
        depthwise && isa == Isa::avx512 && avx512_depthwise_of(a, x.shape, w.shape, gy.shape) == Avx512Depthwise::small;
    const bool pointwise = conv_is_pointwise(a, d);
    const bool pointwise_samples = pointwise && a.groups == 1;  // a whole range of samples at once
    const bool direct = direct_input_grad(a, x.shape, w.shape, gy.shape);
    const bool direct_gx = gx.data && direct, direct_gw = gw.data && direct;
    const bool winograd_gw = direct_gw && winograd_wgrad_fits(x.shape, w.shape, gy.shape);
    const WinogradPlan winograd_gx = direct_gx ? winograd_input_grad(x.shape, w.shape, gy.shape, isa) : WinogradPlan{};
    const BackwardScratch layout =
        depthwise ? BackwardScratch{} : backward_scratch(a, x.shape, w.shape, gy.shape, isa);
    const size_t per_thread = per_thread_floats(a, x.shape, w.shape, gy.shape, layout);
    float* const wt = scratch;  // the flipped weights and their Winograd transform, shared
    float* const u = wt + layout.wt;
    float* const threads_scratch = scratch + layout.shared();
    const int64_t wsize = w.numel();
    // The flipped weights and their transform, shared by the threads' input gradients.
    const Shape wt_shape{d.C, d.K, 3, 3};
    if (direct_gx) flip_transpose_3x3(w, wt);
    if (winograd_gx) winograd_weights(winograd_gx, gy.shape, TensorView{wt, wt_shape}, u, threads);
    int used = 1;
    // Each thread accumulates weight gradients privately; they are summed in thread order at
    // the end, so results are identical for the same thread count.
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        if (t == 0) used = omp_get_num_threads();
        float* mine = threads_scratch + t * per_thread;
        float* gw_t = mine + layout.col + layout.gcol;
        float* gb_t = gw_t + wsize;
        float* plane_scratch = gb_t + d.K;  // depthwise: the plane kernel's
        std::fill(gw_t, gw_t + wsize + d.K, 0.0f);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < d.N; ++n) {
            if (depthwise_lanes) continue;  // after the loop: it writes or adds to gx itself
            // The direct input gradient (Winograd or not) writes a fresh gx; every other path adds to it.
            if (gx.data && gx_fresh && !direct_gx)
                std::fill(gx.data + n * d.C * d.H * d.W, gx.data + (n + 1) * d.C * d.H * d.W, 0.0f);
            if (depthwise) {
                const DepthwisePlane plane = depthwise_plane_of(a, d);
                for (int64_t k = 0; k < d.K; ++k) {
                    const float* gyk = gy.data + (n * d.K + k) * d.P;
                    depthwise_plane_backward(plane, x.data + (n * d.C + k) * d.H * d.W, w.data + k * d.KH * d.KW, gyk,
                                             gx.data ? gx.data + (n * d.C + k) * d.H * d.W : nullptr,
                                             gw.data ? gw_t + k * d.KH * d.KW : nullptr, plane_scratch);
                    if (gbias)
                        for (int64_t p = 0; p < d.P; ++p) gb_t[k] += gyk[p];
                }
                continue;
            }
            if (pointwise_samples) continue;
            float* col = mine;
            float* gcol = mine + layout.col;
            // gx[n] += conv(gy[n], wt): the kernels' residual epilogue reads gx[n], then writes it.
            const float* gx_before = gx_fresh ? nullptr : gx.data;
            if (winograd_gx)
                winograd_forward_sample(winograd_gx, gy, n, u, wt_shape, nullptr, gx_before, false, gx, gcol);
            else if (direct_gx)
                conv3x3_forward_sample(gy, TensorView{wt, wt_shape}, nullptr, gx_before, false, gx, n, gcol);
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
        if (winograd_gw)
            winograd_weight_grad(x, gy, gw_t, n_begin, n_end, mine, isa);
        else if (direct_gw)
            conv3x3_weight_grad(x, gy, gw_t, n_begin, n_end, mine);
        if (pointwise_samples)
            pointwise_backward(x, w, gy, gx, gw.data ? gw_t : nullptr, gbias ? gb_t : nullptr, n_begin, n_end, mine);
        if (depthwise_lanes)
            depthwise_small_backward_avx512(a, x, w, gy, gx.data, gx_fresh, gw.data ? gw_t : nullptr,
                                            gbias ? gb_t : nullptr, n_begin, n_end);
    }
    for (int t = 0; t < used; ++t) {
        const float* gw_t = threads_scratch + t * per_thread + layout.col + layout.gcol;
        if (gw.data)
            for (int64_t i = 0; i < wsize; ++i) gw[i] += gw_t[i];
        if (gbias)
            for (int64_t k = 0; k < d.K; ++k) gbias[k] += gw_t[wsize + k];
    }
}

}  // namespace engine::native
