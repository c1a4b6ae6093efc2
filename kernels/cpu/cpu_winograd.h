// Winograd F(m x m, 3x3) convolution for the native backend: stride 1, padding 1. Each m x m
// output tile costs (m + 2)^2 multiplies per (input, output) channel pair instead of 9 m^2: 2.25x
// fewer than the direct kernel for F(2x2) and 4x fewer for F(4x4), whose transforms are larger and
// lose a little more precision. The input and output transforms are additions. Weights are
// transformed by winograd_weights: once for inference-only plans, on every call where they may change.
#pragma once
#include "engine/backend.h"

namespace engine::cpu {

// The tile side m to use for this convolution: 4 where the planes split into 4x4 tiles in blocks
// of 16, 2 where they do in 2x2 tiles, 0 where Winograd does not apply. Every function below takes it.
int winograd_tile(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
// Floats of scratch winograd_forward needs with this many threads.
size_t winograd_scratch(int tile, const Shape& x, const Shape& w, int threads);

// G w G^T for every (output, input) channel pair, packed for winograd_forward: u holds
// winograd_weights_floats(tile, w) floats.
size_t winograd_weights_floats(int tile, const Shape& w);
void winograd_weights(int tile, TensorView w, float* u);

// y = relu?(conv(x, w) + bias? + residual?), from u = winograd_weights(tile, w). The samples are
// shared out between threads when there are enough; otherwise the threads split each phase of one
// sample. Either way every output element is computed in the same order, whatever the thread count.
void winograd_forward(int tile, TensorView x, const float* u, const Shape& w, const float* bias, const float* residual,
                      bool relu, TensorView y, float* scratch, int threads);
// Sample n alone on the calling thread, for callers that share out samples themselves; scratch
// holds winograd_scratch(tile, x, w, 1) floats. residual may be y itself: each element is read, then written.
void winograd_forward_sample(int tile, TensorView x, int64_t n, const float* u, const Shape& w, const float* bias,
                             const float* residual, bool relu, TensorView y, float* scratch);

}  // namespace engine::cpu
