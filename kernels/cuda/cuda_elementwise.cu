// Element-wise kernels: ReLU, the convolution epilogue, broadcasting binary ops, Pad, Dropout.
// Grid-stride loops sized by launch_1d (cuda_host_plan.cpp).
#include "cuda/cuda_check.h"
#include "cuda/cuda_kernels.h"

namespace engine::cuda {

namespace {

#define GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

__global__ void relu_fwd_k(const float* x, float* y, int64_t n) { GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
__global__ void relu_bwd_k(const float* y, const float* gy, float* gx, int64_t n) {
    GRID_STRIDE(i, n) gx[i] += y[i] > 0.0f ? gy[i] : 0.0f;
}
__global__ void accumulate_k(const float* src, float* dst, int64_t n, float scale) {
    GRID_STRIDE(i, n) dst[i] += scale * src[i];
}
__global__ void copy_k(const float* src, float* dst, int64_t n) { GRID_STRIDE(i, n) dst[i] = src[i]; }
__global__ void epilogue_k(float* y, const float* bias, const float* res, bool relu, int64_t n, int64_t plane,
                           int channels) {
    GRID_STRIDE(i, n) {
        float v = y[i];
        if (bias) v += bias[(i / plane) % channels];
        if (res) v += res[i];
        y[i] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

// Fixed-shape block sum (256 threads): the same order every run.
__device__ float block_sum(float v, float* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

__global__ void bias_bwd_k(const float* gy, float* gb, int batch, int channels, int64_t plane) {
    __shared__ float sh[256];
    const int c = blockIdx.x;
    float acc = 0;
    for (int n = 0; n < batch; ++n) {
        const float* p = gy + (int64_t(n) * channels + c) * plane;
        for (int64_t i = threadIdx.x; i < plane; i += blockDim.x) acc += p[i];
    }
    const float total = block_sum(acc, sh);
    if (threadIdx.x == 0) gb[c] += total;
}

__device__ float apply(Op op, float u, float v) {
    switch (op) {
        case Op::Add:
            return u + v;
        case Op::Sub:
            return u - v;
        case Op::Mul:
            return u * v;
        default:
            return u / v;
    }
}
// d(u op v)/du and /dv, as the reference loops define them.
__device__ void derivs(Op op, float u, float v, float& da, float& db) {
    da = 1, db = 1;
    switch (op) {
        case Op::Add:
            break;
        case Op::Sub:
            db = -1;
            break;
        case Op::Mul:
            da = v;
            db = u;
            break;
        default:
            da = 1 / v;
            db = -u / (v * v);
            break;
    }
}

__device__ void operand_offsets(const BroadcastDims& d, int64_t i, int64_t& ia, int64_t& ib) {
    ia = 0, ib = 0;
    for (int k = d.rank - 1; k >= 0; --k) {
        const int64_t idx = i % d.y[k];
        i /= d.y[k];
        ia += idx * d.a_stride[k];
        ib += idx * d.b_stride[k];
    }
}

__global__ void binary_fwd_k(Op op, const float* a, const float* b, float* y, BroadcastDims d, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t ia, ib;
        operand_offsets(d, i, ia, ib);
        y[i] = apply(op, a[ia], b[ib]);
    }
}

// Gradient of an operand that has the output's shape: element-wise.
__global__ void binary_bwd_same_k(Op op, const float* a, const float* b, const float* gy, float* g, bool for_a,
                                  BroadcastDims d, int64_t n, float scale) {
    GRID_STRIDE(i, n) {
        int64_t ia, ib;
        operand_offsets(d, i, ia, ib);
        float da, db;
        derivs(op, a[ia], b[ib], da, db);
        g[for_a ? ia : ib] += scale * (gy[i] * (for_a ? da : db));
    }
}

// Gradient of a broadcast operand: block e sums the terms of every output element that reads operand
// element e. keep[k]: the operand's extent along output dim k (1 where it broadcasts).
struct ReduceDims {
    int rank;
    int64_t y[Shape::kMaxRank], keep[Shape::kMaxRank];
    int64_t per_element;  // output elements per operand element
};
__global__ void binary_bwd_reduce_k(Op op, const float* a, const float* b, const float* gy, float* g, bool for_a,
                                    BroadcastDims d, ReduceDims r, float scale) {
    __shared__ float sh[256];
    // Operand element e's index along each output dim (0 where broadcast).
    int64_t base[Shape::kMaxRank];
    int64_t e = blockIdx.x;
    for (int k = r.rank - 1; k >= 0; --k) {
        base[k] = e % r.keep[k];
        e /= r.keep[k];
    }
    float acc = 0;
    for (int64_t t = threadIdx.x; t < r.per_element; t += blockDim.x) {
        int64_t rest = t, yi = 0, ystride = 1, ia = 0, ib = 0;
        int64_t idx[Shape::kMaxRank];
        for (int k = r.rank - 1; k >= 0; --k) {
            if (r.keep[k] == 1) {
                idx[k] = rest % r.y[k];
                rest /= r.y[k];
            } else {
                idx[k] = base[k];
            }
        }
        for (int k = r.rank - 1; k >= 0; --k) {
            yi += idx[k] * ystride;
            ystride *= r.y[k];
            ia += idx[k] * d.a_stride[k];
            ib += idx[k] * d.b_stride[k];
        }
        float da, db;
        derivs(op, a[ia], b[ib], da, db);
        acc += gy[yi] * (for_a ? da : db);
    }
    const float total = block_sum(acc, sh);
    if (threadIdx.x == 0) g[blockIdx.x] += scale * total;
}

struct PadDims {
    int rank;
    int64_t x[Shape::kMaxRank], y[Shape::kMaxRank], begin[Shape::kMaxRank];
};
__global__ void pad_fwd_k(const float* x, float* y, PadDims p, float value, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t rest = i, xi = 0, xstride = 1;
        bool inside = true;
        for (int k = p.rank - 1; k >= 0; --k) {
            const int64_t j = rest % p.y[k] - p.begin[k];
            rest /= p.y[k];
            if (j < 0 || j >= p.x[k]) inside = false;
            xi += j * xstride;
            xstride *= p.x[k];
        }
        y[i] = inside ? x[xi] : value;
    }
}
__global__ void pad_bwd_k(const float* gy, float* gx, PadDims p, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t rest = i, yi = 0, ystride = 1;
        for (int k = p.rank - 1; k >= 0; --k) {
            const int64_t j = rest % p.x[k];
            rest /= p.x[k];
            yi += (j + p.begin[k]) * ystride;
            ystride *= p.y[k];
        }
        gx[i] += gy[yi];
    }
}

// The reference's counter-based splitmix64 mask, bit for bit.
__device__ bool dropped(uint64_t seed, int64_t i, float ratio) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * uint64_t(i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53 < double(ratio);
}
__global__ void dropout_fwd_k(float ratio, uint64_t seed, const float* x, float* y, int64_t n, bool training) {
    const float keep_scale = training ? 1.0f / (1.0f - ratio) : 1.0f;
    GRID_STRIDE(i, n) y[i] = training && dropped(seed, i, ratio) ? 0.0f : x[i] * keep_scale;
}
__global__ void dropout_bwd_k(float ratio, uint64_t seed, const float* gy, float* gx, int64_t n, bool training) {
    const float keep_scale = training ? 1.0f / (1.0f - ratio) : 1.0f;
    GRID_STRIDE(i, n) if (!(training && dropped(seed, i, ratio))) gx[i] += gy[i] * keep_scale;
}

PadDims pad_dims(const Shape& xs, const Shape& ys, const int64_t* begin) {
    PadDims p{};
    p.rank = xs.rank;
    for (int k = 0; k < xs.rank; ++k) p.x[k] = xs[k], p.y[k] = ys[k], p.begin[k] = begin[k];
    return p;
}

}  // namespace

#define LAUNCH(kernel, n, ...)                              \
    do {                                                    \
        if ((n) <= 0) break;                                \
        const Launch L = launch_1d(n);                      \
        kernel<<<L.blocks, L.threads, 0, s>>>(__VA_ARGS__); \
        CUDA_CHECK_LAUNCH(#kernel);                         \
    } while (0)

void relu_forward(cudaStream_t s, const float* x, float* y, int64_t n) { LAUNCH(relu_fwd_k, n, x, y, n); }
void relu_backward(cudaStream_t s, const float* y, const float* gy, float* gx, int64_t n) {
    LAUNCH(relu_bwd_k, n, y, gy, gx, n);
}
void accumulate(cudaStream_t s, const float* src, float* dst, int64_t n, float scale) {
    LAUNCH(accumulate_k, n, src, dst, n, scale);
}
void copy(cudaStream_t s, const float* src, float* dst, int64_t n) { LAUNCH(copy_k, n, src, dst, n); }
void conv_epilogue(cudaStream_t s, float* y, const float* bias, const float* residual, bool relu, int64_t n,
                   int64_t plane, int channels) {
    LAUNCH(epilogue_k, n, y, bias, residual, relu, n, plane, channels);
}
void bias_backward(cudaStream_t s, const float* gy, float* gbias, int batch, int channels, int64_t plane) {
    bias_bwd_k<<<channels, 256, 0, s>>>(gy, gbias, batch, channels, plane);
    CUDA_CHECK_LAUNCH("bias_bwd_k");
}

void binary_forward(cudaStream_t s, Op op, const float* a, const float* b, float* y, const BroadcastDims& d) {
    int64_t n = 1;
    for (int k = 0; k < d.rank; ++k) n *= d.y[k];
    LAUNCH(binary_fwd_k, n, op, a, b, y, d, n);
}

void binary_backward(cudaStream_t s, Op op, const float* a, const float* b, const float* gy, float* ga, float* gb,
                     const BroadcastDims& d, float scale) {
    int64_t n = 1;
    for (int k = 0; k < d.rank; ++k) n *= d.y[k];
    for (int which = 0; which < 2; ++which) {
        float* g = which == 0 ? ga : gb;
        if (!g) continue;
        const bool same = which == 0 ? d.a_same : d.b_same;
        if (same) {
            LAUNCH(binary_bwd_same_k, n, op, a, b, gy, g, which == 0, d, n, scale);
            continue;
        }
        const int64_t* stride = which == 0 ? d.a_stride : d.b_stride;
        ReduceDims r{};
        r.rank = d.rank;
        int64_t elements = 1;
        for (int k = 0; k < d.rank; ++k) {
            r.y[k] = d.y[k];
            r.keep[k] = stride[k] == 0 ? 1 : d.y[k];
            elements *= r.keep[k];
        }
        r.per_element = n / elements;
        binary_bwd_reduce_k<<<unsigned(elements), 256, 0, s>>>(op, a, b, gy, g, which == 0, d, r, scale);
        CUDA_CHECK_LAUNCH("binary_bwd_reduce_k");
    }
}

void pad_forward(cudaStream_t s, const Attrs& a, const float* x, const Shape& xs, float* y, const Shape& ys) {
    const PadDims p = pad_dims(xs, ys, a.pads.data());
    LAUNCH(pad_fwd_k, ys.numel(), x, y, p, a.pad_value, ys.numel());
}
void pad_backward(cudaStream_t s, const Attrs& a, const float* gy, const Shape& ys, float* gx, const Shape& xs) {
    const PadDims p = pad_dims(xs, ys, a.pads.data());
    LAUNCH(pad_bwd_k, xs.numel(), gy, gx, p, xs.numel());
}
void pad2d_forward(cudaStream_t s, const float* x, float* y, int n, int c, int h, int w, int top, int left, int bottom,
                   int right) {
    const Shape xs{n, c, h, w}, ys{n, c, h + top + bottom, w + left + right};
    const int64_t begin[4] = {0, 0, top, left};
    const PadDims p = pad_dims(xs, ys, begin);
    LAUNCH(pad_fwd_k, ys.numel(), x, y, p, 0.0f, ys.numel());
}
void pad2d_backward(cudaStream_t s, const float* gy, float* gx, int n, int c, int h, int w, int top, int left,
                    int bottom, int right) {
    const Shape xs{n, c, h, w}, ys{n, c, h + top + bottom, w + left + right};
    const int64_t begin[4] = {0, 0, top, left};
    const PadDims p = pad_dims(xs, ys, begin);
    LAUNCH(pad_bwd_k, xs.numel(), gy, gx, p, xs.numel());
}
void dropout_forward(cudaStream_t s, float ratio, uint64_t seed, const float* x, float* y, int64_t n, bool training) {
    LAUNCH(dropout_fwd_k, n, ratio, seed, x, y, n, training);
}
void dropout_backward(cudaStream_t s, float ratio, uint64_t seed, const float* gy, float* gx, int64_t n,
                      bool training) {
    LAUNCH(dropout_bwd_k, n, ratio, seed, gy, gx, n, training);
}

}  // namespace engine::cuda
