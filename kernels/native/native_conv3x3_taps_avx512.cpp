// The tap-plane copy and the products of native_conv3x3_taps.h (this file alone is compiled with
// -mavx512f). A tile is 8 output channels x up to 48 output pixels (three zmm): 24 accumulators;
// per tap three loads of the tap plane and 8 weight broadcasts feed 24 FMAs, so the FMA units, not
// the loads, set the pace. Pixels are the outer loop so that a group's operands (C x 9 x 48 floats,
// 27 KB at 16 channels) stay in L1 across the output channel blocks.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "native_conv3x3_taps.h"

namespace engine::native::taps {

namespace {

constexpr int kLanes = 16;
constexpr int kSegs = 3;  // 16-pixel segments per tile

// Lanes l of a 16-float load from `base` with 0 <= base + l < n.
inline __mmask16 inside(int64_t base, int64_t n) {
    const int64_t lo = std::clamp<int64_t>(-base, 0, kLanes), hi = std::clamp<int64_t>(n - base, 0, kLanes);
    if (hi <= lo) return 0;
    return __mmask16(((uint32_t(1) << hi) - 1) & ~((uint32_t(1) << lo) - 1));
}

// The first `count` lanes.
inline __mmask16 first(int64_t count) {
    return count >= kLanes ? __mmask16(0xffff) : __mmask16((uint32_t(1) << std::max<int64_t>(count, 0)) - 1);
}

// Input channels [c0, c1) into their tap planes: plane (c, kw, ph) row i, column ow = padded input
// (row S * i + ph, column S * ow + kw). Loops run over 16-column strips, then rows, so that the
// masks of a strip (the left and right borders, the plane's width) are made once, not per row.
// Masked loads read nothing outside a row (no fault, zeros in the border lanes).
template <int S>
void copy_s(const Geometry& g, const float* x, float* planes, int64_t c0, int64_t c1) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t c = c0; c < c1; ++c)
        for (int kw = 0; kw < 3; ++kw)
            for (int ph = 0; ph < S; ++ph) {
                float* plane = planes + ((c * 3 + kw) * S + ph) * g.slab;
                // Rows [i0, i1) come from input rows S * i + ph - 1; the others are the zero border.
                const int64_t i0 = ph == 0 ? 1 : 0, i1 = std::min(g.rows, (g.H - ph) / S + 1);
                const float* in = x + (c * g.H + S * i0 + ph - 1) * g.W;
                for (int64_t ow0 = 0; ow0 < g.OW; ow0 += kLanes) {
                    const int64_t base = S * ow0 + kw - 1;  // input column of output ow0's tap
                    const __mmask16 out = first(g.OW - ow0), a = inside(base, g.W), b = inside(base + kLanes, g.W);
                    float* row = plane + ow0;
                    for (int64_t i = 0; i < i0; ++i) _mm512_mask_storeu_ps(row + i * g.OW, out, zero);
                    const float* src = in + base;
                    for (int64_t i = i0; i < i1; ++i, src += S * g.W) {
                        __m512 v = _mm512_maskz_loadu_ps(a, src);
                        if (S == 2) v = _mm512_permutex2var_ps(v, even, _mm512_maskz_loadu_ps(b, src + kLanes));
                        _mm512_mask_storeu_ps(row + i * g.OW, out, v);
                    }
                    for (int64_t i = std::max(i0, i1); i < g.rows; ++i)
                        _mm512_mask_storeu_ps(row + i * g.OW, out, zero);
                }
            }
}

