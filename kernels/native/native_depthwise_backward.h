// Gradients of a depthwise convolution, one channel plane at a time (any kernel size, stride,
// padding and dilation).
#pragma once
#include <cstddef>
#include <cstdint>

namespace engine::native {

struct DepthwisePlane {
    int64_t H, W, OH, OW, KH, KW;
    int64_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
    // The part of the zero-padded input that the windows read.
    int64_t padded_h() const { return (OH - 1) * stride_h + (KH - 1) * dilation_h + 1; }
    int64_t padded_w() const { return (OW - 1) * stride_w + (KW - 1) * dilation_w + 1; }
};

// Floats of scratch depthwise_plane_backward needs.
size_t depthwise_backward_scratch(const DepthwisePlane& p);

// gw[KH*KW] += d loss / d w, gx[H*W] += d loss / d x (either may be null) of one plane, from x, the
// plane's weights w and the output gradient gy[OH*OW].
void depthwise_plane_backward(const DepthwisePlane& p, const float* x, const float* w, const float* gy, float* gx,
                              float* gw, float* scratch);

}  // namespace engine::native
