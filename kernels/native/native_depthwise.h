// Depthwise convolution forward (groups == channels, one filter per channel): a vectorised 3x3 kernel
// for padding 1 and stride 1 or 2, direct loops for the rest. The gradients are native_depthwise_backward.h's.
#pragma once
#include "native_conv_dims.h"
#include "native_depthwise_backward.h"

namespace engine::native {

bool conv_is_depthwise(const Attrs& a, const Shape& w);
// Floats of scratch one thread of depthwise_forward needs.
size_t depthwise_scratch_per_thread(const Attrs& a, const ConvDims& d);
// The plane geometry the backward kernels take.
DepthwisePlane depthwise_plane_of(const Attrs& a, const ConvDims& d);

// y = relu?(conv(x, w) + bias? + residual?), the (sample, channel) planes shared out between threads;
// scratch holds threads * depthwise_scratch_per_thread floats.
void depthwise_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                       TensorView y, float* scratch, int threads);

// The AVX-512 kernel for small planes (native_depthwise_avx512.cpp): 3x3, padding 1, stride 1 or 2,
// output planes of 4, 8 or 16 pixels, input planes of stride x stride times that, and channels
// grouped 16 / pixels to a vector. The same results as depthwise_forward, to the bit.
bool depthwise_small_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
void depthwise_small_forward_avx512(const Attrs& a, TensorView x, TensorView w, const float* bias,
                                    const float* residual, TensorView y, int threads);

}  // namespace engine::native
