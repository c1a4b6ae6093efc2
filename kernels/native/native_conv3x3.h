// Direct 3x3 convolution, stride 1 or 2 (even input sizes), padding 1, for NCHW outputs whose width
// is a multiple of 8: the common case of CIFAR ResNets, where im2col's column matrix would not fit in L2.
#pragma once
#include "engine/backend.h"

namespace engine::native {

bool conv3x3_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
// Floats of scratch one thread needs: one zero-bordered copy of a sample.
size_t conv3x3_scratch_per_thread(const Shape& x);

// y = relu?(conv(x, w) + bias? + residual?); bias and residual may be null.
void conv3x3_forward(TensorView x, TensorView w, const float* bias, const float* residual, bool relu, TensorView y,
                     float* scratch, int threads);
// The same for sample n alone, for callers that share out samples themselves; scratch holds
// conv3x3_scratch_per_thread floats. residual may be y itself: each output element is read, then written.
void conv3x3_forward_sample(TensorView x, TensorView w, const float* bias, const float* residual, bool relu,
                            TensorView y, int64_t n, float* scratch);

// Weight gradient of a stride-1 convolution that fits: gw [K, C, 3, 3] += the products of samples
// [n0, n1) of gy and x, in chunks of samples so that each accumulator spans about 1024 pixels.
// scratch holds conv3x3_wgrad_scratch_per_thread floats (a chunk of padded inputs).
size_t conv3x3_wgrad_scratch_per_thread(const Shape& x);
void conv3x3_weight_grad(TensorView x, TensorView gy, float* gw, int64_t n0, int64_t n1, float* scratch);

}  // namespace engine::native
