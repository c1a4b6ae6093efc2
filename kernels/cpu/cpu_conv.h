// Convolution forward and backward on the CPU backend.
#pragma once
#include "engine/backend.h"

namespace engine::cpu {

// Floats of scratch one thread needs for a convolution of these shapes.
size_t conv_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, bool backward);
bool conv_is_depthwise(const Attrs& a, const Shape& w);

// y = conv(x, w) + bias?, then, as the inference fusion asks (Attrs::fused_*), + residual and ReLU.
void conv_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual, TensorView y,
                  float* scratch, int threads);
// 1x1, stride 1, no padding, one group: y = W x + bias? (+ residual, ReLU as the fusion asks), with
// the weights packed by conv_pointwise_pack for inputs of x's shape: for the packed GEMM, or, on
// planes of at most kNarrowColumns pixels, in row panels for its narrow kernel (cpu_gemm.h).
bool conv_pointwise_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
size_t conv_pointwise_packed_floats(const Shape& x, const Shape& w);
void conv_pointwise_pack(const Shape& x, TensorView w, float* out);
void conv_pointwise_forward(const Attrs& a, TensorView x, const float* packed_w, const Shape& w, const float* bias,
                            const float* residual, TensorView y, int threads);
void conv_backward(const Attrs& a, TensorView x, TensorView w, TensorView gy, TensorView gx, TensorView gw,
                   float* gbias, float* scratch, int threads);

}  // namespace engine::cpu
