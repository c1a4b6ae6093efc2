// The lane geometry of the AVX-512 depthwise kernels for small output planes (4, 8 or 16 pixels),
// shared by the forward (native_depthwise_avx512.cpp) and the gradients
// (native_depthwise_backward_avx512.cpp). Each lane of a zmm is one (channel, output pixel) of a
// group of 16 / pixels channels, whose input planes are one zmm (stride 1) or four (stride 2).
// Only for files compiled with AVX-512.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "native_conv_dims.h"

namespace engine::native {

// What each lane reads for each tap, from the shapes alone.
struct Lanes {
    int64_t channels;           // per zmm: 1, 2 or 4
    int64_t in_floats;          // a group's input planes: 16 or 64
    __m512i input[9];           // the input float (mod 32) each lane reads
    __mmask16 low[9], high[9];  // lanes reading floats 0-31, 32-63; the rest read padding
    __m512i weight[9];          // the weight each lane takes, of the group's 9 x channels
    __mmask16 weight_high[9];   // lanes whose weight is past the first 32
    __m512i channel;            // each lane's channel in the group (for the bias)
};

inline Lanes lanes_of(const ConvDims& d, int64_t stride) {
    Lanes l;
    const int64_t P = d.OH * d.OW, plane = d.H * d.W;
    l.channels = 16 / P;
    l.in_floats = l.channels * plane;
    alignas(64) int32_t channel[16];
    for (int64_t lane = 0; lane < 16; ++lane) channel[lane] = int32_t(lane / P);
    l.channel = _mm512_load_si512(channel);
    // Built on every call, so with no divisions in the loops (they took 1 us a call).
    for (int tap = 0; tap < 9; ++tap) {
        alignas(64) int32_t input[16], weight[16];
        unsigned low = 0, high = 0, weight_high = 0;
        int lane = 0;
        for (int64_t g = 0; g < l.channels; ++g)
            for (int64_t oh = 0; oh < d.OH; ++oh)
                for (int64_t ow = 0; ow < d.OW; ++ow, ++lane) {
                    const int64_t ih = oh * stride + tap / 3 - 1, iw = ow * stride + tap % 3 - 1;
                    const int64_t at = g * plane + ih * d.W + iw;
                    const bool inside = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
                    input[lane] = inside ? int32_t(at % 32) : 0;
                    if (inside) (at < 32 ? low : high) |= 1u << lane;
                    weight[lane] = int32_t(g * 9 + tap);
                    if (g * 9 + tap >= 32) weight_high |= 1u << lane;
                }
        l.input[tap] = _mm512_load_si512(input);
        l.low[tap] = __mmask16(low);
        l.high[tap] = __mmask16(high);
        l.weight[tap] = _mm512_load_si512(weight);
        l.weight_high[tap] = __mmask16(weight_high);
    }
    return l;
}

// The first n lanes (none for n <= 0, all from 16).
inline __mmask16 first(int64_t n) { return n <= 0 ? 0 : n >= 16 ? 0xffff : __mmask16((1u << n) - 1); }

// Tap `tap`'s input for every lane, from the group's input planes z (one zmm, or four where wide).
template <bool Wide>
inline __m512 tap_input(const Lanes& l, const __m512* z, int tap) {
    if constexpr (Wide)
        return _mm512_or_ps(_mm512_maskz_permutex2var_ps(l.low[tap], z[0], l.input[tap], z[1]),
                            _mm512_maskz_permutex2var_ps(l.high[tap], z[2], l.input[tap], z[3]));
    else
        return _mm512_maskz_permutexvar_ps(l.low[tap], l.input[tap], z[0]);
}

// The weights at `index` in the group's 9 x channels weights wv (three zmm): the first 32 by one
// two-source permute, and the lanes `past32` (those past them) from the third zmm.
inline __m512 group_weights(const __m512* wv, __m512i index, __mmask16 past32) {
    const __m512 weight = _mm512_permutex2var_ps(wv[0], index, wv[1]);
    return past32 ? _mm512_mask_permutexvar_ps(weight, past32, index, wv[2]) : weight;
}

// Tap `tap`'s weight for every lane.
inline __m512 tap_weight(const Lanes& l, const __m512* wv, int tap) {
    return group_weights(wv, l.weight[tap], l.weight_high[tap]);
}

// The group's 9 x channels weights from w (its first channel's), as three zmm.
inline void load_group_weights(const Lanes& l, const float* w, __m512* wv) {
    const int64_t n = 9 * l.channels;
    for (int i = 0; i < 3; ++i) wv[i] = _mm512_maskz_loadu_ps(first(n - 16 * i), w + 16 * i);
}

}  // namespace engine::native
