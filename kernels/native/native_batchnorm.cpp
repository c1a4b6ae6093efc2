#include "native_batchnorm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "native_relu_gradient.h"
#include "native_simd.h"

namespace engine::native {

namespace {

struct Layout {
    int64_t n, c, inner;
};

Layout layout(const Shape& s) { return {s[0], s[1], s.numel() / (s[0] * s[1])}; }

// Adjacent channels taken together, so that a sample's rows of them are one contiguous run of at
// least kGroupFloats: one channel's rows of 64 floats (8x8 planes) lie 16 KB apart, too far for the
// prefetcher, and ResNet-56's last stage took twice the time per element of the others. Each
// channel's sums still run over its rows in sample order, so results are as before to the bit.
constexpr int64_t kGroupFloats = 1024, kMaxGroup = 16;
int64_t group_of(const Layout& L) {
    return std::clamp<int64_t>(kGroupFloats / std::max<int64_t>(L.inner, 1), 1, kMaxGroup);
}

// Row sums in 8-lane float accumulators, two per sum to hide the add latency: GCC keeps a float
// reduction scalar unless it may reassociate (no -ffast-math here), which made these loops slow.
// sums[0] += sum a, sums[1] += sum a*a.
void row_sums(const float* __restrict a, int64_t n, double* sums) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, t0 = s0, t1 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a0 = _mm256_loadu_ps(a + i), a1 = _mm256_loadu_ps(a + i + 8);
        s0 = _mm256_add_ps(s0, a0), s1 = _mm256_add_ps(s1, a1);
        t0 = _mm256_fmadd_ps(a0, a0, t0), t1 = _mm256_fmadd_ps(a1, a1, t1);
    }
    float s = horizontal_sum(_mm256_add_ps(s0, s1)), t = horizontal_sum(_mm256_add_ps(t0, t1));
    for (; i < n; ++i) s += a[i], t += a[i] * a[i];
    sums[0] += s, sums[1] += t;
}

// Where a fused ReLU passes the gradient along a row, for the backward: `vec(i)` as a lane mask over
// 8 values, `at(i)` for one.
struct PassAll {  // no ReLU
    __m256 vec(int64_t) const { return _mm256_castsi256_ps(_mm256_set1_epi32(-1)); }
    bool at(int64_t) const { return true; }
};
struct PassWhereOutput {  // y > 0, from the forward's output
    const float* __restrict y;
    __m256 vec(int64_t i) const { return _mm256_cmp_ps(_mm256_loadu_ps(y + i), _mm256_setzero_ps(), _CMP_GT_OQ); }
    bool at(int64_t i) const { return y[i] > 0.0f; }
};
// x * k + shift > 0, with the forward's k and shift: the same fused multiply-add as the forward's
// normalise_row (GCC contracts it), so the same mask as y > 0 without reading y. Only where no
// residual is added before the ReLU.
struct PassWhereNormalised {
    const float* __restrict x;
    float k, shift;
    __m256 vec(int64_t i) const {
        const __m256 q = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(k), _mm256_set1_ps(shift));
        return _mm256_cmp_ps(q, _mm256_setzero_ps(), _CMP_GT_OQ);
    }
    bool at(int64_t i) const { return std::fma(x[i], k, shift) > 0.0f; }
};

// The backward's sums over a row in one pass: sums[0..3] += sum g, sum g*x, sum x, sum x*x, where g
// is gy where `pass` lets it through and 0 elsewhere (the gradient through a fused ReLU: the same
// values, summed in the same order, as on the ReLU backward's output).
template <class Pass>
void backward_row_sums(const float* __restrict gy, Pass pass, const float* __restrict x, int64_t n, double* sums) {
    __m256 sg = _mm256_setzero_ps(), sgx = sg, sx = sg, sxx = sg;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_and_ps(_mm256_loadu_ps(gy + i), pass.vec(i));
        const __m256 v = _mm256_loadu_ps(x + i);
        sg = _mm256_add_ps(sg, g), sgx = _mm256_fmadd_ps(g, v, sgx);
        sx = _mm256_add_ps(sx, v), sxx = _mm256_fmadd_ps(v, v, sxx);
    }
    float t[4] = {horizontal_sum(sg), horizontal_sum(sgx), horizontal_sum(sx), horizontal_sum(sxx)};
    for (; i < n; ++i) {
        const float g = pass.at(i) ? gy[i] : 0.0f;
        t[0] += g, t[1] += g * x[i], t[2] += x[i], t[3] += x[i] * x[i];
    }
    for (int k = 0; k < 4; ++k) sums[k] += t[k];
}

