// Depthwise 3x3 convolution on AVX-512 for output planes of 4, 8 or 16 pixels (MobileNet's 2x2 and
// 4x4 layers), where the AVX2 kernel copies each plane into a padded buffer and then runs its rows
// 4 wide or one pixel at a time. Here each lane of a zmm is one (channel, output pixel) of a group
// of 16 / pixels channels, whose input planes are one zmm (stride 1) or four (stride 2). For each
// tap one permute gathers every lane's input from those registers, zero where the tap falls in the
// padding, and the nine taps are summed as the AVX2 kernel sums them (fused multiply-adds from the
// bias, in tap order), so the results are the same to the bit.
#include <immintrin.h>
#include <omp.h>

#include <cstdint>

#include "native_depthwise.h"

namespace engine::native {

namespace {

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

Lanes lanes_of(const ConvDims& d, int64_t stride) {
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

inline __mmask16 first(int64_t n) { return n <= 0 ? 0 : n >= 16 ? 0xffff : __mmask16((1u << n) - 1); }

// Output channels [k, k + l.channels) of one sample: 16 outputs from the group's input planes x
// (64 floats where Wide, else 16).
template <bool OneChannel, bool Wide>
inline __m512 group(const Lanes& l, const float* x, const float* w, const float* bias) {
    __m512 z[4];
#pragma GCC unroll 4
    for (int i = 0; i < (Wide ? 4 : 1); ++i) z[i] = _mm512_loadu_ps(x + 16 * i);
    __m512 wv[3], acc;
    if constexpr (OneChannel) {
        acc = bias ? _mm512_set1_ps(*bias) : _mm512_setzero_ps();
    } else {  // this group's 9 x channels weights, and each lane's bias
        const int64_t n = 9 * l.channels;
        for (int i = 0; i < 3; ++i) wv[i] = _mm512_maskz_loadu_ps(first(n - 16 * i), w + 16 * i);
        acc = bias ? _mm512_maskz_permutexvar_ps(0xffff, l.channel, _mm512_maskz_loadu_ps(first(l.channels), bias))
                   : _mm512_setzero_ps();
    }
#pragma GCC unroll 9
    for (int tap = 0; tap < 9; ++tap) {
        __m512 in;
        if constexpr (Wide)
            in = _mm512_or_ps(_mm512_maskz_permutex2var_ps(l.low[tap], z[0], l.input[tap], z[1]),
                              _mm512_maskz_permutex2var_ps(l.high[tap], z[2], l.input[tap], z[3]));
        else
            in = _mm512_maskz_permutexvar_ps(l.low[tap], l.input[tap], z[0]);
        __m512 weight;
        if constexpr (OneChannel) {
            weight = _mm512_set1_ps(w[tap]);
        } else {
            weight = _mm512_permutex2var_ps(wv[0], l.weight[tap], wv[1]);
            if (tap >= 5) weight = _mm512_mask_permutexvar_ps(weight, l.weight_high, l.weight[tap], wv[2]);
        }
        acc = _mm512_fmadd_ps(weight, in, acc);
    }
    return acc;
}

template <bool OneChannel, bool Wide>
void forward(const ConvDims& d, const Lanes& l, const float* x, const float* w, const float* bias,
             const float* residual, bool relu, float* y, int threads) {
    const int64_t groups = d.K / l.channels, per_group_in = l.in_floats, per_group_out = 16;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t i = 0; i < d.N * groups; ++i) {
        const int64_t k = i % groups * l.channels;
        __m512 v = group<OneChannel, Wide>(l, x + i * per_group_in, w + 9 * k, bias ? bias + k : nullptr);
        if (residual) v = _mm512_add_ps(v, _mm512_loadu_ps(residual + i * per_group_out));
        if (relu) v = _mm512_maskz_max_ps(0xffff, v, _mm512_setzero_ps());  // maskz: GCC 12 warns on the plain form
        _mm512_storeu_ps(y + i * per_group_out, v);
    }
}

}  // namespace

void depthwise_small_forward_avx512(const Attrs& a, TensorView x, TensorView w, const float* bias,
                                    const float* residual, TensorView y, int threads) {
    const ConvDims d = conv_dims(a, x.shape, w.shape, y.shape);
    const Lanes l = lanes_of(d, a.stride[0]);
    const bool one = l.channels == 1, wide = l.in_floats == 64;
    auto run = one ? (wide ? forward<true, true> : forward<true, false>)
                   : (wide ? forward<false, true> : forward<false, false>);
    run(d, l, x.data, w.data, bias, residual, a.fused_relu, y.data, threads);
}

}  // namespace engine::native
