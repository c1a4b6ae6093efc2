// Both gradients work on a zero-bordered copy of the plane, so that no tap needs a bounds test: the
// weight gradient of a tap is a dot product of the output gradient with the shifted input, the input
// gradient a scaled add of it into the shifted padded gradient, which is cropped at the end.
#include "cpu_depthwise_backward.h"

#include <algorithm>

namespace engine::cpu {

// The padded input, its gradient and, at stride 1, the output gradient at the padded width.
size_t depthwise_backward_scratch(const DepthwisePlane& p) { return size_t((2 * p.padded_h() + p.OH) * p.padded_w()); }

namespace {

// Input pixel (ih, iw) sits at (ih + pad_top, iw + pad_left) of the padded plane; rows and columns
// past the padded plane are read by no window.
int64_t rows_inside(const DepthwisePlane& p) { return std::clamp(p.padded_h() - p.pad_top, int64_t(0), p.H); }
int64_t cols_inside(const DepthwisePlane& p) { return std::clamp(p.padded_w() - p.pad_left, int64_t(0), p.W); }

void pad(const DepthwisePlane& p, const float* x, float* xp) {
    const int64_t Wp = p.padded_w(), rows = rows_inside(p), cols = cols_inside(p);
    std::fill(xp, xp + p.padded_h() * Wp, 0.0f);
    for (int64_t ih = 0; ih < rows; ++ih)
        std::copy(x + ih * p.W, x + ih * p.W + cols, xp + (ih + p.pad_top) * Wp + p.pad_left);
}

void crop_add(const DepthwisePlane& p, const float* gxp, float* gx) {
    const int64_t Wp = p.padded_w(), rows = rows_inside(p), cols = cols_inside(p);
    for (int64_t ih = 0; ih < rows; ++ih) {
        const float* src = gxp + (ih + p.pad_top) * Wp + p.pad_left;
        for (int64_t iw = 0; iw < cols; ++iw) gx[ih * p.W + iw] += src[iw];
    }
}

// Stride 1: with the output gradient also laid out at the padded width (zeros past column OW), a
// tap's whole sum is one flat dot product, and its input gradient one flat scaled add, over
// OH rows of the padded width: the zero columns cancel the terms that wrap into the next row.
void backward_stride1(const DepthwisePlane& p, const float* w, const float* gy, float* gw, float* gxp,
                      const float* xp, float* gyp) {
    const int64_t Wp = p.padded_w(), len = (p.OH - 1) * Wp + p.OW;
    std::fill(gyp, gyp + p.OH * Wp, 0.0f);
    for (int64_t oh = 0; oh < p.OH; ++oh) std::copy(gy + oh * p.OW, gy + (oh + 1) * p.OW, gyp + oh * Wp);
    const float* __restrict g = gyp;
    for (int64_t kh = 0; kh < p.KH; ++kh)
        for (int64_t kw = 0; kw < p.KW; ++kw) {
            const int64_t at = kh * p.dilation_h * Wp + kw * p.dilation_w;
            if (gw) {
                const float* __restrict in = xp + at;
                float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int64_t j = 0; j < len; ++j) acc += g[j] * in[j];
                gw[kh * p.KW + kw] += acc;
            }
            if (gxp) {
                float* __restrict out = gxp + at;
                const float tap = w[kh * p.KW + kw];
#pragma omp simd
                for (int64_t j = 0; j < len; ++j) out[j] += g[j] * tap;
            }
        }
}

// Any stride: row by row.
void backward_strided(const DepthwisePlane& p, const float* w, const float* gy, float* gw, float* gxp,
                      const float* xp) {
    const int64_t Wp = p.padded_w(), sw = p.stride_w;
    for (int64_t kh = 0; kh < p.KH; ++kh)
        for (int64_t kw = 0; kw < p.KW; ++kw) {
            float acc = 0.0f;
            const float tap = w[kh * p.KW + kw];
            for (int64_t oh = 0; oh < p.OH; ++oh) {
                const int64_t at = (oh * p.stride_h + kh * p.dilation_h) * Wp + kw * p.dilation_w;
                const float* g = gy + oh * p.OW;
                if (gw)
                    for (int64_t ow = 0; ow < p.OW; ++ow) acc += g[ow] * xp[at + ow * sw];
                if (gxp)
                    for (int64_t ow = 0; ow < p.OW; ++ow) gxp[at + ow * sw] += g[ow] * tap;
            }
            if (gw) gw[kh * p.KW + kw] += acc;
        }
}

}  // namespace

void depthwise_plane_backward(const DepthwisePlane& p, const float* x, const float* w, const float* gy, float* gx,
                              float* gw, float* scratch) {
    const int64_t plane = p.padded_h() * p.padded_w();
    float* xp = scratch;
    float* gxp = gx ? scratch + plane : nullptr;
    if (gw) pad(p, x, xp);
    if (gxp) std::fill(gxp, gxp + plane, 0.0f);
    if (p.stride_h == 1 && p.stride_w == 1) backward_stride1(p, w, gy, gw, gxp, xp, scratch + 2 * plane);
    else backward_strided(p, w, gy, gw, gxp, xp);
    if (gxp) crop_add(p, gxp, gx);
}

}  // namespace engine::cpu
