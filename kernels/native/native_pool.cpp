#include "native_pool.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "native_simd.h"

namespace engine::native {

namespace {

struct Tiles {
    int64_t KH, KW, H, W, OH, OW, planes;
};

// The windows tile the input: kernel == stride, no padding, no dilation, no ceil_mode.
bool tiles_of(const Attrs& a, const Shape& x, const Shape& y, Tiles& t) {
    t = {a.kernel[0], a.kernel[1], x[2], x[3], y[2], y[3], x[0] * x[1]};
    const bool tiled = a.stride[0] == t.KH && a.stride[1] == t.KW && a.dilation[0] == 1 && a.dilation[1] == 1 &&
                       std::all_of(a.pad, a.pad + 4, [](int64_t p) { return p == 0; }) && !a.ceil_mode;
    return tiled && t.OH * t.KH <= t.H && t.OW * t.KW <= t.W;
}

// Max (its first position, as the reference picks it) and sum of one window.
float window_max_sum(const Tiles& t, const float* win, int64_t& arg, float& sum) {
    float mx = win[0];
    arg = 0;
    sum = 0.0f;
    for (int64_t i = 0; i < t.KH; ++i)
        for (int64_t j = 0; j < t.KW; ++j) {
            const float v = win[i * t.W + j];
            if (v > mx) mx = v, arg = i * t.W + j;
            sum += v;
        }
    return mx;
}

// Max and mean of one window, for the forward pass (no position): 8 columns a vector where the
// window's width is a multiple of 8 (the SDN heads' 8x8 windows on 32x32 planes), branch-free scalars
// otherwise. The order of the sums depends on the window alone.
void window_max_mean(const Tiles& t, const float* win, float inv_count, float& mx, float& mean) {
    if (t.KW % 8 == 0) {
        __m256 vmax = _mm256_loadu_ps(win), vsum = _mm256_setzero_ps();
        for (int64_t i = 0; i < t.KH; ++i)
            for (int64_t j = 0; j < t.KW; j += 8) {
                const __m256 v = _mm256_loadu_ps(win + i * t.W + j);
                vmax = _mm256_max_ps(vmax, v);
                vsum = _mm256_add_ps(vsum, v);
            }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        mx = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        mean = horizontal_sum(vsum) * inv_count;
        return;
    }
    float m = win[0], sum = 0.0f;
    for (int64_t i = 0; i < t.KH; ++i)
        for (int64_t j = 0; j < t.KW; ++j) {
            const float v = win[i * t.W + j];
            m = v > m ? v : m;
            sum += v;
        }
    mx = m;
    mean = sum * inv_count;
}

// alpha max + (1 - alpha) mean as one fused multiply-add onto the rounded second product, spelt out:
// left to GCC, the contraction it picks depends on the code around the expression.
float pooled(PoolKind kind, float alpha, float mx, float mean) {
    return kind == PoolKind::Max ? mx : kind == PoolKind::Average ? mean : std::fma(alpha, mx, (1 - alpha) * mean);
}

// Windows 2 or 4 wide in rows of a multiple of 4 windows (the SDN heads' 4x4 windows on 16x16 planes
// and 2x2 on 8x8): four adjacent windows at a time, one lane each. Each input row of them is loaded
// whole and split into its columns (a 4x4 transpose, or even and odd), so that the four sums run side
// by side rather than as one dependent chain per window. Each lane's max and sum take the window's
// elements in the scalar loop's order, so the values are the same.
bool windows_in_lanes(const Tiles& t) { return (t.KW == 2 || t.KW == 4) && t.OW % 4 == 0; }

void pool_windows_in_lanes(const Tiles& t, const float* x, PoolKind kind, float alpha, float* y, int threads) {
    const float inv_count = 1.0f / float(t.KH * t.KW);
    const int64_t groups = t.OH * (t.OW / 4);  // of four windows, per plane
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t p = 0; p < t.planes; ++p)
        for (int64_t g = 0; g < groups; ++g) {
            const int64_t oh = g / (t.OW / 4), ow = g % (t.OW / 4) * 4;
            const float* corner = x + p * t.H * t.W + oh * t.KH * t.W + ow * t.KW;
            __m128 vmax = _mm_setr_ps(corner[0], corner[t.KW], corner[2 * t.KW], corner[3 * t.KW]);
            __m128 vsum = _mm_setzero_ps();
            for (int64_t i = 0; i < t.KH; ++i) {
                const float* row = corner + i * t.W;
                __m128 col[4];  // col[j]: column j of the four windows
                if (t.KW == 4) {
                    for (int j = 0; j < 4; ++j) col[j] = _mm_loadu_ps(row + 4 * j);
                    _MM_TRANSPOSE4_PS(col[0], col[1], col[2], col[3]);
                } else {
                    const __m128 lo = _mm_loadu_ps(row), hi = _mm_loadu_ps(row + 4);
                    col[0] = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
                    col[1] = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
                }
                for (int64_t j = 0; j < t.KW; ++j) {
                    vmax = _mm_max_ps(col[j], vmax);  // v > max ? v : max, as the scalar loop
                    vsum = _mm_add_ps(vsum, col[j]);
                }
            }
            alignas(16) float mx[4], sum[4];
            _mm_store_ps(mx, vmax);
            _mm_store_ps(sum, vsum);
            float* out = y + (p * t.OH + oh) * t.OW + ow;
            for (int l = 0; l < 4; ++l) out[l] = pooled(kind, alpha, mx[l], sum[l] * inv_count);
        }
}

}  // namespace

