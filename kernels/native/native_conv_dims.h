// The geometry of one convolution and the small steps its GEMM paths share (native_conv_gemm.cpp,
// native_conv_backward.cpp, native_depthwise.cpp). Internal to the native backend.
#pragma once
#include <algorithm>
#include <cstdint>

#include "engine/backend.h"

namespace engine::native {

struct ConvDims {
    int64_t N, C, H, W, K, Cg, KH, KW, OH, OW, Kg, P, CKK;
};

inline ConvDims conv_dims(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    ConvDims d{x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], y[2], y[3], 0, 0, 0};
    d.Kg = d.K / a.groups;
    d.P = d.OH * d.OW;
    d.CKK = d.Cg * d.KH * d.KW;
    return d;
}

// 1x1, stride 1, no padding: the column matrix is the input itself.
inline bool conv_is_pointwise(const Attrs& a, const ConvDims& d) {
    return d.KH == 1 && d.KW == 1 && a.stride[0] == 1 && a.stride[1] == 1 && a.pad[0] == 0 && a.pad[1] == 0 &&
           a.pad[2] == 0 && a.pad[3] == 0;
}

// Rows [k0, k1) of y (row k at y + k * ld, `cols` elements) set to bias[k], or zero: where a GEMM
// then accumulates the product.
inline void conv_start_rows(float* y, const float* bias, int64_t k0, int64_t k1, int64_t cols, int64_t ld) {
    for (int64_t k = k0; k < k1; ++k) std::fill(y + k * ld, y + k * ld + cols, bias ? bias[k] : 0.0f);
}

// y = relu?(y + residual?) in place over `rows` rows of `cols` elements, `ld` apart, from element
// `at` of y and of residual (which has y's layout), for the paths whose kernels have no epilogue of
// their own. They call it on the block they have just written, while it is still in cache.
inline void conv_epilogue(const float* residual, bool relu, float* y, int64_t at, int64_t rows, int64_t cols,
                          int64_t ld) {
    if (!residual && !relu) return;
    for (int64_t r = 0; r < rows; ++r) {
        float* __restrict out = y + at + r * ld;
        if (residual) {
            const float* __restrict add = residual + at + r * ld;
            for (int64_t i = 0; i < cols; ++i) out[i] += add[i];
        }
        if (relu)
            for (int64_t i = 0; i < cols; ++i) out[i] = out[i] > 0.0f ? out[i] : 0.0f;
    }
}

}  // namespace engine::native
