// The classifier heads' fully connected layers (PyTorch's Linear: ONNX Gemm with B transposed):
// y[i][j] = c[j] + a_i . b_j for each sample i and class j. Each dot product is summed in an order
// that depends on its length alone (linear_dot), so a sample's logits have the same bits at any batch
// size, thread count and instruction set. At batch 1 one dot product per output costs a seventh of
// packing the operands for the GEMM (ResNet-56's seven heads: 0.042 -> 0.0066 ms).
#pragma once
#include <cstdint>

#include "native_isa.h"

namespace engine::native {

// a [M, K] (samples), b [N, K] (a row of weights per class), c [N] or null, y [M, N]. The rows are
// shared out between threads where there are enough of them.
void linear_rows(const float* a, const float* b, const float* c, float* y, int64_t M, int64_t N, int64_t K, Isa isa,
                 int threads);

// The order every path sums in, on AVX2: four 8-lane accumulators over blocks of 32, then blocks of 8
// into the first, the lanes added ((0 + 1) + (2 + 3)) and horizontally, then one fused multiply-add
// per remaining element.
float linear_dot(const float* a, const float* b, int64_t K);

// Rows [i0, i1) on AVX-512 (native_linear_avx512.cpp): all classes of a row from one pass over it,
// the same sums as linear_dot.
void linear_rows_avx512(const float* a, const float* b, const float* c, float* y, int64_t i0, int64_t i1, int64_t N,
                        int64_t K);

}  // namespace engine::native