// q = k * (g - a - (x - m) * b), or q += that where !fresh, g as in backward_row_sums.
template <class Pass>
void input_gradient_row(const float* __restrict gy, Pass pass, const float* __restrict x, float k, float a, float b,
                        float m, bool fresh, float* __restrict q, int64_t n) {
    if (fresh)
        for (int64_t i = 0; i < n; ++i) q[i] = k * ((pass.at(i) ? gy[i] : 0.0f) - a - (x[i] - m) * b);
    else
        for (int64_t i = 0; i < n; ++i) q[i] += k * ((pass.at(i) ? gy[i] : 0.0f) - a - (x[i] - m) * b);
}

// q = x * k + shift, plus r where given, then ReLU where relu: as the unfused BatchNorm, Add and
// ReLU compute it, so that fused plans give the unfused values to the bit.
void normalise_row(const float* __restrict x, const float* __restrict r, float k, float shift, bool relu,
                   float* __restrict q, int64_t n) {
    if (r && relu)
        for (int64_t i = 0; i < n; ++i) q[i] = std::max(r[i] + (x[i] * k + shift), 0.0f);
    else if (r)
        for (int64_t i = 0; i < n; ++i) q[i] = r[i] + (x[i] * k + shift);
    else if (relu)
        for (int64_t i = 0; i < n; ++i) q[i] = std::max(x[i] * k + shift, 0.0f);
    else
        for (int64_t i = 0; i < n; ++i) q[i] = x[i] * k + shift;
}

}  // namespace

void batchnorm_train_forward(const Attrs& a, const TensorView* in, TensorView y, float* normalisation, int threads) {
    const TensorView &x = in[0], &scale = in[1], &bias = in[2], &run_mean = in[3], &run_var = in[4];
    const Layout L = layout(x.shape);
    const double count = double(L.n * L.inner);
    const int64_t G = group_of(L);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c0 = 0; c0 < L.c; c0 += G) {
        const int64_t g = std::min(G, L.c - c0);
        double sums[kMaxGroup][2] = {};
        for (int64_t n = 0; n < L.n; ++n)
            for (int64_t j = 0; j < g; ++j) row_sums(x.data + (n * L.c + c0 + j) * L.inner, L.inner, sums[j]);
        float k[kMaxGroup], shift[kMaxGroup];
        for (int64_t j = 0; j < g; ++j) {
            const int64_t c = c0 + j;
            const double mean = sums[j][0] / count, var = std::max(0.0, sums[j][1] / count - mean * mean);
            const double unbiased = count > 1 ? var * count / (count - 1) : var;
            run_mean[c] = float((1 - a.momentum) * run_mean[c] + a.momentum * mean);
            run_var[c] = float((1 - a.momentum) * run_var[c] + a.momentum * unbiased);
            k[j] = float(scale[c] / std::sqrt(var + a.epsilon)), shift[j] = float(bias[c] - mean * k[j]);
            if (normalisation) normalisation[c] = k[j], normalisation[L.c + c] = shift[j];
        }
        for (int64_t n = L.n - 1; n >= 0; --n)  // last read first: those rows are still in cache
            for (int64_t j = 0; j < g; ++j) {
                const int64_t row = (n * L.c + c0 + j) * L.inner;
                normalise_row(x.data + row, a.fused_residual ? in[5].data + row : nullptr, k[j], shift[j], a.fused_relu,
                              y.data + row, L.inner);
            }
    }
}

void batchnorm_inference(const Attrs& a, const TensorView* in, TensorView y) {
    const Layout L = layout(in[0].shape);
    for (int64_t n = 0; n < L.n; ++n)
        for (int64_t c = 0; c < L.c; ++c) {
            const float k = in[1][c] / std::sqrt(in[4][c] + a.epsilon);
            const float shift = in[2][c] - in[3][c] * k;
            const int64_t row = (n * L.c + c) * L.inner;
            normalise_row(in[0].data + row, a.fused_residual ? in[5].data + row : nullptr, k, shift, a.fused_relu,
                          y.data + row, L.inner);
        }
}

