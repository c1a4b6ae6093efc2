// Zero-bordered copies of input planes, so that 3x3 kernels read every tap without a border test.
#pragma once
#include <cstdint>

namespace engine::native {

// An H x W plane into (H + 2) x (W + 2) floats with a one-element zero border.
void pad_plane(const float* x, int64_t H, int64_t W, float* out);

// The same (W even), each padded row stored as its even columns, then its odd ones: padded column
// j at j / 2, or at (W + 2) / 2 + j / 2. Stride-2 windows and 2-wide Winograd tiles then read
// consecutive floats for every tap.
void pad_plane_deinterleaved(const float* x, int64_t H, int64_t W, float* out);

// The same (W a multiple of 4) in four phases: padded column j at (j % 4) * (W / 4 + 1) + j / 4.
// The 6-wide windows of Winograd F(4x4, 3x3) tiles, four columns apart, then read consecutive
// floats for every column.
void pad_plane_deinterleaved4(const float* x, int64_t H, int64_t W, float* out);

// Either, for a 3x3 convolution of stride 1 or 2.
inline void pad_plane_for_stride(int stride, const float* x, int64_t H, int64_t W, float* out) {
    if (stride == 1)
        pad_plane(x, H, W, out);
    else
        pad_plane_deinterleaved(x, H, W, out);
}

}  // namespace engine::native
