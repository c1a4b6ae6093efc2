// Both gradients work on zero-bordered planes, so that no tap needs a bounds test. At any stride, a
// tap's weight gradient is a dot product of the output gradient with the shifted padded input, and
// its input gradient a scaled add into the shifted padded gradient, cropped at the end; stride-1 3x3
// convolutions (nearly all of MobileNet's) have single-pass kernels.
#include "native_depthwise_backward.h"

#include <algorithm>

#include "native_simd.h"

namespace engine::native {

// The padded input, then its gradient (strided) or the output gradient with its lead (stride 1).
size_t depthwise_backward_scratch(const DepthwisePlane& p) { return size_t(3 * p.padded_h() * p.padded_w()); }

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

// Stride 1, 3x3 taps (any dilation). The output gradient is laid out at the padded width, with
// zeros past column OW and `lead` zeros before it, so that both gradients are single passes with no
// bounds tests:
// - a tap's weight gradient is a flat dot product over OH rows of the padded width, the zero
//   columns cancelling the terms that wrap into the next row; the nine taps share one pass and
//   keep nine independent accumulators;
// - an input pixel's gradient gathers its nine taps' output gradients at fixed offsets.
constexpr int kTaps = 9;

int64_t lead_of(const DepthwisePlane& p) {
    return (p.KH - 1) * p.dilation_h * p.padded_w() + (p.KW - 1) * p.dilation_w;
}

void backward_stride1_3x3(const DepthwisePlane& p, const float* w, const float* gy, float* gw, float* gx,
                          const float* xp, float* gbuf) {
    const int64_t Wp = p.padded_w(), lead = lead_of(p), len = (p.OH - 1) * Wp + p.OW;
    std::fill(gbuf, gbuf + lead + p.padded_h() * Wp, 0.0f);
    float* g = gbuf + lead;
    for (int64_t oh = 0; oh < p.OH; ++oh) std::copy(gy + oh * p.OW, gy + (oh + 1) * p.OW, g + oh * Wp);
    int64_t at[kTaps];
    for (int t = 0; t < kTaps; ++t) at[t] = (t / 3) * p.dilation_h * Wp + (t % 3) * p.dilation_w;
    if (gw) {
        __m256 acc[kTaps];
        for (auto& a : acc) a = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= len; j += 8) {
            const __m256 gv = _mm256_loadu_ps(g + j);
            for (int t = 0; t < kTaps; ++t) acc[t] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(xp + at[t] + j), acc[t]);
        }
        for (int t = 0; t < kTaps; ++t) {
            float sum = horizontal_sum(acc[t]);
            for (int64_t k = j; k < len; ++k) sum += g[k] * xp[at[t] + k];
            gw[t] += sum;
        }
    }
    if (gx) {
        __m256 wv[kTaps];
        for (int t = 0; t < kTaps; ++t) wv[t] = _mm256_broadcast_ss(w + t);
        const int64_t rows = rows_inside(p), cols = cols_inside(p);
        for (int64_t ih = 0; ih < rows; ++ih) {
            // Padded position i receives output position i - at[t] from tap t.
            const float* src = g + (ih + p.pad_top) * Wp + p.pad_left;
            float* dst = gx + ih * p.W;
            int64_t iw = 0;
            for (; iw + 8 <= cols; iw += 8) {
                __m256 sum = _mm256_loadu_ps(dst + iw);
                for (int t = 0; t < kTaps; ++t) sum = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(src + iw - at[t]), sum);
                _mm256_storeu_ps(dst + iw, sum);
            }
            for (; iw < cols; ++iw)
                for (int t = 0; t < kTaps; ++t) dst[iw] += w[t] * src[iw - at[t]];
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
    if (gw) pad(p, x, xp);
    if (p.stride_h == 1 && p.stride_w == 1 && p.KH == 3 && p.KW == 3)
        return backward_stride1_3x3(p, w, gy, gw, gx, xp, scratch + plane);
    float* gxp = gx ? scratch + plane : nullptr;
    if (gxp) std::fill(gxp, gxp + plane, 0.0f);
    backward_strided(p, w, gy, gw, gxp, xp);
    if (gxp) crop_add(p, gxp, gx);
}

}  // namespace engine::native
