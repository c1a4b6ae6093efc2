// Plain, cache-blocked single-precision GEMM written so that the compiler vectorises the
// inner loops (AVX2/FMA). Row-major; every variant accumulates: C += op(A) * op(B).
#pragma once
#include <cstdint>

namespace engine::cpu {

// C[M,N] += A[M,K] * B[K,N]
void gemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc);
// C[M,N] += A[M,K] * B[N,K]^T
void gemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc);
// C[M,N] += A[K,M]^T * B[K,N]
void gemm_tn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc);

}  // namespace engine::cpu
