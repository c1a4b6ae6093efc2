// BatchNorm (inference: element-wise; training: one block per channel computes the batch statistics
// in double, as the reference does, normalises and updates the running statistics), softmax and the
// Gemm's broadcast C.
#include "cuda/cuda_check.h"
#include "cuda/cuda_kernels.h"

namespace engine::cuda {

namespace {

constexpr int kBlock = 256;

__device__ void block_sum2(double& a, double& b, double* sh) {
    sh[threadIdx.x] = a;
    sh[kBlock + threadIdx.x] = b;
    __syncthreads();
    for (int s = kBlock / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            sh[threadIdx.x] += sh[threadIdx.x + s];
            sh[kBlock + threadIdx.x] += sh[kBlock + threadIdx.x + s];
        }
        __syncthreads();
    }
    a = sh[0];
    b = sh[kBlock];
    __syncthreads();
}

__global__ void bn_infer_k(const float* x, const float* scale, const float* bias, const float* mean, const float* var,
                           float eps, float* y, int64_t c, int64_t inner, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x) {
        const int64_t ch = (i / inner) % c;
        const float inv = 1.0f / sqrtf(var[ch] + eps);
        y[i] = (x[i] - mean[ch]) * inv * scale[ch] + bias[ch];
    }
}

// Batch mean and (biased) variance of channel ch over its `count` values, computed by the whole block.
__device__ void channel_moments(const float* x, int64_t ch, int64_t c, int64_t inner, int64_t count, double* sh,
                                double& m, double& v) {
    double s = 0, s2 = 0;
    for (int64_t t = threadIdx.x; t < count; t += kBlock) {
        const double xv = x[((t / inner) * c + ch) * inner + t % inner];
        s += xv;
        s2 += xv * xv;
    }
    block_sum2(s, s2, sh);
    m = s / double(count);
    v = fmax(0.0, s2 / double(count) - m * m);
}

__global__ void bn_train_k(const float* x, const float* scale, const float* bias, float* mean, float* var, float eps,
                           float momentum, float* y, int64_t n, int64_t c, int64_t inner) {
    __shared__ double sh[2 * kBlock];
    const int64_t ch = blockIdx.x, count = n * inner;
    double m, v;
    channel_moments(x, ch, c, inner, count, sh, m, v);
    const double inv = 1.0 / sqrt(v + eps);
    for (int64_t t = threadIdx.x; t < count; t += kBlock) {
        const int64_t k = ((t / inner) * c + ch) * inner + t % inner;
        y[k] = float((x[k] - m) * inv * scale[ch] + bias[ch]);
    }
    if (threadIdx.x == 0) {  // running statistics: unbiased variance, as PyTorch
        const double unbiased = count > 1 ? v * double(count) / double(count - 1) : v;
        mean[ch] = float((1 - momentum) * mean[ch] + momentum * m);
        var[ch] = float((1 - momentum) * var[ch] + momentum * unbiased);
    }
}

__global__ void bn_bwd_k(const float* x, const float* scale, const float* mean, const float* var, float eps,
                         const float* gy, float* gx, float* gscale, float* gbias, int64_t n, int64_t c, int64_t inner,
                         bool training) {
    __shared__ double sh[2 * kBlock];
    const int64_t ch = blockIdx.x, count = n * inner;
    double m = mean[ch], v = var[ch];
    if (training) channel_moments(x, ch, c, inner, count, sh, m, v);
    const double inv = 1.0 / sqrt(v + eps);
    double sg = 0, sgx = 0;
    for (int64_t t = threadIdx.x; t < count; t += kBlock) {
        const int64_t k = ((t / inner) * c + ch) * inner + t % inner;
        sg += gy[k];
        sgx += gy[k] * (x[k] - m) * inv;
    }
    block_sum2(sg, sgx, sh);
    if (threadIdx.x == 0) {
        if (gscale) gscale[ch] += float(sgx);
        if (gbias) gbias[ch] += float(sg);
    }
    if (!gx) return;
    for (int64_t t = threadIdx.x; t < count; t += kBlock) {
        const int64_t k = ((t / inner) * c + ch) * inner + t % inner;
        double g = gy[k];
        if (training) g = g - sg / double(count) - (x[k] - m) * inv * sgx / double(count);
        gx[k] += float(g * scale[ch] * inv);
    }
}

