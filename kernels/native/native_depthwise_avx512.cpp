// Depthwise 3x3 convolution on AVX-512 for output planes of 4, 8 or 16 pixels (MobileNet's 2x2 and
// 4x4 layers), where the AVX2 kernel copies each plane into a padded buffer and then runs its rows
// 4 wide or one pixel at a time. Here each lane is one (channel, output pixel)
// (native_depthwise_lanes_avx512.h). For each tap one permute gathers every lane's input from those registers, zero
// where the tap falls in the padding, and the nine taps are summed as the AVX2 kernel sums them (fused multiply-adds
// from the bias, in tap order), so the results are the same to the bit.
#include <immintrin.h>
#include <omp.h>

#include <cstdint>

#include "native_depthwise.h"
#include "native_depthwise_lanes_avx512.h"

namespace engine::native {

namespace {

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
    } else {  // this group's weights, and each lane's bias
        load_group_weights(l, w, wv);
        acc = bias ? _mm512_maskz_permutexvar_ps(0xffff, l.channel, _mm512_maskz_loadu_ps(first(l.channels), bias))
                   : _mm512_setzero_ps();
    }
#pragma GCC unroll 9
    for (int tap = 0; tap < 9; ++tap) {
        __m512 weight;
        if constexpr (OneChannel)
            weight = _mm512_set1_ps(w[tap]);
        else
            weight = tap_weight(l, wv, tap);
        acc = _mm512_fmadd_ps(weight, tap_input<Wide>(l, z, tap), acc);
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
