// The narrow GEMM's panel kernel (native_gemm.h), written once for both vector widths and included by
// native_gemm.cpp (AVX2: panels of 24 rows, three __m256) and native_gemm_avx512.cpp (48 rows, three
// __m512). Internal linkage, for the reason native_simd.h gives.
#pragma once
#include <cstdint>

#include "native_simd.h"

namespace engine::native {
namespace {

// C[0..rows, 0..N) += Ap B for one panel of 3 x kLanes<V> rows packed by pack_a_rows: the rows are
// vectorised and each element of B broadcast, so no lane is wasted when N is small. Each element
// takes its fused multiply-adds in order of k from zero, then is added to C, on either width.
template <class V, int N>
void narrow_panel_rows(int64_t K, const float* Ap, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t rows) {
    constexpr int L = kLanes<V>;
    // A is streamed once per group of samples, from memory where the weights outgrow the caches
    // (MobileNet's 1024-channel layers: 4 MB). Each step asks for A's lines 64 steps ahead: a 1024 x
    // 1024 layer then streamed at 10-12 GB/s from memory on a Zen 3 EPYC, 8-10 without (16 copies
    // cycled, 3 interleaved pairs). Not yet timed on AVX-512.
    constexpr int64_t kAhead = 64 * 3 * L;
    V acc[3][N];
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n) acc[0][n] = acc[1][n] = acc[2][n] = V{};
    for (int64_t k = 0; k < K; ++k, Ap += 3 * L) {
#pragma GCC unroll 3
        for (int line = 0; line < 3 * L; line += 16)
            _mm_prefetch(reinterpret_cast<const char*>(Ap + kAhead + line), _MM_HINT_T0);
        const V a0 = load(Ap, V{}), a1 = load(Ap + L, V{}), a2 = load(Ap + 2 * L, V{});
#pragma GCC unroll 4
        for (int n = 0; n < N; ++n) {
            const V b = broadcast(B + k * ldb + n, V{});
            acc[0][n] = fmadd(a0, b, acc[0][n]);
            acc[1][n] = fmadd(a1, b, acc[1][n]);
            acc[2][n] = fmadd(a2, b, acc[2][n]);
        }
    }
    alignas(64) float tile[N][3 * L];
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n)
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v) store(tile[n] + L * v, acc[v][n]);
    for (int64_t r = 0; r < rows; ++r)
        for (int n = 0; n < N; ++n) C[r * ldc + n] += tile[n][r];
}

}  // namespace
}  // namespace engine::native