__global__ void softmax_fwd_k(const float* x, float* y, int64_t outer, int64_t len, int64_t inner) {
    const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (r >= outer * inner) return;
    const int64_t o = r / inner, in = r % inner;
    const float* xp = x + o * len * inner + in;
    float* yp = y + o * len * inner + in;
    float mx = xp[0];
    for (int64_t k = 1; k < len; ++k) mx = fmaxf(mx, xp[k * inner]);
    double sum = 0;
    for (int64_t k = 0; k < len; ++k) sum += exp(double(xp[k * inner]) - mx);
    for (int64_t k = 0; k < len; ++k) yp[k * inner] = float(exp(double(xp[k * inner]) - mx) / sum);
}

__global__ void softmax_bwd_k(const float* y, const float* gy, float* gx, int64_t outer, int64_t len, int64_t inner) {
    const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (r >= outer * inner) return;
    const int64_t base = (r / inner) * len * inner + r % inner;
    double dot = 0;
    for (int64_t k = 0; k < len; ++k) dot += double(gy[base + k * inner]) * y[base + k * inner];
    for (int64_t k = 0; k < len; ++k) gx[base + k * inner] += float(y[base + k * inner] * (gy[base + k * inner] - dot));
}

__global__ void gemm_fill_c_k(float* y, const float* c, int64_t c_rows, int64_t c_cols, int64_t m, int64_t n,
                              float beta) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m * n; i += int64_t(blockDim.x) * gridDim.x) {
        const int64_t r = i / n, col = i % n;
        y[i] = beta * c[(c_rows == 1 ? 0 : r) * c_cols + (c_cols == 1 ? 0 : col)];
    }
}

}  // namespace

void batchnorm_forward(cudaStream_t s, const Attrs& a, const float* x, const float* scale, const float* bias,
                       float* mean, float* var, float* y, int64_t n, int64_t c, int64_t inner, bool training) {
    if (training) {
        bn_train_k<<<unsigned(c), kBlock, 0, s>>>(x, scale, bias, mean, var, a.epsilon, a.momentum, y, n, c, inner);
        CUDA_CHECK_LAUNCH("bn_train_k");
        return;
    }
    const Launch L = launch_1d(n * c * inner);
    bn_infer_k<<<L.blocks, L.threads, 0, s>>>(x, scale, bias, mean, var, a.epsilon, y, c, inner, n * c * inner);
    CUDA_CHECK_LAUNCH("bn_infer_k");
}

void batchnorm_backward(cudaStream_t s, const Attrs& a, const float* x, const float* scale, const float* mean,
                        const float* var, const float* gy, float* gx, float* gscale, float* gbias, int64_t n, int64_t c,
                        int64_t inner, bool training) {
    bn_bwd_k<<<unsigned(c), kBlock, 0, s>>>(x, scale, mean, var, a.epsilon, gy, gx, gscale, gbias, n, c, inner,
                                            training);
    CUDA_CHECK_LAUNCH("bn_bwd_k");
}

void softmax_forward(cudaStream_t s, const float* x, float* y, int64_t outer, int64_t len, int64_t inner) {
    const int64_t rows = outer * inner;
    softmax_fwd_k<<<unsigned((rows + 127) / 128), 128, 0, s>>>(x, y, outer, len, inner);
    CUDA_CHECK_LAUNCH("softmax_fwd_k");
}
void softmax_backward(cudaStream_t s, const float* y, const float* gy, float* gx, int64_t outer, int64_t len,
                      int64_t inner) {
    const int64_t rows = outer * inner;
    softmax_bwd_k<<<unsigned((rows + 127) / 128), 128, 0, s>>>(y, gy, gx, outer, len, inner);
    CUDA_CHECK_LAUNCH("softmax_bwd_k");
}

void gemm_fill_c(cudaStream_t s, float* y, const float* c, const Shape& cs, int64_t m, int64_t n, float beta) {
    // As the reference: rank 2 broadcasts each dim of extent 1; rank 1 is a row (or a scalar).
    int64_t rows = 1, cols = 1;
    if (cs.rank == 2)
        rows = cs[0], cols = cs[1];
    else if (cs.rank == 1)
        cols = cs[0];
    const Launch L = launch_1d(m * n);
    gemm_fill_c_k<<<L.blocks, L.threads, 0, s>>>(y, c, rows, cols, m, n, beta);
    CUDA_CHECK_LAUNCH("gemm_fill_c_k");
}

}  // namespace engine::cuda
