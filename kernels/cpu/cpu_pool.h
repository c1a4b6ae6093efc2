// Pooling fast paths on the CPU backend.
#pragma once
#include "engine/backend.h"

namespace engine::cpu {

// SDN head pooling (alpha*max + (1-alpha)*mean) when the windows tile the input: kernel ==
// stride, no padding, no dilation, no ceil_mode. False (nothing written) otherwise.
bool mixed_pool_tiled(const Attrs& a, TensorView x, float alpha, TensorView y);

}  // namespace engine::cpu
