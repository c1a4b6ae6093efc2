// The kernels one convolution can run on, by name, and what each needs: transformed weights and
// working scratch. conv_kernel_fixed is the rule the backend followed before plan-time tuning (and
// follows with ENGINE_KERNELS=fixed and in plans whose weights may change); conv_kernel_candidates
// are what the tuner (native_conv_tuner.h) times on the running CPU. Every candidate computes the
// same convolution to about 1e-5 relative.
#pragma once
#include <string>
#include <vector>

#include "engine/backend.h"
#include "native_isa.h"

namespace engine::native {

enum class ConvKernel {
    winograd4,           // F(4x4, 3x3), vectorised over tiles (AVX2)
    winograd4_channels,  // F(4x4, 3x3) on 8x8 planes, vectorised over output channels (AVX2)
    winograd2,           // F(2x2, 3x3), vectorised over tiles (AVX2)
    winograd4_512,       // the same three with the AVX-512 products
    winograd4_channels_512,
    winograd2_512,
    direct,         // direct 3x3, stride 1 or 2 (native_conv3x3.h)
    direct_512,     // direct 3x3 on tap planes, stride 1 or 2, any width (native_conv3x3_taps.h, AVX-512)
    gemm,           // im2col (or the input, 1x1) times the packed weights (native_conv_gemm.h)
    other,          // depthwise, grouped: conv_forward's own kernels
    depthwise_512,  // depthwise 3x3, small planes or rows of 8-32 pixels (native_depthwise.h, AVX-512)
};

const char* conv_kernel_name(ConvKernel k);
// False for a name no kernel has.
bool conv_kernel_from_name(const std::string& name, ConvKernel& k);
// Whether k needs AVX-512.
bool conv_kernel_avx512(ConvKernel k);

ConvKernel conv_kernel_fixed(const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
// Every kernel that can run this convolution with this instruction set, the fixed one first.
std::vector<ConvKernel> conv_kernel_candidates(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, Isa isa);

// Floats of k's transformed weights (0: it reads them as they are) and of its working scratch on `threads` threads.
size_t conv_kernel_weights_floats(ConvKernel k, const Attrs& a, const Shape& x, const Shape& w, const Shape& y);
size_t conv_kernel_work_floats(ConvKernel k, const Attrs& a, const Shape& x, const Shape& w, const Shape& y,
                               int threads);
void conv_kernel_transform(ConvKernel k, const Attrs& a, const Shape& x, TensorView w, const Shape& y, float* u,
                           int threads = 1);

// y = relu?(conv(x, w) + bias? + residual?) on kernel k, from its transformed weights u (where it
// has them); scratch holds conv_kernel_work_floats floats.
void conv_kernel_forward(ConvKernel k, const Attrs& a, TensorView x, TensorView w, const float* u, const float* bias,
                         const float* residual, TensorView y, float* scratch, int threads);

}  // namespace engine::native
