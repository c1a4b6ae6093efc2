// Depthwise 3x3, stride 1, padding 1, on output planes of 4, 8 or 16 pixels (MobileNet's 2x2 and 4x4
// layers), on AVX2. The plane kernel (native_depthwise.cpp) pads each plane and runs rows of 4 or 2
// pixels, a plane at a time: 105 ns a 4x4 plane and 73 ns a 2x2 one on a Zen 3 EPYC, against 12 and
// 6 ns for this kernel (8 x 512 channels, one thread). Each ymm here is 8 consecutive outputs of the
// NCHW tensor (two 2x2 channels, one 2x4 or 4x2, or half a 4x4), and a tap is one load at the tap's
// offset in that same flat layout, with the lanes whose tap falls outside their own plane zeroed: they
// read the zero border without a padded copy. (At the tensor's two ends, where such a load would reach
// past it, a masked load, which never faults on the lanes masked off.) The plane's shape is a template
// argument, so that the taps' offsets and masks are constants. The sums are the plane kernel's, in its
// order (bias, the nine taps by FMA, residual, ReLU), so the values are the same to the bit.
#include <immintrin.h>

#include "native_depthwise.h"
#include "native_simd.h"

namespace engine::native {

namespace {

// All-ones in the lanes whose tap lies inside their own H x W plane, for each ymm of a plane (two in
// a 4x4 plane, one elsewhere) and each tap.
template <int H, int W>
struct TapMasks {
    static constexpr int positions = H * W >= 8 ? H * W / 8 : 1;
    alignas(32) int32_t inside[positions][9][8] = {};
    constexpr TapMasks() {
        for (int position = 0; position < positions; ++position)
            for (int tap = 0; tap < 9; ++tap)
                for (int lane = 0; lane < 8; ++lane) {
                    const int pixel = (8 * position + lane) % (H * W), ih = pixel / W + tap / 3 - 1,
                              iw = pixel % W + tap % 3 - 1;
                    inside[position][tap][lane] = ih >= 0 && ih < H && iw >= 0 && iw < W ? -1 : 0;
                }
    }
};

// Tap `tap` of the channels of the ymm starting at channel k: one channel's weight in every lane, or
// (2x2 planes) channel k's in the low four lanes and k + 1's in the high four.
inline __m256 tap_weights(const float* w, int64_t k, int tap, bool two_channels) {
    const __m128 low = _mm_broadcast_ss(w + k * 9 + tap);
    return two_channels ? _mm256_set_m128(_mm_broadcast_ss(w + (k + 1) * 9 + tap), low) : _mm256_set_m128(low, low);
}

// Whether every lane of a tap's load lies inside its plane (the center tap, and the rows and columns
// a ymm's own plane covers), so that the load needs no mask.
template <int H, int W>
constexpr bool all_inside(const TapMasks<H, W>& masks, int position, int tap) {
    for (int lane = 0; lane < 8; ++lane)
        if (!masks.inside[position][tap][lane]) return false;
    return true;
}

// G consecutive channel groups (a group: the channels of one ymm position, 1 or 2), from group q0 of
// the tensor counted across samples, whose sums run as independent chains side by side: each is nine
// dependent FMAs, so one chain alone would wait on the FMA latency. Edge: a group at either end.
template <int H, int W, int G, bool Edge>
inline void channel_groups(const float* x, const float* w, const float* bias, const float* residual, bool relu,
                           float* y, int64_t groups, int64_t q0) {
    static constexpr TapMasks<H, W> masks;
    constexpr bool two_channels = H * W == 4;
    constexpr int positions = masks.positions, channels = two_channels ? 2 : 1, chains = G * positions;
    int64_t k[G];
    __m256 acc[chains];
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
        k[g] = (q0 + g) % groups * channels;
        const __m128 b0 = _mm_set1_ps(bias ? bias[k[g]] : 0.0f);
        const __m256 b = _mm256_set_m128(two_channels ? _mm_set1_ps(bias ? bias[k[g] + 1] : 0.0f) : b0, b0);
#pragma GCC unroll 2
        for (int p = 0; p < positions; ++p) acc[g * positions + p] = b;
    }
    const float* in = x + q0 * channels * H * W;
#pragma GCC unroll 9
    for (int tap = 0; tap < 9; ++tap) {
        const int64_t offset = (tap / 3 - 1) * W + tap % 3 - 1;
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) {
            const __m256 weights = tap_weights(w, k[g], tap, two_channels);
#pragma GCC unroll 2
            for (int p = 0; p < positions; ++p) {
                const float* at = in + (g * positions + p) * 8 + offset;
                const __m256i inside = _mm256_load_si256(reinterpret_cast<const __m256i*>(masks.inside[p][tap]));
                __m256 input;
                if (all_inside(masks, p, tap))
                    input = _mm256_loadu_ps(at);
                else if (Edge)
                    input = _mm256_maskload_ps(at, inside);
                else
                    input = _mm256_and_ps(_mm256_loadu_ps(at), _mm256_castsi256_ps(inside));
                acc[g * positions + p] = _mm256_fmadd_ps(weights, input, acc[g * positions + p]);
            }
        }
    }
    const int64_t out = q0 * channels * H * W;
#pragma GCC unroll 8
    for (int c = 0; c < chains; ++c)
        store_epilogue(y + out + 8 * c, acc[c], residual ? residual + out + 8 * c : nullptr, relu);
}

template <int H, int W>
void small_planes(const ConvDims& d, const float* x, const float* w, const float* bias, const float* residual,
                  bool relu, float* y, int threads) {
    constexpr int G = kDepthwiseChains / TapMasks<H, W>::positions;
    const int64_t groups = d.K / (H * W == 4 ? 2 : 1), total = d.N * groups, blocks = total / G;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t b = 0; b < blocks; ++b) {
        if (b == 0 || (b == blocks - 1 && blocks * G == total))
            channel_groups<H, W, G, true>(x, w, bias, residual, relu, y, groups, b * G);
        else
            channel_groups<H, W, G, false>(x, w, bias, residual, relu, y, groups, b * G);
    }
    for (int64_t q = blocks * G; q < total; ++q)  // the last few, on the calling thread
        channel_groups<H, W, 1, true>(x, w, bias, residual, relu, y, groups, q);
}

}  // namespace

bool depthwise_small_fits(const Attrs& a, const ConvDims& d) {
    const bool shape = (d.H == 2 && d.W == 2 && d.K % 2 == 0) || (d.H == 2 && d.W == 4) || (d.H == 4 && d.W == 2) ||
                       (d.H == 4 && d.W == 4);
    return depthwise3x3_fits(a, d) && a.stride[0] == 1 && d.OH == d.H && d.OW == d.W && shape;
}

void depthwise_small_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                             TensorView y, int threads) {
    const ConvDims d = conv_dims(a, x.shape, w.shape, y.shape);
    const bool relu = a.fused_relu;
    if (d.H == 2 && d.W == 2)
        small_planes<2, 2>(d, x.data, w.data, bias, residual, relu, y.data, threads);
    else if (d.H == 2)
        small_planes<2, 4>(d, x.data, w.data, bias, residual, relu, y.data, threads);
    else if (d.W == 2)
        small_planes<4, 2>(d, x.data, w.data, bias, residual, relu, y.data, threads);
    else
        small_planes<4, 4>(d, x.data, w.data, bias, residual, relu, y.data, threads);
}

}  // namespace engine::native
