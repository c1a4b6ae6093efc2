// Depthwise convolution forward (groups == channels, one filter per channel): a vectorised 3x3 kernel
// for padding 1 and stride 1 or 2 (small planes at stride 1 have one of their own), direct loops for the rest. The
// gradients are native_depthwise_backward.h's.
#pragma once
#include "native_conv_dims.h"
#include "native_depthwise_backward.h"

namespace engine::native {

bool conv_is_depthwise(const Attrs& a, const Shape& w);
// Floats of scratch one thread of depthwise_forward needs.
size_t depthwise_scratch_per_thread(const Attrs& a, const ConvDims& d);
// Depthwise 3x3, padding 1, stride 1 or 2 (even sizes): the vectorised kernels' geometry.
bool depthwise3x3_fits(const Attrs& a, const ConvDims& d);
// Of those, stride 1 on output planes of 4 (an even number of channels), 8 or 16 pixels: AVX2 kernel
// with 8 consecutive outputs a vector (native_depthwise_small.cpp), which depthwise_forward hands them to.
bool depthwise_small_fits(const Attrs& a, const ConvDims& d);
// Independent sums those two kernels keep in flight: each is nine dependent FMAs, and the FMA latency
// times the FMA pipes needs about eight.
inline constexpr int kDepthwiseChains = 8;
void depthwise_small_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                             TensorView y, int threads);
// And stride 1 on rows of 8, 16 or 32 pixels: the AVX2 kernel that reads the taps from the plane itself
// (native_depthwise_rows.cpp), which depthwise_forward hands them to.
bool depthwise_rows_fits(const Attrs& a, const ConvDims& d);
void depthwise_rows_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                            TensorView y, int threads);
// The plane geometry the backward kernels take.
DepthwisePlane depthwise_plane_of(const Attrs& a, const ConvDims& d);

// y = relu?(conv(x, w) + bias? + residual?), the (sample, channel) planes shared out between threads;
// scratch holds threads * depthwise_scratch_per_thread floats.
void depthwise_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                       TensorView y, float* scratch, int threads);

// The AVX-512 kernels (called only where the CPU has it), for 3x3 with padding 1, stride 1 or 2, an
// input plane stride x stride times the output plane, and the same results as depthwise_forward to
// the bit: output planes of 4, 8 or 16 pixels, 16 / pixels channels to a vector
// (native_depthwise_avx512.cpp), and output rows of 8, 16 or 32 pixels, one plane at a time
// (native_depthwise_rows_avx512.cpp).
enum class Avx512Depthwise { none, small, rows };
Avx512Depthwise avx512_depthwise_of(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
bool depthwise_avx512_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
void depthwise_forward_avx512(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                              TensorView y, int threads);
void depthwise_small_forward_avx512(const Attrs& a, TensorView x, TensorView w, const float* bias,
                                    const float* residual, TensorView y, int threads);
void depthwise_rows_forward_avx512(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                                   TensorView y, int threads);
// The gradients of small planes (native_depthwise_backward_avx512.cpp), for samples [n0, n1): gx
// written (gx_fresh) or added to, the same values as depthwise_plane_backward's; gw and gb (either
// may be null) added to, summed over the samples in their own order.
void depthwise_small_backward_avx512(const Attrs& a, TensorView x, TensorView w, TensorView gy, float* gx,
                                     bool gx_fresh, float* gw, float* gb, int64_t n0, int64_t n1);

}  // namespace engine::native
