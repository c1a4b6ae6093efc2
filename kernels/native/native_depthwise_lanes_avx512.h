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
    __mmask16 weight_high;      // lanes of channel 3, whose taps 5-8 are weights 32-35 (tap >= 5)
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
    l.weight_high = l.channels == 4 ? __mmask16(0xf000) : __mmask16(0);
    for (int tap = 0; tap < 9; ++tap) {
        alignas(64) int32_t input[16], weight[16];
        unsigned low = 0, high = 0;
        for (int64_t lane = 0; lane < 16; ++lane) {
            const int64_t g = lane / P, o = lane % P;
            const int64_t ih = o / d.OW * stride + tap / 3 - 1, iw = o % d.OW * stride + tap % 3 - 1;
            const int64_t at = g * plane + ih * d.W + iw;
            const bool inside = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
            input[lane] = inside ? int32_t(at % 32) : 0;
            if (inside) (at < 32 ? low : high) |= 1u << lane;
            weight[lane] = int32_t(g * 9 + tap);
        }
        l.input[tap] = _mm512_load_si512(input);
        l.low[tap] = __mmask16(low);
        l.high[tap] = __mmask16(high);
        l.weight[tap] = _mm512_load_si512(weight);
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

// Tap `tap`'s weight for every lane, from the group's 9 x channels weights wv (three zmm).
inline __m512 tap_weight(const Lanes& l, const __m512* wv, int tap) {
    __m512 weight = _mm512_permutex2var_ps(wv[0], l.weight[tap], wv[1]);
    if (tap >= 5) weight = _mm512_mask_permutexvar_ps(weight, l.weight_high, l.weight[tap], wv[2]);
    return weight;
}

// The group's 9 x channels weights from w (its first channel's), as three zmm.
inline void load_group_weights(const Lanes& l, const float* w, __m512* wv) {
    const int64_t n = 9 * l.channels;
    for (int i = 0; i < 3; ++i) wv[i] = _mm512_maskz_loadu_ps(first(n - 16 * i), w + 16 * i);
}

}  // namespace engine::native
