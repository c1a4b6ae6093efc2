// Pooling fast paths on the CPU backend.
#pragma once
#include "engine/backend.h"

namespace engine::native {

// What a pool computes over each window: its max, its mean, or the SDN heads' mixed pooling
// alpha*max + (1-alpha)*mean.
enum class PoolKind { Max, Average, Mixed };

// Pooling when the windows tile the input: kernel == stride, no padding, no dilation, no
// ceil_mode. Planes are shared out between threads. False (nothing written) otherwise. alpha is
// read for PoolKind::Mixed only. The max is the first maximum of a window, as the reference takes it.
bool pool_tiled(const Attrs& a, TensorView x, PoolKind kind, float alpha, TensorView y, int threads);

// The gradient, added to gx (if given) and, for mixed pooling, *galpha (if given); false (nothing
// written) where the windows do not tile the input.
bool pool_tiled_backward(const Attrs& a, TensorView x, PoolKind kind, float alpha, TensorView gy, TensorView gx,
                         float* galpha, int threads);

}  // namespace engine::native
