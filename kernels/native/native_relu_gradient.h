// The gradient through a ReLU, given the ReLU's output, over a row of n values: the element-wise
// rule that the ReLU backward and BatchNorm's fused residual share, so that fused and unfused plans
// give it to the bit.
#pragma once
#include <cstdint>

namespace engine::native {

// d = (y > 0 ? g : 0), or d += that where !fresh; y null: no ReLU (d = g, d += g).
inline void relu_gradient_row(float* __restrict d, const float* __restrict y, const float* __restrict g, int64_t n,
                              bool fresh) {
    // The null test is loop-invariant: GCC unswitches it and keeps the loops vectorised.
    if (fresh)
        for (int64_t i = 0; i < n; ++i) d[i] = y && !(y[i] > 0.0f) ? 0.0f : g[i];
    else
        for (int64_t i = 0; i < n; ++i) d[i] += y && !(y[i] > 0.0f) ? 0.0f : g[i];
}

}  // namespace engine::native
