// Packed, register-blocked single-precision GEMM (AVX2/FMA, and AVX-512 where the CPU has it: native_gemm.cpp).
// Row-major; every variant accumulates: C += op(A) * op(B).
#pragma once
#include <cstddef>
#include <cstdint>

namespace engine::native {

// C[M,N] += A[M,K] * B[K,N]
void gemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc);
// C[M,N] += A[M,K] * B[N,K]^T
void gemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc);
// C[M,N] += A[K,M]^T * B[K,N]
void gemm_tn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc);

// What a packed product does with C: by default C += A B; with `set`, C = relu?(bias[row] + A B)
// (0 + A B without a bias) whatever C held, written as each tile's sum is stored, so that a
// convolution needs no pass to fill C with its bias first and none for its ReLU after. The values
// are those of filling C with the bias, adding A B, then the ReLU.
struct GemmStore {
    bool set = false;
    const float* bias = nullptr;  // per row of C
    bool relu = false;
};

// A [M, K] packed once (packed_a_floats floats), for products that reuse it: the weights of a
// convolution across samples and runs. C[M,N] += A * B[K,N] (or as `store` says), for rows
// [row_begin, row_end) of C only where given (row_begin a multiple of kPackedRowStep), so that
// threads can split the rows.
inline constexpr int64_t kPackedRowStep = 6;
size_t packed_a_floats(int64_t M, int64_t K);
void pack_a_whole(int64_t M, int64_t K, const float* A, int64_t lda, float* out);
void gemm_packed_nn(int64_t M, int64_t N, int64_t K, const float* packed, const float* B, int64_t ldb, float* C,
                    int64_t ldc, int64_t row_begin = 0, int64_t row_end = -1, GemmStore store = {});

// Products with at most kNarrowColumns columns (convolutions on planes of 4 pixels or fewer) would
// leave most of the 16-wide micro-kernel idle; they use A packed in panels of narrow_rows() rows
// instead, and a kernel that vectorises over rows: three vectors of them, 48 rows on AVX-512 and 24
// on AVX2, per process as the CPU has it (each element's sum is the same either way).
// gemm_packed_narrow computes row panels [panel_begin, panel_end) of C += A B, so that threads can
// share them out.
constexpr int64_t kNarrowColumns = 4;
int64_t narrow_rows();
inline int64_t narrow_panels(int64_t M) { return (M + narrow_rows() - 1) / narrow_rows(); }
size_t packed_a_rows_floats(int64_t M, int64_t K);
void pack_a_rows(int64_t M, int64_t K, const float* A, int64_t lda, float* out);
void gemm_packed_narrow(int64_t M, int64_t N, int64_t K, const float* packed, const float* B, int64_t ldb, float* C,
                        int64_t ldc, int64_t panel_begin, int64_t panel_end);

}  // namespace engine::native
