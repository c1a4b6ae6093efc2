// The Winograd products on AVX-512 (this file alone is compiled with -mavx512f; the backend calls it
// only where the CPU has it, native_isa.h). Over tiles: a block is 16 output channels x the 16 tiles
// of one zmm, 16 accumulators, each c one load of V and 16 FMAs with a broadcast weight. Over
// channels (8x8 planes): 64 output channels (four zmm) x 4 tiles, 16 accumulators, each c four
// weight loads and four broadcasts of V for 16 FMAs. The transforms stay the AVX2 ones.
#include <immintrin.h>

#include <algorithm>

#include "native_winograd_dims.h"

namespace engine::native::winograd {

namespace {

template <int R>
void product_block_512(const Dims& d, const float* u, const float* v, float* m, int64_t xi, int64_t kb) {
    const float* ub = u + (xi * k_blocks(d) + kb) * d.C * kKb512;
    __m512 acc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    const float* vx = v + xi * d.vstride;
    const int64_t C = d.C;
    for (int64_t c = 0; c < C; ++c, vx += kTb, ub += kKb512) {
        const __m512 x = _mm512_loadu_ps(vx);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(ub[r]), x, acc[r]);
    }
    float* mk = m + (kb * kKb512 * d.xis + xi) * kTb;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(mk + r * d.xis * kTb, acc[r]);
}

template <int NV>
void product_channels_512(const Dims& d, const float* u, const float* v, float* m, int64_t xi, int64_t kb) {
    const float* ub = u + (xi * k_blocks(d) + kb) * d.C * kKbc512;
    __m512 acc[kTbc][NV];
#pragma GCC unroll 4
    for (int t = 0; t < kTbc; ++t)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[t][j] = _mm512_setzero_ps();
    const float* vx = v + xi * d.vstride;
    for (int64_t c = 0; c < d.C; ++c, vx += kTbc, ub += kKbc512) {
        __m512 w[NV];
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) w[j] = _mm512_loadu_ps(ub + 16 * j);
#pragma GCC unroll 4
        for (int t = 0; t < kTbc; ++t) {
            const __m512 b = _mm512_set1_ps(vx[t]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[t][j] = _mm512_fmadd_ps(w[j], b, acc[t][j]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < kTbc; ++t)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) _mm512_storeu_ps(m + (xi * kTbc + t) * d.K + kb * kKbc512 + 16 * j, acc[t][j]);
}

}  // namespace

void product_avx512(const Dims& d, const float* u, const float* v, float* m, int64_t kb0, int64_t kb1) {
    for (int64_t kb = kb0; kb < kb1; ++kb)
        for (int64_t xi = 0; xi < d.xis; ++xi) switch (std::min<int64_t>(kKb512, d.K - kb * kKb512)) {
                case 16: product_block_512<16>(d, u, v, m, xi, kb); break;
                case 15: product_block_512<15>(d, u, v, m, xi, kb); break;
                case 14: product_block_512<14>(d, u, v, m, xi, kb); break;
                case 13: product_block_512<13>(d, u, v, m, xi, kb); break;
                case 12: product_block_512<12>(d, u, v, m, xi, kb); break;
                case 11: product_block_512<11>(d, u, v, m, xi, kb); break;
                case 10: product_block_512<10>(d, u, v, m, xi, kb); break;
                case 9: product_block_512<9>(d, u, v, m, xi, kb); break;
                case 8: product_block_512<8>(d, u, v, m, xi, kb); break;
                case 7: product_block_512<7>(d, u, v, m, xi, kb); break;
                case 6: product_block_512<6>(d, u, v, m, xi, kb); break;
                case 5: product_block_512<5>(d, u, v, m, xi, kb); break;
                case 4: product_block_512<4>(d, u, v, m, xi, kb); break;
                case 3: product_block_512<3>(d, u, v, m, xi, kb); break;
                case 2: product_block_512<2>(d, u, v, m, xi, kb); break;
                default: product_block_512<1>(d, u, v, m, xi, kb); break;
            }
}

void product_over_channels_avx512(const Dims& d, const float* u, const float* v, float* m, int64_t kb0, int64_t kb1) {
    for (int64_t kb = kb0; kb < kb1; ++kb)
        for (int64_t xi = 0; xi < d.xis; ++xi) switch (std::min<int64_t>(kKbc512, d.K - kb * kKbc512) / 16) {
                case 4: product_channels_512<4>(d, u, v, m, xi, kb); break;
                case 3: product_channels_512<3>(d, u, v, m, xi, kb); break;
                case 2: product_channels_512<2>(d, u, v, m, xi, kb); break;
                default: product_channels_512<1>(d, u, v, m, xi, kb); break;
            }
}

}  // namespace engine::native::winograd
