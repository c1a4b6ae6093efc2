// Weight gradient of a stride-1 3x3 convolution (padding 1) on Winograd F(4x4, 3x3): per 4x4
// output tile, the transformed output gradient (A gy A^T, 6x6) meets the transformed input
// (B^T x B) elementwise, the products are summed over tiles for every (output, input) channel
// pair, and G^T (sum) G gives the 3x3 gradient. The sum over tiles is 36 small GEMMs with 4x
// fewer multiplies than the direct kernel (conv3x3_weight_grad); the transforms are additions.
// Vectorised over channels: input and output channels multiples of 8; planes H x W with H a multiple
// of 4 and W of 8.
#pragma once
#include "engine/backend.h"
#include "native_isa.h"

namespace engine::native {

bool winograd_wgrad_fits(const Shape& x, const Shape& w, const Shape& y);
// Floats of scratch one thread needs.
size_t winograd_wgrad_scratch_per_thread(const Shape& x, const Shape& w);
// gw [K, C, 3, 3] += the weight gradient from samples [n0, n1) of x and gy, in a fixed order: on
// AVX-512 where isa allows it and both channel counts are multiples of 16.
void winograd_weight_grad(TensorView x, TensorView gy, float* gw, int64_t n0, int64_t n1, float* scratch, Isa isa);
// The AVX-512 variant, called by winograd_weight_grad only.
void winograd_weight_grad_avx512(TensorView x, TensorView gy, float* gw, int64_t n0, int64_t n1, float* scratch);

}  // namespace engine::native
