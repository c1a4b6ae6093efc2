// One GEMM per sample has depth P (the plane) in the weight gradient and P columns in the input
// gradient. On small planes (MobileNet's 4x4 and 2x2 layers, 512-1024 channels) that is a product
// of depth 16 or 4 that reads and writes all of gw for every sample, and a 16-wide kernel on 4
// columns. Samples are therefore taken several at a time: their planes, side by side, make one
// product of depth (samples x P), kDepth or less.
#include "native_pointwise_backward.h"

#include <algorithm>

#include "native_gemm.h"

namespace engine::native {

namespace {

constexpr int64_t kDepth = 256;

int64_t samples_per_chunk(int64_t P) { return std::max<int64_t>(1, kDepth / P); }

// rows x (nb samples' planes side by side) <- [nb, rows, P] from sample n0.
void gather(const float* t, int64_t n0, int64_t nb, int64_t rows, int64_t P, float* out) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t s = 0; s < nb; ++s) std::copy_n(t + ((n0 + s) * rows + r) * P, P, out + (r * nb + s) * P);
}

void scatter_add(const float* in, int64_t n0, int64_t nb, int64_t rows, int64_t P, float* t) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t s = 0; s < nb; ++s) {
            const float* __restrict src = in + (r * nb + s) * P;
            float* __restrict dst = t + ((n0 + s) * rows + r) * P;
            for (int64_t p = 0; p < P; ++p) dst[p] += src[p];
        }
}

}  // namespace

size_t pointwise_backward_scratch(const Shape& x, const Shape& w) {
    const int64_t P = x[2] * x[3], chunk = samples_per_chunk(P);
    return chunk == 1 ? 0 : size_t((w[0] + 2 * x[1]) * chunk * P);
}

void pointwise_backward(TensorView x, TensorView w, TensorView gy, TensorView gx, float* gw, float* gbias,
                        int64_t n_begin, int64_t n_end, float* scratch) {
    const int64_t C = x.shape[1], K = w.shape[0], P = x.shape[2] * x.shape[3], chunk = samples_per_chunk(P);
    for (int64_t n0 = n_begin; n0 < n_end; n0 += chunk) {
        const int64_t nb = std::min(chunk, n_end - n0), cols = nb * P;
        const float* g = gy.data + n0 * K * P;
        const float* in = x.data + n0 * C * P;
        float* g_side = scratch;             // [K, cols]
        float* x_side = g_side + K * cols;   // [C, cols]
        float* gx_side = x_side + C * cols;  // [C, cols]
        if (chunk > 1) {
            gather(gy.data, n0, nb, K, P, g_side);
            g = g_side;
            if (gw) {
                gather(x.data, n0, nb, C, P, x_side);
                in = x_side;
            }
        }
        if (gw) gemm_nt(K, C, cols, g, cols, in, cols, gw, C);
        if (gbias)
            for (int64_t k = 0; k < K; ++k)
                for (int64_t j = 0; j < cols; ++j) gbias[k] += g[k * cols + j];
        if (!gx.data) continue;
        if (chunk == 1) {
            gemm_tn(C, P, K, w.data, C, g, P, gx.data + n0 * C * P, P);
            continue;
        }
        std::fill(gx_side, gx_side + C * cols, 0.0f);
        gemm_tn(C, cols, K, w.data, C, g, cols, gx_side, cols);
        scatter_add(gx_side, n0, nb, C, P, gx.data);
    }
}

}  // namespace engine::native
