#include "native_im2col.h"

#include <algorithm>
#include <cstring>

namespace engine::native {

namespace {

// Output columns [lo, hi) whose input column ow*stride - pad + offset lies inside [0, W).
void valid_columns(int64_t OW, int64_t W, int64_t stride, int64_t start, int64_t& lo, int64_t& hi) {
    lo = start >= 0 ? 0 : (-start + stride - 1) / stride;
    hi = start >= W ? 0 : std::min(OW, (W - 1 - start) / stride + 1);
    if (hi < lo) hi = lo;
}

}  // namespace

void im2col(const Attrs& a, const ConvDims& d, const float* x, float* col) {
    const int64_t sw = a.stride[1];
    for (int64_t c = 0; c < d.Cg; ++c)
        for (int64_t kh = 0; kh < d.KH; ++kh)
            for (int64_t kw = 0; kw < d.KW; ++kw) {
                float* row = col + ((c * d.KH + kh) * d.KW + kw) * d.P;
                const float* xc = x + c * d.H * d.W;
                const int64_t start = kw * a.dilation[1] - a.pad[1];
                int64_t lo, hi;
                valid_columns(d.OW, d.W, sw, start, lo, hi);
                for (int64_t oh = 0; oh < d.OH; ++oh) {
                    const int64_t ih = oh * a.stride[0] - a.pad[0] + kh * a.dilation[0];
                    float* out = row + oh * d.OW;
                    if (ih < 0 || ih >= d.H) {
                        std::fill(out, out + d.OW, 0.0f);
                        continue;
                    }
                    const float* src = xc + ih * d.W + start;
                    std::fill(out, out + lo, 0.0f);
                    if (sw == 1)
                        std::memcpy(out + lo, src + lo, sizeof(float) * (hi - lo));
                    else
                        for (int64_t ow = lo; ow < hi; ++ow) out[ow] = src[ow * sw];
                    std::fill(out + hi, out + d.OW, 0.0f);
                }
            }
}

void col2im_add(const Attrs& a, const ConvDims& d, const float* col, float* gx) {
    const int64_t sw = a.stride[1];
    for (int64_t c = 0; c < d.Cg; ++c)
        for (int64_t kh = 0; kh < d.KH; ++kh)
            for (int64_t kw = 0; kw < d.KW; ++kw) {
                const float* row = col + ((c * d.KH + kh) * d.KW + kw) * d.P;
                float* gc = gx + c * d.H * d.W;
                const int64_t start = kw * a.dilation[1] - a.pad[1];
                int64_t lo, hi;
                valid_columns(d.OW, d.W, sw, start, lo, hi);
                for (int64_t oh = 0; oh < d.OH; ++oh) {
                    const int64_t ih = oh * a.stride[0] - a.pad[0] + kh * a.dilation[0];
                    if (ih < 0 || ih >= d.H) continue;
                    float* dst = gc + ih * d.W + start;
                    const float* src = row + oh * d.OW;
                    for (int64_t ow = lo; ow < hi; ++ow) dst[ow * sw] += src[ow];
                }
            }
}

}  // namespace engine::native
