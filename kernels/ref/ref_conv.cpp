#include "ref_kernels.h"

namespace engine::ref {

// Visits every (output element, weight tap) pair that reads a real (non-padded) input element.
template <typename Visit>
static void for_each_tap(const Attrs& a, const Shape& xs, const Shape& ws, const Shape& ys, Visit visit) {
    const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
    const int64_t K = ws[0], Cg = ws[1], KH = ws[2], KW = ws[3];
    const int64_t OH = ys[2], OW = ys[3], Kg = K / a.groups;
    for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
            int64_t g = k / Kg;
            for (int64_t oh = 0; oh < OH; ++oh)
                for (int64_t ow = 0; ow < OW; ++ow) {
                    int64_t yi = ((n * K + k) * OH + oh) * OW + ow;
                    for (int64_t c = 0; c < Cg; ++c)
                        for (int64_t kh = 0; kh < KH; ++kh) {
                            int64_t ih = oh * a.stride[0] - a.pad[0] + kh * a.dilation[0];
                            if (ih < 0 || ih >= H) continue;
                            for (int64_t kw = 0; kw < KW; ++kw) {
                                int64_t iw = ow * a.stride[1] - a.pad[1] + kw * a.dilation[1];
                                if (iw < 0 || iw >= W) continue;
                                int64_t xi = ((n * C + g * Cg + c) * H + ih) * W + iw;
                                int64_t wi = ((k * Cg + c) * KH + kh) * KW + kw;
                                visit(yi, xi, wi);
                            }
                        }
                }
        }
}

void conv_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, TensorView y) {
    const int64_t K = w.shape[0], plane = y.shape[2] * y.shape[3];
    for (int64_t i = 0; i < y.numel(); ++i) y[i] = bias ? bias[(i / plane) % K] : 0.0f;
    for_each_tap(a, x.shape, w.shape, y.shape, [&](int64_t yi, int64_t xi, int64_t wi) { y[yi] += x[xi] * w[wi]; });
}

ConvInputs conv_inputs(const Attrs& a, const TensorView* in, int n_in) {
    const int n_bias = n_in - (a.fused_residual ? 1 : 0);  // x, w[, b][, residual]
    return {n_bias > 2 ? in[2].data : nullptr, a.fused_residual ? in[n_in - 1].data : nullptr};
}

void conv_epilogue(const Attrs& a, const float* residual, TensorView y) {
    for (int64_t i = 0; i < y.numel(); ++i) {
        float v = residual ? y[i] + residual[i] : y[i];
        y[i] = a.fused_relu && !(v > 0) ? 0.0f : v;
    }
}

void conv_backward(const Attrs& a, TensorView x, TensorView w, TensorView gy, TensorView gx, TensorView gw,
                   float* gbias) {
    for_each_tap(a, x.shape, w.shape, gy.shape, [&](int64_t yi, int64_t xi, int64_t wi) {
        if (gx.data) gx[xi] += gy[yi] * w[wi];
        if (gw.data) gw[wi] += gy[yi] * x[xi];
    });
    if (gbias) {
        const int64_t K = w.shape[0], plane = gy.shape[2] * gy.shape[3];
        for (int64_t i = 0; i < gy.numel(); ++i) gbias[(i / plane) % K] += gy[i];
    }
}

}  // namespace engine::ref
