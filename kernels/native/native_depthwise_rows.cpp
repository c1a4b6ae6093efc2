// Depthwise 3x3, stride 1, padding 1, on planes whose rows are whole ymm (8, 16 or 32 pixels wide:
// MobileNet's 32x32 to 8x8 layers), on AVX2. The plane kernel (native_depthwise.cpp) copies each plane
// into a zero-bordered buffer first, which took a third of its time (220 ns a 16x16 plane on a Zen 3
// EPYC). Here each ymm of output reads its taps from the plane itself: a tap on the row above the
// first or below the last is the zero border, and a tap one column left of a row's first ymm or right
// of its last is a masked load with that lane off (which never faults, at the tensor's ends too).
// Eight ymm of one plane are summed side by side as independent chains. The sums are the plane
// kernel's, in its order: the bias, then the nine taps by FMA (a border tap as FMA with zero, as the
// plane kernel adds the padding's zeros), the residual, ReLU; so the values are the same to the bit.
#include <immintrin.h>

#include "native_depthwise.h"
#include "native_simd.h"

namespace engine::native {

namespace {

// Ymm [p0, p0 + Chains) of one plane of W-wide rows (ymm p: row p / (W / 8), segment p % (W / 8)).
template <int W, int Chains>
inline void row_chains(const float* x, const float* w, __m256 bias, int64_t H, int64_t p0, const float* residual,
                       bool relu, float* y) {
    constexpr int64_t segments = W / 8;
    const __m256 zero = _mm256_setzero_ps();
    const __m256i not_first = _mm256_setr_epi32(0, -1, -1, -1, -1, -1, -1, -1);
    const __m256i not_last = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
    __m256 acc[Chains];
    bool top[Chains], bottom[Chains], left[Chains], right[Chains];
#pragma GCC unroll 8
    for (int j = 0; j < Chains; ++j) {
        const int64_t row = (p0 + j) / segments, segment = (p0 + j) % segments;
        top[j] = row == 0, bottom[j] = row == H - 1, left[j] = segment == 0, right[j] = segment == segments - 1;
        acc[j] = bias;
    }
#pragma GCC unroll 9
    for (int tap = 0; tap < 9; ++tap) {
        const int dh = tap / 3 - 1, dw = tap % 3 - 1;
        const __m256 weight = _mm256_broadcast_ss(w + tap);
#pragma GCC unroll 8
        for (int j = 0; j < Chains; ++j) {
            const float* at = x + (p0 + j) * 8 + dh * W + dw;
            __m256 input;
            if ((dh < 0 && top[j]) || (dh > 0 && bottom[j]))
                input = zero;
            else if (dw < 0 && left[j])
                input = _mm256_maskload_ps(at, not_first);
            else if (dw > 0 && right[j])
                input = _mm256_maskload_ps(at, not_last);
            else
                input = _mm256_loadu_ps(at);
            acc[j] = _mm256_fmadd_ps(weight, input, acc[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < Chains; ++j)
        store_epilogue(y + (p0 + j) * 8, acc[j], residual ? residual + (p0 + j) * 8 : nullptr, relu);
}

template <int W>
void row_planes(const ConvDims& d, const float* x, const float* w, const float* bias, const float* residual, bool relu,
                float* y, int threads) {
    const int64_t vectors = d.H * (W / 8), full = vectors / kDepthwiseChains * kDepthwiseChains;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2) if (threads > 1)
    for (int64_t n = 0; n < d.N; ++n)
        for (int64_t k = 0; k < d.K; ++k) {
            const int64_t plane = (n * d.K + k) * d.P;
            const float* res = residual ? residual + plane : nullptr;
            const __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
            for (int64_t p = 0; p < full; p += kDepthwiseChains)
                row_chains<W, kDepthwiseChains>(x + plane, w + k * 9, b, d.H, p, res, relu, y + plane);
            for (int64_t p = full; p < vectors; ++p)
                row_chains<W, 1>(x + plane, w + k * 9, b, d.H, p, res, relu, y + plane);
        }
}

}  // namespace

bool depthwise_rows_fits(const Attrs& a, const ConvDims& d) {
    return depthwise3x3_fits(a, d) && a.stride[0] == 1 && d.OH == d.H && d.OW == d.W &&
           (d.W == 8 || d.W == 16 || d.W == 32);
}

void depthwise_rows_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                            TensorView y, int threads) {
    const ConvDims d = conv_dims(a, x.shape, w.shape, y.shape);
    if (d.W == 8)
        row_planes<8>(d, x.data, w.data, bias, residual, a.fused_relu, y.data, threads);
    else if (d.W == 16)
        row_planes<16>(d, x.data, w.data, bias, residual, a.fused_relu, y.data, threads);
    else
        row_planes<32>(d, x.data, w.data, bias, residual, a.fused_relu, y.data, threads);
}

}  // namespace engine::native