// Output channels [k0, k0 + R) x NS segments of pixels from p0. u points at the block's packed weights.
template <int R, int NS>
void tile(const Geometry& g, const int64_t* off, const float* planes, const float* u, const float* bias,
          const float* residual, bool relu, float* y, int64_t k0, int64_t p0) {
    __m512 acc[R][NS];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
        for (int s = 0; s < NS; ++s) acc[r][s] = bias ? _mm512_set1_ps(bias[k0 + r]) : _mm512_setzero_ps();
    const int64_t cstride = 3 * g.S * g.slab;
    const float* pc = planes + p0;
    for (int64_t c = 0; c < g.C; ++c, pc += cstride, u += 9 * kKb) {
#pragma GCC unroll 9
        for (int t = 0; t < 9; ++t) {
            __m512 xs[NS];
#pragma GCC unroll 3
            for (int s = 0; s < NS; ++s) xs[s] = _mm512_loadu_ps(pc + off[t] + s * kLanes);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m512 wv = _mm512_set1_ps(u[t * kKb + r]);
#pragma GCC unroll 3
                for (int s = 0; s < NS; ++s) acc[r][s] = _mm512_fmadd_ps(wv, xs[s], acc[r][s]);
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 3
    for (int s = 0; s < NS; ++s) {
        const int64_t p = p0 + s * kLanes;
        const __mmask16 m = first(g.P - p);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const int64_t at = (k0 + r) * g.P + p;
            __m512 v = acc[r][s];
            if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual + at));
            if (relu) v = _mm512_maskz_max_ps(m, v, zero);  // (_mm512_max_ps: a GCC 12 false warning)
            _mm512_mask_storeu_ps(y + at, m, v);
        }
    }
}

template <int NS>
void tile_r(int R, const Geometry& g, const int64_t* off, const float* planes, const float* u, const float* bias,
            const float* residual, bool relu, float* y, int64_t k0, int64_t p0) {
    switch (R) {
        case 8:
            return tile<8, NS>(g, off, planes, u, bias, residual, relu, y, k0, p0);
        case 7:
            return tile<7, NS>(g, off, planes, u, bias, residual, relu, y, k0, p0);
        case 6:
            return tile<6, NS>(g, off, planes, u, bias, residual, relu, y, k0, p0);
        case 5:
            return tile<5, NS>(g, off, planes, u, bias, residual, relu, y, k0, p0);
        case 4:
            return tile<4, NS>(g, off, planes, u, bias, residual, relu, y, k0, p0);
        case 3:
            return tile<3, NS>(g, off, planes, u, bias, residual, relu, y, k0, p0);
        case 2:
            return tile<2, NS>(g, off, planes, u, bias, residual, relu, y, k0, p0);
        default:
            return tile<1, NS>(g, off, planes, u, bias, residual, relu, y, k0, p0);
    }
}

}  // namespace

void copy_avx512(const Geometry& g, const float* x, float* planes, int64_t c0, int64_t c1) {
    if (g.S == 1)
        copy_s<1>(g, x, planes, c0, c1);
    else
        copy_s<2>(g, x, planes, c0, c1);
    // The last tile's loads run up to 15 floats past the last plane: zeros, never denormal garbage.
    if (c1 == g.C) std::fill(planes + g.C * 3 * g.S * g.slab, planes + g.floats, 0.0f);
}

void blocks_avx512(const Geometry& g, const float* planes, const float* u, const float* bias, const float* residual,
                   bool relu, float* y, int64_t kb0, int64_t kb1) {
    int64_t off[9];  // tap (kh, kw): its plane (kw, kh % S) and the rows kh / S below the output row
    for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) off[kh * 3 + kw] = (kw * g.S + kh % g.S) * g.slab + kh / g.S * g.OW;
    // The 16-pixel segments split evenly into groups of at most kSegs: 8x8 planes as 2 + 2 segments,
    // not 3 + 1, whose lone segment would give 8 accumulators, too few to hide the FMA latency.
    const int64_t all = (g.P + kLanes - 1) / kLanes, groups = (all + kSegs - 1) / kSegs;
    for (int64_t q = 0; q < groups; ++q) {
        const int64_t first_seg = all * q / groups, segs = all * (q + 1) / groups - first_seg, p0 = first_seg * kLanes;
        for (int64_t kb = kb0; kb < kb1; ++kb) {
            const int R = int(std::min<int64_t>(kKb, g.K - kb * kKb));
            const float* ub = u + kb * g.C * 9 * kKb;
            if (segs == 3)
                tile_r<3>(R, g, off, planes, ub, bias, residual, relu, y, kb * kKb, p0);
            else if (segs == 2)
                tile_r<2>(R, g, off, planes, ub, bias, residual, relu, y, kb * kKb, p0);
            else
                tile_r<1>(R, g, off, planes, ub, bias, residual, relu, y, kb * kKb, p0);
        }
    }
}

}  // namespace engine::native::taps
