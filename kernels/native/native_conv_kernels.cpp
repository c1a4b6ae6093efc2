#include "native_conv_kernels.h"

#include <algorithm>

#include "engine/aligned_vector.h"
#include "native_conv.h"
#include "native_conv3x3.h"
#include "native_conv3x3_taps.h"
#include "native_depthwise.h"
#include "native_conv_gemm.h"
#include "native_winograd.h"

namespace engine::native {

namespace {

constexpr ConvKernel kAll[] = {ConvKernel::winograd4,
                               ConvKernel::winograd4_channels,
                               ConvKernel::winograd2,
                               ConvKernel::winograd4_512,
                               ConvKernel::winograd4_channels_512,
                               ConvKernel::winograd2_512,
                               ConvKernel::direct,
                               ConvKernel::direct_512,
                               ConvKernel::gemm,
                               ConvKernel::other,
                               ConvKernel::depthwise_512};

bool is_winograd(ConvKernel k) { return k <= ConvKernel::winograd2_512; }

WinogradPlan plan_of(ConvKernel k, const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    switch (k) {
        case ConvKernel::winograd4:
            return winograd_plan_for(4, false, false, a, x, w, y);
        case ConvKernel::winograd4_channels:
            return winograd_plan_for(4, true, false, a, x, w, y);
        case ConvKernel::winograd2:
            return winograd_plan_for(2, false, false, a, x, w, y);
        case ConvKernel::winograd4_512:
            return winograd_plan_for(4, false, true, a, x, w, y);
        case ConvKernel::winograd4_channels_512:
            return winograd_plan_for(4, true, true, a, x, w, y);
        case ConvKernel::winograd2_512:
            return winograd_plan_for(2, false, true, a, x, w, y);
        default:
            return {};
    }
}

bool runs(ConvKernel k, const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    if (is_winograd(k)) return bool(plan_of(k, a, x, w, y));
    if (k == ConvKernel::direct) return conv3x3_fits(a, x, w, y);
    if (k == ConvKernel::direct_512) return conv3x3_taps_fits(a, x, w, y);
    if (k == ConvKernel::gemm) return a.groups == 1;
    if (k == ConvKernel::depthwise_512) return depthwise_avx512_fits(a, x, w, y);
    return false;
}

}  // namespace

const char* conv_kernel_name(ConvKernel k) {
    switch (k) {
        case ConvKernel::winograd4:
            return "winograd4";
        case ConvKernel::winograd4_channels:
            return "winograd4_channels";
        case ConvKernel::winograd2:
            return "winograd2";
        case ConvKernel::winograd4_512:
            return "winograd4_avx512";
        case ConvKernel::winograd4_channels_512:
            return "winograd4_channels_avx512";
        case ConvKernel::winograd2_512:
            return "winograd2_avx512";
        case ConvKernel::direct:
            return "direct";
        case ConvKernel::direct_512:
            return "direct_avx512";
        case ConvKernel::gemm:
            return "gemm";
        case ConvKernel::depthwise_512:
            return "depthwise_avx512";
        default:
            return "other";
    }
}

bool conv_kernel_from_name(const std::string& name, ConvKernel& k) {
    for (ConvKernel c : kAll)
        if (name == conv_kernel_name(c)) return k = c, true;
    return false;
}

bool conv_kernel_avx512(ConvKernel k) {
    return k == ConvKernel::winograd4_512 || k == ConvKernel::winograd4_channels_512 ||
           k == ConvKernel::winograd2_512 || k == ConvKernel::direct_512 || k == ConvKernel::depthwise_512;
}

ConvKernel conv_kernel_fixed(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    if (const WinogradPlan p = winograd_plan(a, x, w, y))
        return p.m == 2          ? ConvKernel::winograd2
               : p.over_channels ? ConvKernel::winograd4_channels
                                 : ConvKernel::winograd4;
    if (conv_gemm_fits(a, x, w, y)) return ConvKernel::gemm;
    if (conv3x3_fits(a, x, w, y)) return ConvKernel::direct;
    return ConvKernel::other;
}

std::vector<ConvKernel> conv_kernel_candidates(const Attrs& a, const Shape& x, const Shape& w, const Shape& y,
                                               Isa isa) {
    const ConvKernel fixed = conv_kernel_fixed(a, x, w, y);
    std::vector<ConvKernel> out{fixed};
    for (ConvKernel k : kAll)
        if (k != fixed && (isa == Isa::avx512 || !conv_kernel_avx512(k)) && runs(k, a, x, w, y)) out.push_back(k);
    return out;
}

size_t conv_kernel_weights_floats(ConvKernel k, const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    if (is_winograd(k)) return winograd_weights_floats(plan_of(k, a, x, w, y), x, w);
    if (k == ConvKernel::gemm) return conv_gemm_packed_floats(w, y);
    if (k == ConvKernel::direct_512) return conv3x3_taps_weights_floats(w);
    return 0;
}

size_t conv_kernel_work_floats(ConvKernel k, const Attrs& a, const Shape& x, const Shape& w, const Shape& y,
                               int threads) {
    if (is_winograd(k)) return winograd_scratch(plan_of(k, a, x, w, y), x, w, threads);
    if (k == ConvKernel::gemm) return whole_lines(size_t(threads) * conv_gemm_scratch_per_thread(a, x, w, y));
    if (k == ConvKernel::direct_512) return whole_lines(conv3x3_taps_work_floats(x, y, threads));
    if (k == ConvKernel::depthwise_512) return 0;
    return whole_lines(size_t(threads) * conv_scratch_per_thread(a, x, w, y));
}

void conv_kernel_transform(ConvKernel k, const Attrs& a, const Shape& x, TensorView w, const Shape& y, float* u,
                           int threads) {
    if (is_winograd(k))
        winograd_weights(plan_of(k, a, x, w.shape, y), x, w, u, threads);
    else if (k == ConvKernel::gemm)
        conv_gemm_pack(w, y, u);
    else if (k == ConvKernel::direct_512)
        conv3x3_taps_pack(w, u);
}

void conv_kernel_forward(ConvKernel k, const Attrs& a, TensorView x, TensorView w, const float* u, const float* bias,
                         const float* residual, TensorView y, float* scratch, int threads) {
    if (is_winograd(k))
        return winograd_forward(plan_of(k, a, x.shape, w.shape, y.shape), x, u, w.shape, bias, residual, a.fused_relu,
                                y, scratch, threads);
    if (k == ConvKernel::gemm) return conv_gemm_forward(a, x, u, w.shape, bias, residual, y, scratch, threads);
    if (k == ConvKernel::direct_512)
        return conv3x3_taps_forward(x, u, w.shape, bias, residual, a.fused_relu, y, scratch, threads);
    if (k == ConvKernel::depthwise_512) return depthwise_forward_avx512(a, x, w, bias, residual, y, threads);
    conv_forward(a, x, w, bias, residual, y, scratch, threads);
}

}  // namespace engine::native
