#include <algorithm>
#include <cmath>
#include <limits>

#include "ref_kernels.h"

namespace engine::ref {

namespace {

struct Window {
    int64_t h0, h1, w0, w1;  // clipped to the input
    int64_t padded_count;    // window size inside the padded input (count_include_pad)
};

Window window(const Attrs& a, const Shape& xs, int64_t oh, int64_t ow) {
    const int64_t H = xs[2], W = xs[3];
    int64_t hs = oh * a.stride[0] - a.pad[0], ws = ow * a.stride[1] - a.pad[1];
    int64_t he = hs + (a.kernel[0] - 1) * a.dilation[0] + 1, we = ws + (a.kernel[1] - 1) * a.dilation[1] + 1;
    int64_t ph = std::min(he, H + a.pad[2]) - hs, pw = std::min(we, W + a.pad[3]) - ws;
    return {std::max<int64_t>(hs, 0), std::min(he, H), std::max<int64_t>(ws, 0), std::min(we, W), ph * pw};
}

// Input positions of one window that are real elements, honouring dilation.
template <typename Visit>
void for_window(const Attrs& a, const Shape& xs, int64_t oh, int64_t ow, Visit visit) {
    int64_t hs = oh * a.stride[0] - a.pad[0], ws = ow * a.stride[1] - a.pad[1];
    for (int64_t kh = 0; kh < a.kernel[0]; ++kh) {
        int64_t ih = hs + kh * a.dilation[0];
        if (ih < 0 || ih >= xs[2]) continue;
        for (int64_t kw = 0; kw < a.kernel[1]; ++kw) {
            int64_t iw = ws + kw * a.dilation[1];
            if (iw < 0 || iw >= xs[3]) continue;
            visit(ih * xs[3] + iw);
        }
    }
}

int64_t real_count(const Attrs& a, const Shape& xs, int64_t oh, int64_t ow) {
    int64_t c = 0;
    for_window(a, xs, oh, ow, [&](int64_t) { ++c; });
    return c;
}

float divisor(const Attrs& a, const Shape& xs, int64_t oh, int64_t ow) {
    return float(a.count_include_pad ? window(a, xs, oh, ow).padded_count : real_count(a, xs, oh, ow));
}

}  // namespace

void pool_forward(Op op, const Attrs& a, TensorView x, TensorView y) {
    const int64_t planes = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3];
    const int64_t OH = y.shape[2], OW = y.shape[3];
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                const float* xp = x.data + p * HW;
                float acc = op == Op::MaxPool ? -std::numeric_limits<float>::infinity() : 0.0f;
                for_window(a, x.shape, oh, ow,
                           [&](int64_t i) { acc = op == Op::MaxPool ? std::max(acc, xp[i]) : acc + xp[i]; });
                if (op == Op::AvgPool) acc /= divisor(a, x.shape, oh, ow);
                y[(p * OH + oh) * OW + ow] = acc;
            }
}

void pool_backward(Op op, const Attrs& a, TensorView x, TensorView y, TensorView gy, TensorView gx) {
    const int64_t planes = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3];
    const int64_t OH = y.shape[2], OW = y.shape[3];
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                int64_t yi = (p * OH + oh) * OW + ow;
                const float* xp = x.data + p * HW;
                float* gp = gx.data + p * HW;
                if (op == Op::MaxPool) {
                    // The gradient goes to the first maximum, as PyTorch and ONNX Runtime do.
                    int64_t best = -1;
                    for_window(a, x.shape, oh, ow, [&](int64_t i) {
                        if (best < 0 || xp[i] > xp[best]) best = i;
                    });
                    if (best >= 0) gp[best] += gy[yi];
                } else {
                    float share = gy[yi] / divisor(a, x.shape, oh, ow);
                    for_window(a, x.shape, oh, ow, [&](int64_t i) { gp[i] += share; });
                }
            }
}

// Max and mean of one window, in one pass.
static void window_max_mean(const Attrs& a, const Shape& xs, const float* xp, int64_t oh, int64_t ow, float& mx,
                            float& mean, int64_t& argmax) {
    float sum = 0;
    argmax = -1;
    for_window(a, xs, oh, ow, [&](int64_t i) {
        sum += xp[i];
        if (argmax < 0 || xp[i] > xp[argmax]) argmax = i;
    });
    mx = xp[argmax];
    mean = sum / divisor(a, xs, oh, ow);
}

void mixed_pool_forward(const Attrs& a, TensorView x, float alpha, TensorView y) {
    const int64_t planes = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3];
    const int64_t OH = y.shape[2], OW = y.shape[3];
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                float mx, mean;
                int64_t arg;
                window_max_mean(a, x.shape, x.data + p * HW, oh, ow, mx, mean, arg);
                y[(p * OH + oh) * OW + ow] = alpha * mx + (1 - alpha) * mean;
            }
}

void mixed_pool_backward(const Attrs& a, TensorView x, float alpha, TensorView gy, TensorView gx, float* galpha) {
    const int64_t planes = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3];
    const int64_t OH = gy.shape[2], OW = gy.shape[3];
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                float mx, mean, g = gy[(p * OH + oh) * OW + ow];
                int64_t arg;
                window_max_mean(a, x.shape, x.data + p * HW, oh, ow, mx, mean, arg);
                if (galpha) *galpha += g * (mx - mean);
                if (!gx.data) continue;
                float* gp = gx.data + p * HW;
                gp[arg] += alpha * g;
                float share = (1 - alpha) * g / divisor(a, x.shape, oh, ow);
                for_window(a, x.shape, oh, ow, [&](int64_t i) { gp[i] += share; });
            }
}

void global_avg_pool_forward(TensorView x, TensorView y) {
    const int64_t planes = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3];
    for (int64_t p = 0; p < planes; ++p) {
        double s = 0;
        for (int64_t i = 0; i < HW; ++i) s += x[p * HW + i];
        y[p] = float(s / HW);
    }
}

void global_avg_pool_backward(TensorView gy, TensorView gx) {
    const int64_t planes = gx.shape[0] * gx.shape[1], HW = gx.shape[2] * gx.shape[3];
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t i = 0; i < HW; ++i) gx[p * HW + i] += gy[p] / HW;
}

}  // namespace engine::ref