void batchnorm_backward(const Attrs& a, const TensorView* in, TensorView y, TensorView gy, TensorView* gin,
                        bool gx_fresh, bool residual_fresh, bool training, const float* normalisation, int threads) {
    const TensorView &x = in[0], &scale = in[1];
    const Layout L = layout(x.shape);
    const double count = double(L.n * L.inner);
    const int64_t G = group_of(L);
    const bool relu = a.fused_relu;
    const bool mask_from_x = relu && !a.fused_residual && normalisation;
    float* const residual_grad = a.fused_residual ? gin[5].data : nullptr;
    // A fresh residual gradient is gy through the ReLU: written by the first pass, it is the second
    // pass's g, read in place of gy and y.
    const bool g_from_residual = residual_grad && residual_fresh;
    // Calls f with the ReLU mask of channel c's row: from x, from y, or none.
    auto with_pass = [&](int64_t row, int64_t c, auto f) {
        if (mask_from_x)
            f(PassWhereNormalised{x.data + row, normalisation[c], normalisation[L.c + c]});
        else if (relu)
            f(PassWhereOutput{y.data + row});
        else
            f(PassAll{});
    };
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c0 = 0; c0 < L.c; c0 += G) {
        const int64_t g = std::min(G, L.c - c0);
        // One pass for the gradient's sums and, in training, the batch statistics the forward used.
        double sums[kMaxGroup][4] = {};  // per channel: sum g, sum g * x, sum x, sum x * x
        for (int64_t n = 0; n < L.n; ++n)
            for (int64_t j = 0; j < g; ++j) {
                const int64_t row = (n * L.c + c0 + j) * L.inner;
                with_pass(row, c0 + j,
                          [&](auto pass) { backward_row_sums(gy.data + row, pass, x.data + row, L.inner, sums[j]); });
                if (g_from_residual)  // the residual's gradient, as the unfused Add's backward gives it
                    relu_gradient_row(residual_grad + row, relu ? y.data + row : nullptr, gy.data + row, L.inner, true);
            }
        // gx = k * (g - [training] (sum_g + xhat * sum_g_xhat) / count), xhat = (x - mean) * inv
        float k[kMaxGroup], a_g[kMaxGroup], b_x[kMaxGroup], m[kMaxGroup];
        for (int64_t j = 0; j < g; ++j) {
            const int64_t c = c0 + j;
            double mean = in[3][c], var = in[4][c];
            if (training) {
                mean = sums[j][2] / count;
                var = std::max(0.0, sums[j][3] / count - mean * mean);
            }
            const double inv = 1.0 / std::sqrt(var + a.epsilon);
            const double sum_g = sums[j][0], sum_gx = sums[j][1];
            const double sum_g_xhat = (sum_gx - mean * sum_g) * inv;
            if (gin[1].data) gin[1][c] += float(sum_g_xhat);
            if (gin[2].data) gin[2][c] += float(sum_g);
            k[j] = float(scale[c] * inv);
            a_g[j] = training ? float(sum_g / count) : 0.0f;
            b_x[j] = training ? float(sum_g_xhat * inv / count) : 0.0f;
            m[j] = float(mean);
        }
        if (!gin[0].data && (!residual_grad || g_from_residual)) continue;  // nothing left to write
        for (int64_t n = L.n - 1; n >= 0; --n)  // last summed first: those rows are still in cache
            for (int64_t j = 0; j < g; ++j) {
                const int64_t row = (n * L.c + c0 + j) * L.inner;
                if (float* q = gin[0].data ? gin[0].data + row : nullptr) {
                    const auto input_gradient = [&](const float* g_row, auto pass) {
                        input_gradient_row(g_row, pass, x.data + row, k[j], a_g[j], b_x[j], m[j], gx_fresh, q, L.inner);
                    };
                    if (g_from_residual)
                        input_gradient(residual_grad + row, PassAll{});
                    else
                        with_pass(row, c0 + j, [&](auto pass) { input_gradient(gy.data + row, pass); });
                }
                if (residual_grad && !residual_fresh)  // adds to it (the row is in L1 now)
                    relu_gradient_row(residual_grad + row, relu ? y.data + row : nullptr, gy.data + row, L.inner,
                                      false);
            }
    }
}

}  // namespace engine::native
