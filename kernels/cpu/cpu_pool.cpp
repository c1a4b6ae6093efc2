#include "cpu_pool.h"

#include <algorithm>

namespace engine::cpu {

bool mixed_pool_tiled(const Attrs& a, TensorView x, float alpha, TensorView y) {
    const int64_t KH = a.kernel[0], KW = a.kernel[1];
    const bool tiled = a.stride[0] == KH && a.stride[1] == KW && a.dilation[0] == 1 && a.dilation[1] == 1 &&
                       std::all_of(a.pad, a.pad + 4, [](int64_t p) { return p == 0; }) && !a.ceil_mode;
    const int64_t H = x.shape[2], W = x.shape[3], OH = y.shape[2], OW = y.shape[3];
    if (!tiled || OH * KH > H || OW * KW > W) return false;
    const int64_t planes = x.shape[0] * x.shape[1];
    const float inv_count = 1.0f / float(KH * KW);
    for (int64_t p = 0; p < planes; ++p) {
        const float* xp = x.data + p * H * W;
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                const float* win = xp + oh * KH * W + ow * KW;
                float mx = win[0], sum = 0.0f;
                for (int64_t i = 0; i < KH; ++i)
                    for (int64_t j = 0; j < KW; ++j) {
                        mx = std::max(mx, win[i * W + j]);
                        sum += win[i * W + j];
                    }
                y[(p * OH + oh) * OW + ow] = alpha * mx + (1 - alpha) * (sum * inv_count);
            }
    }
    return true;
}

}  // namespace engine::cpu
