// Gradients of a 1x1 convolution (stride 1, no padding, one group) over a range of samples.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/tensor.h"

namespace engine::native {

// Floats of scratch pointwise_backward needs for inputs x and weights w.
size_t pointwise_backward_scratch(const Shape& x, const Shape& w);

// For samples [n_begin, n_end): gw[K, C] += gy x^T and gbias[K] += gy's row sums (either may be
// null), and gx += w^T gy where gx.data is set.
void pointwise_backward(TensorView x, TensorView w, TensorView gy, TensorView gx, float* gw, float* gbias,
                        int64_t n_begin, int64_t n_end, float* scratch);

}  // namespace engine::native