bool pool_tiled(const Attrs& a, TensorView x, PoolKind kind, float alpha, TensorView y, int threads) {
    Tiles t;
    if (!tiles_of(a, x.shape, y.shape, t)) return false;
    if (windows_in_lanes(t)) {
        pool_windows_in_lanes(t, x.data, kind, alpha, y.data, threads);
        return true;
    }
    const float inv_count = 1.0f / float(t.KH * t.KW);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t p = 0; p < t.planes; ++p) {
        const float* xp = x.data + p * t.H * t.W;
        for (int64_t oh = 0; oh < t.OH; ++oh)
            for (int64_t ow = 0; ow < t.OW; ++ow) {
                float mx, mean;
                window_max_mean(t, xp + oh * t.KH * t.W + ow * t.KW, inv_count, mx, mean);
                y[(p * t.OH + oh) * t.OW + ow] = pooled(kind, alpha, mx, mean);
            }
    }
    return true;
}

bool pool_tiled_backward(const Attrs& a, TensorView x, PoolKind kind, float alpha, TensorView gy, TensorView gx,
                         float* galpha, int threads) {
    Tiles t;
    if (!tiles_of(a, x.shape, gy.shape, t)) return false;
    const float inv_count = 1.0f / float(t.KH * t.KW);
    double partial[64] = {};  // alpha's gradient per thread, summed in thread order: same bits for a thread count
    threads = std::min(threads, 64);
#pragma omp parallel num_threads(threads)
    {
        double mine = 0;
#pragma omp for schedule(static)
        for (int64_t p = 0; p < t.planes; ++p) {
            const float* xp = x.data + p * t.H * t.W;
            for (int64_t oh = 0; oh < t.OH; ++oh)
                for (int64_t ow = 0; ow < t.OW; ++ow) {
                    const int64_t corner = oh * t.KH * t.W + ow * t.KW;
                    const float g = gy[(p * t.OH + oh) * t.OW + ow];
                    int64_t arg;
                    float sum;
                    const float mx = window_max_sum(t, xp + corner, arg, sum);
                    mine += g * (mx - sum * inv_count);
                    if (!gx.data) continue;
                    float* win = gx.data + p * t.H * t.W + corner;
                    if (kind != PoolKind::Average) win[arg] += kind == PoolKind::Max ? g : alpha * g;
                    if (kind == PoolKind::Max) continue;
                    const float share = (kind == PoolKind::Average ? g : (1 - alpha) * g) * inv_count;
                    for (int64_t i = 0; i < t.KH; ++i)
                        for (int64_t j = 0; j < t.KW; ++j) win[i * t.W + j] += share;
                }
        }
        partial[omp_get_thread_num()] = mine;
    }
    if (galpha && kind == PoolKind::Mixed)
        for (int i = 0; i < threads; ++i) *galpha += float(partial[i]);
    return true;
}

}  // namespace engine::native
