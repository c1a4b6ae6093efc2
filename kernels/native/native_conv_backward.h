// Convolution gradients on the native backend: the direct and Winograd kernels for the input
// gradient of stride-1 3x3 convolutions, the direct weight gradient for them, the depthwise plane
// kernels, the pointwise kernels for 1x1 ones, im2col GEMMs for the rest.
#pragma once
#include "engine/backend.h"
#include "native_isa.h"

namespace engine::native {

// Floats of scratch conv_backward needs with `threads` threads on this instruction set: what they
// share, then a part per thread at least the forward's conv_scratch_per_thread (the same buffer
// serves both).
size_t conv_backward_scratch(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, Isa isa, int threads);
// gx += d loss / d x (gx = where gx_fresh), gw += d loss / d w, gbias += d loss / d bias (any may be
// null) from gy, with AVX-512 kernels where isa says so; scratch holds conv_backward_scratch floats
// for these threads.
void conv_backward(const Attrs& a, TensorView x, TensorView w, TensorView gy, TensorView gx, bool gx_fresh,
                   TensorView gw, float* gbias, float* scratch, Isa isa, int threads);

}  // namespace engine::native
