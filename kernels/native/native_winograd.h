// Winograd F(m x m, 3x3) convolution for the native backend: stride 1, padding 1. Each m x m
// output tile costs (m + 2)^2 multiplies per (input, output) channel pair instead of 9 m^2: 2.25x
// fewer than the direct kernel for F(2x2) and 4x fewer for F(4x4), whose transforms are larger and
// lose a little more precision. The input and output transforms are additions. Weights are
// transformed by winograd_weights: once for inference-only plans, on every call where they may change.
#pragma once
#include "engine/backend.h"

namespace engine::native {

// How a convolution runs on Winograd: the tile side m (4 where the planes split into 4x4 tiles, 2
// where they split into 2x2 ones, 0 where Winograd does not apply), and whether the product is
// vectorised over output channels rather than over tiles (8x8 planes, whose four 4x4 tiles are too
// few to fill the vectors). Every function below takes the plan winograd_plan chose.
// avx512: the product runs on AVX-512 (native_winograd_avx512.cpp), with its own weight packing.
struct WinogradPlan {
    int m = 0;
    bool over_channels = false;
    bool avx512 = false;
    explicit operator bool() const { return m != 0; }
};
// The fixed rule (AVX2): F(4x4) where the tiles fit, vectorised over channels on 8x8 planes, else F(2x2).
WinogradPlan winograd_plan(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
// The plan asked for, or none where it cannot run this convolution: a candidate for plan-time tuning.
WinogradPlan winograd_plan_for(int m, bool over_channels, bool avx512, const Attrs& a, const Shape& x, const Shape& w,
                               const Shape& y);
// Floats of scratch winograd_forward needs with this many threads.
size_t winograd_scratch(WinogradPlan plan, const Shape& x, const Shape& w, int threads);

// G w G^T for every (output, input) channel pair, packed for winograd_forward on inputs of x's
// shape: u holds winograd_weights_floats(plan, x, w) floats. The same values with any thread count.
size_t winograd_weights_floats(WinogradPlan plan, const Shape& x, const Shape& w);
void winograd_weights(WinogradPlan plan, const Shape& x, TensorView w, float* u, int threads = 1);

// y = relu?(conv(x, w) + bias? + residual?), from u = winograd_weights(plan, x, w). The samples are
// shared out between threads when there are enough; otherwise the threads split each phase of one
// sample. Either way every output element is computed in the same order, whatever the thread count.
void winograd_forward(WinogradPlan plan, TensorView x, const float* u, const Shape& w, const float* bias,
                      const float* residual, bool relu, TensorView y, float* scratch, int threads);
// Sample n alone on the calling thread, for callers that share out samples themselves; scratch
// holds winograd_scratch(plan, x, w, 1) floats. residual may be y itself: each element is read, then written.
void winograd_forward_sample(WinogradPlan plan, TensorView x, int64_t n, const float* u, const Shape& w,
                             const float* bias, const float* residual, bool relu, TensorView y, float* scratch);

}  // namespace engine::native
