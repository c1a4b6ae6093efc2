// Gradients of a depthwise 3x3 convolution on AVX-512 for output planes of 4, 8 or 16 pixels, in the
// forward's lane geometry (native_depthwise_lanes_avx512.h): a group's output gradient is one zmm,
// its input and input gradient one or four. Where the plane kernel (native_depthwise_backward.cpp)
// copies each plane into padded buffers and runs 4-wide rows as scalars, this gathers every tap in
// registers with one permute.
// - Input gradient: each input pixel sums its taps' output gradients times their weights in the plane
//   kernel's order (stride 1: fused multiply-adds onto the gradient already there, taps in order;
//   stride 2: from zero, taps in order, then added), so it is the same to the bit.
// - Weight (and bias) gradient: per channel, the tap's input times the output gradient, summed in
//   vectors over a thread's samples, then across the lanes: not the plane kernel's order, so equal
//   within rounding, the same for a thread count, as every weight gradient here.
#include <immintrin.h>

#include <cstdint>

#include "native_depthwise.h"
#include "native_depthwise_lanes_avx512.h"

namespace engine::native {

namespace {

// Where each input-gradient lane takes its output gradients from, for each tap: the group's input
// planes are `zmms` zmm (one or four), lane l of zmm j being input float 16 j + l.
struct GradLanes {
    int zmms;
    __m512i from[4][9];           // the output gradient (lane of the group's zmm) it takes
    __mmask16 takes[4][9];        // lanes the tap reaches (the rest take none)
    __m512i weight[4][9];         // its weight, of the group's 9 x channels
    __mmask16 weight_high[4][9];  // lanes whose weight index is 32 or more
};

GradLanes grad_lanes_of(const ConvDims& d, int64_t stride) {
    GradLanes g;
    const int64_t P = d.OH * d.OW, plane = d.H * d.W, channels = 16 / P;
    g.zmms = int(channels * plane / 16);
    for (int j = 0; j < g.zmms; ++j)
        for (int tap = 0; tap < 9; ++tap) {
            alignas(64) int32_t from[16], weight[16];
            unsigned takes = 0, high = 0;
            for (int64_t lane = 0; lane < 16; ++lane) {
                const int64_t e = 16 * j + lane, c = e / plane, ih = e % plane / d.W, iw = e % d.W;
                // Input (ih, iw) is tap (kh, kw) of output (oh, ow) where ih = oh s + kh - 1.
                const int64_t rh = ih + 1 - tap / 3, rw = iw + 1 - tap % 3;
                const bool reached = rh >= 0 && rw >= 0 && rh % stride == 0 && rw % stride == 0 && rh / stride < d.OH &&
                                     rw / stride < d.OW;
                from[lane] = reached ? int32_t(c * P + rh / stride * d.OW + rw / stride) : 0;
                if (reached) takes |= 1u << lane;
                weight[lane] = int32_t(c * 9 + tap);
                if (c * 9 + tap >= 32) high |= 1u << lane;
            }
            g.from[j][tap] = _mm512_load_si512(from);
            g.takes[j][tap] = __mmask16(takes);
            g.weight[j][tap] = _mm512_load_si512(weight);
            g.weight_high[j][tap] = __mmask16(high);
        }
    return g;
}

// Sums of each channel's lanes (P of them a channel), added to out[0 .. 16 / P).
inline void add_channel_sums(__m512 v, int64_t P, float* out) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    for (int64_t c = 0; c < 16 / P; ++c) {
        float sum = 0.0f;
        for (int64_t p = 0; p < P; ++p) sum += lanes[c * P + p];
        out[c] += sum;
    }
}

// Stride 2 takes input planes four times the output's: four zmm a group (Wide).
template <int Stride>
void backward(const ConvDims& d, const Lanes& l, const GradLanes& g, const float* x, const float* w, const float* gy,
              float* gx, bool gx_fresh, float* gw, float* gb, int64_t n0, int64_t n1) {
    constexpr bool Wide = Stride == 2;
    const int64_t P = d.OH * d.OW, groups = d.K / l.channels, in_floats = l.in_floats;
    for (int64_t group = 0; group < groups; ++group) {
        const int64_t k = group * l.channels;
        __m512 wv[3];
        load_group_weights(l, w + 9 * k, wv);
        __m512 weights[4][9];  // each input-gradient lane's weight per tap (one zmm of input where not Wide)
        for (int j = 0; j < g.zmms; ++j)
            for (int tap = 0; tap < 9; ++tap)
                weights[j][tap] = group_weights(wv, g.weight[j][tap], g.weight_high[j][tap]);
        __m512 acc[9], bias_acc = _mm512_setzero_ps();
        for (auto& a : acc) a = _mm512_setzero_ps();
        for (int64_t n = n0; n < n1; ++n) {
            const int64_t at = n * groups + group;  // the group's place in sample n
            const __m512 go = _mm512_loadu_ps(gy + at * 16);
            if (gw) {
                __m512 z[4];
#pragma GCC unroll 4
                for (int i = 0; i < (Wide ? 4 : 1); ++i) z[i] = _mm512_loadu_ps(x + at * in_floats + 16 * i);
#pragma GCC unroll 9
                for (int tap = 0; tap < 9; ++tap) acc[tap] = _mm512_fmadd_ps(go, tap_input<Wide>(l, z, tap), acc[tap]);
            }
            if (gb) bias_acc = _mm512_add_ps(bias_acc, go);
            if (!gx) continue;
#pragma GCC unroll 4
            for (int j = 0; j < (Wide ? 4 : 1); ++j) {
                float* out = gx + at * in_floats + 16 * j;
                const __m512 before = gx_fresh ? _mm512_setzero_ps() : _mm512_loadu_ps(out);
                __m512 sum = Stride == 1 ? before : _mm512_setzero_ps();
#pragma GCC unroll 9
                for (int tap = 0; tap < 9; ++tap)
                    sum = _mm512_fmadd_ps(weights[j][tap],
                                          _mm512_maskz_permutexvar_ps(g.takes[j][tap], g.from[j][tap], go), sum);
                _mm512_storeu_ps(out, Stride == 1 ? sum : _mm512_add_ps(before, sum));
            }
        }
        if (gw)
            for (int tap = 0; tap < 9; ++tap) {
                float sums[4] = {};
                add_channel_sums(acc[tap], P, sums);
                for (int64_t c = 0; c < l.channels; ++c) gw[(k + c) * 9 + tap] += sums[c];
            }
        if (gb) add_channel_sums(bias_acc, P, gb + k);
    }
}

}  // namespace

void depthwise_small_backward_avx512(const Attrs& a, TensorView x, TensorView w, TensorView gy, float* gx,
                                     bool gx_fresh, float* gw, float* gb, int64_t n0, int64_t n1) {
    const ConvDims d = conv_dims(a, x.shape, w.shape, gy.shape);
    const Lanes l = lanes_of(d, a.stride[0]);
    const GradLanes g = grad_lanes_of(d, a.stride[0]);
    auto run = a.stride[0] == 1 ? backward<1> : backward<2>;
    run(d, l, g, x.data, w.data, gy.data, gx, gx_fresh, gw, gb, n0, n1);
}

}  // namespace engine::native
