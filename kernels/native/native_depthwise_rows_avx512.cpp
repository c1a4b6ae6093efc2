// Depthwise 3x3 convolution on AVX-512 for output rows of 8, 16 or 32 pixels (MobileNet's planes from
// 32x32 to 8x8), stride 1 or 2, padding 1. A row of output is one or two vectors (ymm for 8, zmm
// otherwise). Each input row is loaded once and turned into its three taps in registers: for stride
// 1 the row shifted right and left by a column (valignd, zero past the edges), for stride 2 its even
// and odd columns (one permute each) and the odd ones shifted right. Stride 1 keeps the last three
// rows' taps in a ring, so each output row loads and shifts one new row. Where the AVX2 kernel
// copies each plane into a padded buffer and loads every tap from it, the sums are the same: the
// bias, then the nine taps' fused multiply-adds in order, so the results match it to the bit.
#include <immintrin.h>
#include <omp.h>

#include <cstdint>

#include "native_depthwise.h"

namespace engine::native {

namespace {

// The vector operations for rows of 16 floats (zmm) and of 8 (ymm, with AVX-512VL's valignd and
// two-source permutes).
struct Zmm {
    using V = __m512;
    static constexpr int kLanes = 16;
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    static V zero() { return _mm512_setzero_ps(); }
    static V set1(float f) { return _mm512_set1_ps(f); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V relu(V a) { return _mm512_maskz_max_ps(0xffff, a, zero()); }  // maskz: GCC 12 warns on the plain form
    // Lane i: column i - 1 (the last of `before` at lane 0), and column i + 1 (the first of `after` last).
    static V left(V v, V before) {
        return _mm512_castsi512_ps(
            _mm512_maskz_alignr_epi32(0xffff, _mm512_castps_si512(v), _mm512_castps_si512(before), 15));
    }
    static V right(V v, V after) {
        return _mm512_castsi512_ps(
            _mm512_maskz_alignr_epi32(0xffff, _mm512_castps_si512(after), _mm512_castps_si512(v), 1));
    }
    // Columns 2i + phase of the 2 x 16 floats lo, hi.
    static V phase(V lo, V hi, int p) {
        return _mm512_permutex2var_ps(lo,
                                      _mm512_set_epi32(30 + p, 28 + p, 26 + p, 24 + p, 22 + p, 20 + p, 18 + p, 16 + p,
                                                       14 + p, 12 + p, 10 + p, 8 + p, 6 + p, 4 + p, 2 + p, p),
                                      hi);
    }
};

struct Ymm {
    using V = __m256;
    static constexpr int kLanes = 8;
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    static V zero() { return _mm256_setzero_ps(); }
    static V set1(float f) { return _mm256_set1_ps(f); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V relu(V a) { return _mm256_max_ps(a, zero()); }
    static V left(V v, V before) {
        return _mm256_castsi256_ps(_mm256_alignr_epi32(_mm256_castps_si256(v), _mm256_castps_si256(before), 7));
    }
    static V right(V v, V after) {
        return _mm256_castsi256_ps(_mm256_alignr_epi32(_mm256_castps_si256(after), _mm256_castps_si256(v), 1));
    }
    static V phase(V lo, V hi, int p) {
        return _mm256_permutex2var_ps(lo, _mm256_set_epi32(14 + p, 12 + p, 10 + p, 8 + p, 6 + p, 4 + p, 2 + p, p), hi);
    }
};

// The three taps (kernel columns 0, 1, 2) of one input row for each of an output row's N vectors.
template <class T, int N>
struct Taps {
    typename T::V t[N][3];
};

// Input row `row` of a plane W wide (a row of zeros outside 0..H-1).
template <class T, int N, int S>
Taps<T, N> taps_of(const float* plane, int64_t row, int64_t H) {
    using V = typename T::V;
    constexpr int L = T::kLanes;
    Taps<T, N> r;
    if (row < 0 || row >= H) {
        for (auto& v : r.t) v[0] = v[1] = v[2] = T::zero();
        return r;
    }
    const float* in = plane + row * S * N * L;
    if constexpr (S == 1) {
        V v[N];
        for (int i = 0; i < N; ++i) v[i] = T::load(in + i * L);
        for (int i = 0; i < N; ++i) {
            r.t[i][0] = T::left(v[i], i > 0 ? v[i - 1] : T::zero());
            r.t[i][1] = v[i];
            r.t[i][2] = T::right(v[i], i + 1 < N ? v[i + 1] : T::zero());
        }
    } else {  // output column c reads input columns 2c - 1, 2c, 2c + 1: odd shifted right, even, odd
        V odd[N];
        for (int i = 0; i < N; ++i) {
            const V lo = T::load(in + 2 * i * L), hi = T::load(in + (2 * i + 1) * L);
            r.t[i][1] = T::phase(lo, hi, 0);
            odd[i] = T::phase(lo, hi, 1);
        }
        for (int i = 0; i < N; ++i) {
            r.t[i][0] = T::left(odd[i], i > 0 ? odd[i - 1] : T::zero());
            r.t[i][2] = odd[i];
        }
    }
    return r;
}

// One output plane: OH rows of N vectors; y = relu?(bias + taps + residual?).
template <class T, int N, int S>
void plane(const float* x, int64_t H, const float* w, float bias, const float* res, bool relu, float* y) {
    using V = typename T::V;
    constexpr int64_t OW = N * T::kLanes;
    const int64_t OH = H / S;
    Taps<T, N> ring[3];  // stride 1: input rows oh - 1, oh, oh + 1 at (oh + 2) % 3, oh % 3, (oh + 1) % 3
    if constexpr (S == 1) {
        ring[2] = taps_of<T, N, S>(x, -1, H);
        ring[0] = taps_of<T, N, S>(x, 0, H);
    } else {
        ring[0] = taps_of<T, N, S>(x, -1, H);  // row 2 oh - 1, carried over from the last output row
    }
    for (int64_t oh = 0; oh < OH; ++oh) {
        const Taps<T, N>* rows[3];
        if constexpr (S == 1) {
            ring[(oh + 1) % 3] = taps_of<T, N, S>(x, oh + 1, H);
            rows[0] = &ring[(oh + 2) % 3], rows[1] = &ring[oh % 3], rows[2] = &ring[(oh + 1) % 3];
        } else {
            ring[1] = taps_of<T, N, S>(x, 2 * oh, H);
            ring[2] = taps_of<T, N, S>(x, 2 * oh + 1, H);
            rows[0] = &ring[0], rows[1] = &ring[1], rows[2] = &ring[2];
        }
        for (int i = 0; i < N; ++i) {
            V acc = T::set1(bias);
#pragma GCC unroll 3
            for (int kh = 0; kh < 3; ++kh)
#pragma GCC unroll 3
                for (int kw = 0; kw < 3; ++kw) acc = T::fmadd(T::set1(w[kh * 3 + kw]), rows[kh]->t[i][kw], acc);
            const int64_t at = oh * OW + i * T::kLanes;
            if (res) acc = T::add(acc, T::load(res + at));
            if (relu) acc = T::relu(acc);
            T::store(y + at, acc);
        }
        if constexpr (S == 2) ring[0] = ring[2];
    }
}

template <class T, int N, int S>
void run(const ConvDims& d, const float* x, const float* w, const float* bias, const float* residual, bool relu,
         float* y, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t i = 0; i < d.N * d.K; ++i) {
        const int64_t k = i % d.K;
        plane<T, N, S>(x + i * d.H * d.W, d.H, w + 9 * k, bias ? bias[k] : 0.0f,
                       residual ? residual + i * d.P : nullptr, relu, y + i * d.P);
    }
}

}  // namespace

void depthwise_rows_forward_avx512(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                                   TensorView y, int threads) {
    const ConvDims d = conv_dims(a, x.shape, w.shape, y.shape);
    const bool s2 = a.stride[0] == 2;
    auto f = d.OW == 8    ? (s2 ? run<Ymm, 1, 2> : run<Ymm, 1, 1>)
             : d.OW == 16 ? (s2 ? run<Zmm, 1, 2> : run<Zmm, 1, 1>)
                          : (s2 ? run<Zmm, 2, 2> : run<Zmm, 2, 1>);
    f(d, x.data, w.data, bias, residual, a.fused_relu, y.data, threads);
}

}  // namespace engine::native
