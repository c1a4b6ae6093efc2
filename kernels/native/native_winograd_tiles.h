// The two Winograd tile sizes the native backend uses, F(2x2, 3x3) and F(4x4, 3x3), as their
// one-dimensional transforms (Lavin and Gray's matrices, interpolation points 0, +-1 and, for F4,
// +-2 and infinity). A 2-D transform applies the 1-D one to rows, then to columns; native_winograd.cpp
// does that, vectorised across adjacent tiles: every value below is one lane per tile.
#pragma once
#include <immintrin.h>

#include "native_simd.h"

namespace engine::native::winograd {

// Arithmetic on 4 tiles (__m128), 8 (__m256) or 16 (__m512) at once; load and store are native_simd.h's.
inline __m128 add(__m128 a, __m128 b) { return _mm_add_ps(a, b); }
inline __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
inline __m128 sub(__m128 a, __m128 b) { return _mm_sub_ps(a, b); }
inline __m256 sub(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }
inline __m128 fma(__m128 a, float s, __m128 b) { return _mm_fmadd_ps(a, _mm_set1_ps(s), b); }  // a * s + b
inline __m256 fma(__m256 a, float s, __m256 b) { return _mm256_fmadd_ps(a, _mm256_set1_ps(s), b); }
#ifdef __AVX512F__  // 16 tiles at once, in native_winograd_avx512.cpp
inline __m512 add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
inline __m512 sub(__m512 a, __m512 b) { return _mm512_sub_ps(a, b); }
inline __m512 fma(__m512 a, float s, __m512 b) { return _mm512_fmadd_ps(a, _mm512_set1_ps(s), b); }
#endif

template <int M>
struct Tile;

template <>
struct Tile<2> {
    static constexpr int alpha = 4;  // input tile side

    // B^T d, for the 4 inputs of one row or column.
    template <class Vec>
    static void input(const Vec d[4], Vec out[4]) {
        out[0] = sub(d[0], d[2]);
        out[1] = add(d[1], d[2]);
        out[2] = sub(d[2], d[1]);
        out[3] = sub(d[1], d[3]);
    }
    // A^T m.
    template <class Vec>
    static void output(const Vec m[4], Vec out[2]) {
        out[0] = add(add(m[0], m[1]), m[2]);
        out[1] = sub(sub(m[1], m[2]), m[3]);
    }
    // G g, for the 3 taps of one row or column of a filter: D is double, or __m256d for four filters at
    // once (the same operations lane by lane, so the same values).
    template <class D>
    static void weights(const D g[3], D out[4]) {
        out[0] = g[0];
        out[1] = 0.5 * (g[0] + g[1] + g[2]);
        out[2] = 0.5 * (g[0] - g[1] + g[2]);
        out[3] = g[2];
    }
};

template <>
struct Tile<4> {
    static constexpr int alpha = 6;

    template <class Vec>
    static void input(const Vec d[6], Vec out[6]) {
        const Vec t1 = fma(d[2], -4.0f, d[4]), t2 = fma(d[1], -4.0f, d[3]);
        const Vec t3 = sub(d[4], d[2]), t4 = sub(d[3], d[1]);
        out[0] = fma(d[0], 4.0f, fma(d[2], -5.0f, d[4]));
        out[1] = add(t1, t2);
        out[2] = sub(t1, t2);
        out[3] = fma(t4, 2.0f, t3);
        out[4] = fma(t4, -2.0f, t3);
        out[5] = fma(d[1], 4.0f, fma(d[3], -5.0f, d[5]));
    }
    template <class Vec>
    static void output(const Vec m[6], Vec out[4]) {
        const Vec t1 = add(m[1], m[2]), t2 = sub(m[1], m[2]), t3 = add(m[3], m[4]), t4 = sub(m[3], m[4]);
        out[0] = add(add(m[0], t1), t3);
        out[1] = fma(t4, 2.0f, t2);
        out[2] = fma(t3, 4.0f, t1);
        out[3] = add(fma(t4, 8.0f, t2), m[5]);
    }
    template <class D>
    static void weights(const D g[3], D out[6]) {
        out[0] = g[0] / 4.0;
        out[1] = -(g[0] + g[1] + g[2]) / 6.0;
        out[2] = -(g[0] - g[1] + g[2]) / 6.0;
        out[3] = g[0] / 24.0 + g[1] / 12.0 + g[2] / 6.0;
        out[4] = g[0] / 24.0 - g[1] / 12.0 + g[2] / 6.0;
        out[5] = g[2];
    }
};

// The second half of a 2-D transform: the 1-D transform f (Tile<M>::input or ::output, R values in,
// O out) applied down each of the C columns of rows; sink(o, c, value) takes each result as soon as
// its column is done (the input transforms store it straight to V).
template <int R, int C, int O, class Vec, class F, class Sink>
inline void transform_columns(const Vec (&rows)[R][C], F f, Sink sink) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
        Vec col[R], res[O];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) col[r] = rows[r][c];
        f(col, res);
#pragma GCC unroll 8
        for (int o = 0; o < O; ++o) sink(o, c, res[o]);
    }
}

// The M columns of each tile, interleaved into M * lanes consecutive output pixels.
inline void interleave(const __m128 (&c)[2], __m256 (&out)[1]) {
    out[0] = _mm256_set_m128(_mm_unpackhi_ps(c[0], c[1]), _mm_unpacklo_ps(c[0], c[1]));
}
inline void interleave(const __m256 (&c)[2], __m256 (&out)[2]) {
    const __m256 lo = _mm256_unpacklo_ps(c[0], c[1]), hi = _mm256_unpackhi_ps(c[0], c[1]);  // per 128-bit lane
    out[0] = _mm256_permute2f128_ps(lo, hi, 0x20);
    out[1] = _mm256_permute2f128_ps(lo, hi, 0x31);
}
inline void interleave(const __m128 (&c)[4], __m256 (&out)[2]) {
    __m128 a = c[0], b = c[1], d = c[2], e = c[3];
    _MM_TRANSPOSE4_PS(a, b, d, e);  // a: tile 0's four pixels, b: tile 1's, ...
    out[0] = _mm256_set_m128(b, a);
    out[1] = _mm256_set_m128(e, d);
}
inline void interleave(const __m256 (&c)[4], __m256 (&out)[4]) {
    const __m256 lo01 = _mm256_unpacklo_ps(c[0], c[1]), hi01 = _mm256_unpackhi_ps(c[0], c[1]);
    const __m256 lo23 = _mm256_unpacklo_ps(c[2], c[3]), hi23 = _mm256_unpackhi_ps(c[2], c[3]);
    const __m256 t04 = _mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(1, 0, 1, 0));  // tiles 0 | 4
    const __m256 t15 = _mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 t26 = _mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 t37 = _mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(3, 2, 3, 2));
    out[0] = _mm256_permute2f128_ps(t04, t15, 0x20);
    out[1] = _mm256_permute2f128_ps(t26, t37, 0x20);
    out[2] = _mm256_permute2f128_ps(t04, t15, 0x31);
    out[3] = _mm256_permute2f128_ps(t26, t37, 0x31);
}

}  // namespace engine::native::winograd
