// Winograd F(2x2, 3x3) convolution for the native backend's inference forward: stride 1, padding 1,
// even sizes. Each 2x2 output tile costs 16 multiplies per (input, output) channel pair instead of
// 36, so the product is 2.25x smaller than the direct kernel's; the input and output transforms
// are additions. Weights are transformed by winograd_weights: once for inference-only plans, on
// every call where they may change.
#pragma once
#include "engine/backend.h"

namespace engine::cpu {

bool winograd_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
// Floats of scratch winograd_forward needs with this many threads.
size_t winograd_scratch(const Shape& x, const Shape& w, int threads);

// G w G^T for every (output, input) channel pair, packed for winograd_forward: u holds
// winograd_weights_floats(w) floats.
size_t winograd_weights_floats(const Shape& w);
void winograd_weights(TensorView w, float* u);

// y = relu?(conv(x, w) + bias? + residual?), from u = winograd_weights(w). The samples are shared
// out between threads when there are enough; otherwise the threads split each phase of one sample.
// Either way every output element is computed in the same order, whatever the thread count.
void winograd_forward(TensorView x, const float* u, const Shape& w, const float* bias, const float* residual, bool relu,
                      TensorView y, float* scratch, int threads);
// Sample n alone on the calling thread, for callers that share out samples themselves; scratch
// holds winograd_scratch(x, w, 1) floats. residual may be y itself: each element is read, then written.
void winograd_forward_sample(TensorView x, int64_t n, const float* u, const Shape& w, const float* bias,
                             const float* residual, bool relu, TensorView y, float* scratch);

}  // namespace engine::cpu
