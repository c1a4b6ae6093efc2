// Convolution forward on the native backend, for the convolutions neither Winograd
// (native_winograd.h) nor the packed GEMM (native_conv_gemm.h) takes: the direct 3x3 kernel,
// depthwise and grouped convolutions; and the scratch any convolution needs.
#pragma once
#include "engine/backend.h"

namespace engine::native {

// Floats of scratch one thread needs for a convolution of these shapes (conv_backward needs
// conv_backward_scratch, native_conv_backward.h).
size_t conv_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);

// y = conv(x, w) + bias?, then, as the inference fusion asks (Attrs::fused_*), + residual and ReLU.
void conv_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual, TensorView y,
                  float* scratch, int threads);

}  // namespace engine::native
