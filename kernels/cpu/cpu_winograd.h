// Winograd F(2x2, 3x3) convolution for the native backend's inference forward: stride 1, padding 1,
// even sizes. Each 2x2 output tile costs 16 multiplies per (input, output) channel pair instead of
// 36, so the product is 2.25x smaller than the direct kernel's; the input and output transforms
// are additions. Weights are transformed once (winograd_weights) and reused while they stay put.
#pragma once
#include <vector>

#include "engine/backend.h"

namespace engine::cpu {

bool winograd_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
// Floats of scratch winograd_forward needs with this many threads.
size_t winograd_scratch(const Shape& x, const Shape& w, int threads);

// G w G^T for every (output, input) channel pair, packed for winograd_forward.
std::vector<float> winograd_weights(TensorView w);

// y = relu?(conv(x, w) + bias? + residual?), from u = winograd_weights(w). The samples are shared
// out between threads when there are enough; otherwise the threads split each phase of one sample.
// Either way every output element is computed in the same order, whatever the thread count.
void winograd_forward(TensorView x, const float* u, const Shape& w, const float* bias, const float* residual, bool relu,
                      TensorView y, float* scratch, int threads);

}  // namespace engine::cpu
