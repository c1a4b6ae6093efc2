#include "cpu_gemm.h"

#include <algorithm>

namespace engine::cpu {

namespace {
constexpr int64_t kBlockN = 256;  // columns of C per pass: 4 rows x 256 floats stay in L1
constexpr int64_t kBlockK = 128;
}  // namespace

void gemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc) {
    for (int64_t j0 = 0; j0 < N; j0 += kBlockN) {
        const int64_t nb = std::min(kBlockN, N - j0);
        for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
            const int64_t kb = std::min(kBlockK, K - k0);
            int64_t i = 0;
            // Four rows of C at a time: each row of B read once feeds four FMAs.
            for (; i + 4 <= M; i += 4) {
                float* __restrict c0 = C + (i + 0) * ldc + j0;
                float* __restrict c1 = C + (i + 1) * ldc + j0;
                float* __restrict c2 = C + (i + 2) * ldc + j0;
                float* __restrict c3 = C + (i + 3) * ldc + j0;
                for (int64_t k = k0; k < k0 + kb; ++k) {
                    const float* __restrict b = B + k * ldb + j0;
                    const float a0 = A[(i + 0) * lda + k], a1 = A[(i + 1) * lda + k];
                    const float a2 = A[(i + 2) * lda + k], a3 = A[(i + 3) * lda + k];
                    for (int64_t j = 0; j < nb; ++j) {
                        const float bj = b[j];
                        c0[j] += a0 * bj;
                        c1[j] += a1 * bj;
                        c2[j] += a2 * bj;
                        c3[j] += a3 * bj;
                    }
                }
            }
            for (; i < M; ++i) {
                float* __restrict c = C + i * ldc + j0;
                for (int64_t k = k0; k < k0 + kb; ++k) {
                    const float* __restrict b = B + k * ldb + j0;
                    const float a = A[i * lda + k];
                    for (int64_t j = 0; j < nb; ++j) c[j] += a * b[j];
                }
            }
        }
    }
}

void gemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc) {
    // Dot products along K, which is contiguous in both operands.
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            const float* __restrict a = A + i * lda;
            const float* __restrict b = B + j * ldb;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < K; ++k) s += a[k] * b[k];
            C[i * ldc + j] += s;
        }
}

void gemm_tn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc) {
    for (int64_t k = 0; k < K; ++k) {
        const float* __restrict b = B + k * ldb;
        for (int64_t i = 0; i < M; ++i) {
            const float a = A[k * lda + i];
            float* __restrict c = C + i * ldc;
            for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
        }
    }
}

}  // namespace engine::cpu
