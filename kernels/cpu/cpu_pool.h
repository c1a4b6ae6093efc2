// Pooling fast paths on the CPU backend.
#pragma once
#include "engine/backend.h"

namespace engine::cpu {

// SDN head pooling (alpha*max + (1-alpha)*mean) when the windows tile the input: kernel ==
// stride, no padding, no dilation, no ceil_mode. Planes are shared out between threads.
// False (nothing written) otherwise.
bool mixed_pool_tiled(const Attrs& a, TensorView x, float alpha, TensorView y, int threads);

// Its gradient, added to gx (if given) and *galpha (if given); false (nothing written) where the
// windows do not tile the input.
bool mixed_pool_tiled_backward(const Attrs& a, TensorView x, float alpha, TensorView gy, TensorView gx, float* galpha,
                               int threads);

}  // namespace engine::cpu
