#include "native_pad.h"

#include <immintrin.h>

#include <algorithm>

#include "native_simd.h"

namespace engine::native {

void pad_plane(const float* x, int64_t H, int64_t W, float* out) {
    const int64_t Wp = W + 2;
    std::fill(out, out + Wp, 0.0f);
    for (int64_t h = 0; h < H; ++h) {
        float* row = out + (h + 1) * Wp;
        row[0] = 0.0f;
        std::copy(x + h * W, x + (h + 1) * W, row + 1);
        row[W + 1] = 0.0f;
    }
    std::fill(out + (H + 1) * Wp, out + (H + 2) * Wp, 0.0f);
}

void pad_plane_deinterleaved(const float* x, int64_t H, int64_t W, float* out) {
    const int64_t Wp = W + 2, half = Wp / 2;
    std::fill(out, out + Wp, 0.0f);
    for (int64_t h = 0; h < H; ++h) {
        float* even = out + (h + 1) * Wp;  // padded columns 0, 2, ..., W: input columns -1, 1, ..., W - 1
        float* odd = even + half;          // padded columns 1, 3, ..., W + 1: input columns 0, 2, ..., W
        const float* in = x + h * W;
        even[0] = 0.0f;
        int64_t j = 0;
        for (; j + 16 <= W; j += 16) {
            const __m256 a = _mm256_loadu_ps(in + j), b = _mm256_loadu_ps(in + j + 8);
            // shuffle_ps pairs within 128-bit lanes; permute4x64 puts the lanes in order.
            const __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
            const __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            constexpr int kOrder = _MM_SHUFFLE(3, 1, 2, 0);
            _mm256_storeu_ps(odd + j / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), kOrder)));
            _mm256_storeu_ps(even + j / 2 + 1, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), kOrder)));
        }
        for (; j < W; j += 2) {
            odd[j / 2] = in[j];
            even[j / 2 + 1] = in[j + 1];
        }
        odd[half - 1] = 0.0f;
    }
    std::fill(out + (H + 1) * Wp, out + (H + 2) * Wp, 0.0f);
}

namespace {

// Columns 0..3 (mod 4) of four rows of four, in place.
inline void transpose4(__m128& a, __m128& b, __m128& c, __m128& d) { _MM_TRANSPOSE4_PS(a, b, c, d); }

// The same for 32 columns: the columns of each phase end up in one register, in order.
inline void transpose4(__m256& a, __m256& b, __m256& c, __m256& d) {
    const __m256 r0 = _mm256_permute2f128_ps(a, c, 0x20),
                 r1 = _mm256_permute2f128_ps(a, c, 0x31);  // 0-3|16-19, 4-7|20-23
    const __m256 r2 = _mm256_permute2f128_ps(b, d, 0x20),
                 r3 = _mm256_permute2f128_ps(b, d, 0x31);  // 8-11|24-27, 12-15|28-31
    const __m256 lo01 = _mm256_unpacklo_ps(r0, r1), hi01 = _mm256_unpackhi_ps(r0, r1);
    const __m256 lo23 = _mm256_unpacklo_ps(r2, r3), hi23 = _mm256_unpackhi_ps(r2, r3);
    a = _mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(1, 0, 1, 0));
    b = _mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(3, 2, 3, 2));
    c = _mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(1, 0, 1, 0));
    d = _mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(3, 2, 3, 2));
}

// Input columns [j, j + 4 * lanes) of one row into the four phases of its padded row. Input column
// i is padded column i + 1: phase (i + 1) % 4, position (i + 1) / 4.
template <class Vec>
void deinterleave4(const float* in, int64_t j, int64_t seg, float* row) {
    constexpr int lanes = sizeof(Vec) / sizeof(float);
    Vec a = load(in + j, Vec{}), b = load(in + j + lanes, Vec{}), c = load(in + j + 2 * lanes, Vec{}),
        d = load(in + j + 3 * lanes, Vec{});
    transpose4(a, b, c, d);  // a: columns j, j + 4, ...; b: j + 1, ...
    store(row + 1 * seg + j / 4, a);
    store(row + 2 * seg + j / 4, b);
    store(row + 3 * seg + j / 4, c);
    store(row + 0 * seg + j / 4 + 1, d);
}

}  // namespace

void pad_plane_deinterleaved4(const float* x, int64_t H, int64_t W, float* out) {
    const int64_t seg = W / 4 + 1, Wp = 4 * seg;
    std::fill(out, out + Wp, 0.0f);
    for (int64_t h = 0; h < H; ++h) {
        float* row = out + (h + 1) * Wp;
        const float* in = x + h * W;
        row[0] = 0.0f;  // input column -1
        int64_t j = 0;
        for (; j + 32 <= W; j += 32) deinterleave4<__m256>(in, j, seg, row);
        for (; j + 16 <= W; j += 16) deinterleave4<__m128>(in, j, seg, row);
        for (; j < W; ++j) row[(j + 1) % 4 * seg + (j + 1) / 4] = in[j];
        row[1 * seg + seg - 1] = row[2 * seg + seg - 1] = row[3 * seg + seg - 1] = 0.0f;  // columns W.. W + 2
    }
    std::fill(out + (H + 1) * Wp, out + (H + 2) * Wp, 0.0f);
}

}  // namespace engine::native
