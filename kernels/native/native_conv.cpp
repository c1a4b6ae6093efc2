#include "native_conv.h"

#include <algorithm>

#include "native_conv3x3.h"
#include "native_conv_dims.h"
#include "native_conv_gemm.h"
#include "native_depthwise.h"

namespace engine::native {

size_t conv_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    const ConvDims d = conv_dims(a, x, w, y);
    size_t forward = 0;
    if (conv_is_depthwise(a, w))
        forward = depthwise_scratch_per_thread(a, d);
    else {
        forward = size_t(d.CKK * d.P);
        if (conv3x3_fits(a, x, w, y)) forward = std::max(forward, conv3x3_scratch_per_thread(x));
    }
    return forward;
}

void conv_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual, TensorView y,
                  float* scratch, int threads) {
    if (conv3x3_fits(a, x.shape, w.shape, y.shape))
        return conv3x3_forward(x, w, bias, residual, a.fused_relu, y, scratch, threads);
    if (conv_is_depthwise(a, w.shape)) return depthwise_forward(a, x, w, bias, residual, y, scratch, threads);
    conv_grouped_forward(a, x, w, bias, residual, y, scratch, threads);
}

}  // namespace engine::native
