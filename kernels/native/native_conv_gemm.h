// Convolutions as GEMMs. Convolutions with one group that the direct 3x3 kernel does not take run as
// one GEMM per sample with the weights packed once (conv_gemm_pack, for outputs of y's shape): on the
// input itself for 1x1 ones (stride 1, no padding), else on im2col's column matrix
// (conv_gemm_scratch_per_thread floats per thread). Outputs of at most kNarrowColumns pixels use the
// GEMM's row-vectorised kernel and its own packing (native_gemm.h). y = W x + bias? (+ residual, ReLU
// as the fusion asks). Grouped convolutions (not depthwise) run unpacked, one GEMM per group.
#pragma once
#include "engine/backend.h"

namespace engine::native {

bool conv_gemm_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
size_t conv_gemm_packed_floats(const Shape& w, const Shape& y);
void conv_gemm_pack(TensorView w, const Shape& y, float* out);
size_t conv_gemm_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
void conv_gemm_forward(const Attrs& a, TensorView x, const float* packed_w, const Shape& w, const float* bias,
                       const float* residual, TensorView y, float* scratch, int threads);

// Any group count, weights as given; scratch holds threads * conv_grouped_scratch_per_thread floats.
size_t conv_grouped_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
void conv_grouped_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                          TensorView y, float* scratch, int threads);

}  // namespace engine::native
