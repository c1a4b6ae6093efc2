// Direct 3x3 convolution on AVX-512, stride 1 or 2, padding 1, any plane size: a tuner candidate
// beside the AVX2 direct kernel (native_conv3x3.h), written for ResNet stage transitions (stride 2,
// where Winograd does not apply) and small planes.
//
// Each sample's input is first copied into "tap planes": for every input channel, kernel column kw
// and row phase (kh % stride), the values that tap reads for every output pixel, in output order.
// A tap's operand for output pixels [p, p + 16) is then one contiguous load, whatever the stride
// and the width: no border tests and no width restriction in the inner loop. The copy is 3x the
// input (stride 1) or 1.5x (stride 2), built with masked loads (and, for stride 2, one permute per
// 16 values) that the AVX2 kernel's padded copy needs as well.
//
// The geometry and weight packing live here (compiled for AVX2, callable on any CPU); the copy and
// the products in native_conv3x3_taps_avx512.cpp, called only where the CPU has AVX-512.
#pragma once
#include "engine/backend.h"

namespace engine::native {

bool conv3x3_taps_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
// Floats of the packed weights: [output block of 8][c][tap][8 channels, zero past K].
size_t conv3x3_taps_weights_floats(const Shape& w);
void conv3x3_taps_pack(TensorView w, float* u);
// Floats of working scratch on `threads` threads (one tap-plane copy each).
size_t conv3x3_taps_work_floats(const Shape& x, const Shape& y, int threads);

// y = relu?(conv(x, w) + bias? + residual?) from u = conv3x3_taps_pack(w). Samples are shared out
// between threads where there are enough, else the output channel blocks of each sample; either way
// each output element sums its products in one order, whatever the batch and thread count.
void conv3x3_taps_forward(TensorView x, const float* u, const Shape& w, const float* bias, const float* residual,
                          bool relu, TensorView y, float* scratch, int threads);

namespace taps {

// Where the tap planes of one sample lie (native_conv3x3_taps_avx512.cpp and the driver share it).
struct Geometry {
    int64_t C, H, W, K, S, OH, OW, P;
    int64_t rows;    // rows of one tap plane: output rows + the rows the lower taps reach
    int64_t slab;    // floats of one tap plane
    int64_t floats;  // floats of one sample's copy, with room for the last 16-pixel loads to overrun
};
Geometry geometry(const Shape& x, int64_t K, const Shape& y);  // K output channels
inline constexpr int kKb = 8;                                  // output channels per block (packed weights, one tile)

// The tap planes of input channels [c0, c1) of one sample (x points at the sample).
void copy_avx512(const Geometry& g, const float* x, float* planes, int64_t c0, int64_t c1);
// Output channel blocks [kb0, kb1) of one sample (residual and y point at the sample).
void blocks_avx512(const Geometry& g, const float* planes, const float* u, const float* bias, const float* residual,
                   bool relu, float* y, int64_t kb0, int64_t kb1);

}  // namespace taps

}  // namespace engine::native
