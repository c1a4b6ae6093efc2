// Gemm through cuBLAS (row-major data, column-major library: Z^T = op(Y)^T op(X)^T), with the
// broadcast C written first by a kernel and the product accumulated onto it.
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_kernels.h"

namespace engine::cuda {

void CudaBackend::gemm_rm(bool tx, bool ty, int64_t m, int64_t n, int64_t k, float alpha, const float* x,
                          const float* y, float beta, float* z, const Node& node) {
    // X stored [m, k] (or [k, m] when tx), Y stored [k, n] (or [n, k] when ty), Z stored [m, n].
    CUBLAS_CHECK(cublasSgemm(cublas_, ty ? CUBLAS_OP_T : CUBLAS_OP_N, tx ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m),
                             int(k), &alpha, y, int(ty ? k : n), x, int(tx ? m : k), &beta, z, int(n)),
                 "node '" + node.name + "'");
}

void CudaBackend::gemm_forward(const OpArgs& a) {
    const Attrs& at = a.node.attrs;
    const TensorView A = a.in[0], B = a.in[1], Y = a.out;
    const int64_t M = Y.shape[0], N = Y.shape[1], K = at.trans_a ? A.shape[0] : A.shape[1];
    float beta = 0.0f;
    if (a.n_in > 2) {
        gemm_fill_c(stream_, Y.data, a.in[2].data, a.in[2].shape, M, N, at.beta);
        beta = 1.0f;
    }
    gemm_rm(at.trans_a, at.trans_b, M, N, K, at.alpha, A.data, B.data, beta, Y.data, a.node);
}

void CudaBackend::gemm_backward(const GradArgs& g) {
    const OpArgs& a = g.fwd;
    const Attrs& at = a.node.attrs;
    const TensorView A = a.in[0], B = a.in[1], gy = g.grad_out;
    const int64_t M = gy.shape[0], N = gy.shape[1], K = at.trans_a ? A.shape[0] : A.shape[1];
    const float alpha = at.alpha;
    if (float* gA = g.grad_in[0].data) {
        // d op(A) = alpha * gy * op(B)^T, [M, K]; stored transposed when trans_a.
        if (!at.trans_a)
            gemm_rm(false, !at.trans_b, M, K, N, alpha, gy.data, B.data, 1.0f, gA, a.node);
        else
            gemm_rm(at.trans_b, true, K, M, N, alpha, B.data, gy.data, 1.0f, gA, a.node);
    }
    if (float* gB = g.grad_in[1].data) {
        // d op(B) = alpha * op(A)^T * gy, [K, N]; stored transposed when trans_b.
        if (!at.trans_b)
            gemm_rm(!at.trans_a, false, K, N, M, alpha, A.data, gy.data, 1.0f, gB, a.node);
        else
            gemm_rm(true, at.trans_a, N, K, M, alpha, gy.data, A.data, 1.0f, gB, a.node);
    }
    if (a.n_in > 2 && g.grad_in[2].data) {
        // dC = beta * gy summed over the dimensions C broadcasts along: an Add's gradient for b, scaled.
        const Shape& cs = a.in[2].shape;
        Shape c2 = cs;  // as the reference indexes it: rank 1 is a row
        if (cs.rank == 1) c2 = Shape{1, cs[0]};
        if (cs.rank == 0) c2 = Shape{1, 1};
        const BroadcastDims d = broadcast_dims(gy.shape, c2, gy.shape);
        binary_backward(stream_, Op::Add, gy.data, a.in[2].data, gy.data, nullptr, g.grad_in[2].data, d, at.beta);
    }
}

}  // namespace engine::cuda
