// Pooling: Max/Avg (with padding, dilation, count_include_pad), the SDN heads' MixedPool and
// GlobalAvgPool. Forward: one thread per output element. Backward: one thread per input plane,
// visiting its windows in the reference's order, so overlapping windows accumulate without atomics
// and in a fixed order (simple rather than fast: pooling backward is a small share of a training step).
#include <cfloat>

#include "cuda/cuda_check.h"
#include "cuda/cuda_kernels.h"

namespace engine::cuda {

namespace {

struct PoolGeom {
    int64_t H, W, OH, OW;
    int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    bool include_pad;
};

PoolGeom geom(const Attrs& a, const Shape& xs, const Shape& ys) {
    return {xs[2],         xs[3],         ys[2],    ys[3],    a.kernel[0], a.kernel[1], a.stride[0],        a.stride[1],
            a.dilation[0], a.dilation[1], a.pad[0], a.pad[1], a.pad[2],    a.pad[3],    a.count_include_pad};
}

// Divisor of an average window: the real elements, or the window inside the padded input.
__device__ float divisor(const PoolGeom& g, int64_t oh, int64_t ow) {
    const int64_t hs = oh * g.sh - g.pt, ws = ow * g.sw - g.pl;
    if (g.include_pad) {
        const int64_t he = hs + (g.kh - 1) * g.dh + 1, we = ws + (g.kw - 1) * g.dw + 1;
        const int64_t ph = min(he, g.H + g.pb) - hs, pw = min(we, g.W + g.pr) - ws;
        return float(ph * pw);
    }
    int64_t c = 0;
    for (int64_t kh = 0; kh < g.kh; ++kh) {
        const int64_t ih = hs + kh * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t kw = 0; kw < g.kw; ++kw) {
            const int64_t iw = ws + kw * g.dw;
            if (iw >= 0 && iw < g.W) ++c;
        }
    }
    return float(c);
}

// Max (first maximum, as the reference), sum and divisor of one window.
__device__ void window(const PoolGeom& g, const float* xp, int64_t oh, int64_t ow, float& mx, int64_t& arg,
                       float& sum) {
    const int64_t hs = oh * g.sh - g.pt, ws = ow * g.sw - g.pl;
    mx = -FLT_MAX;
    arg = -1;
    sum = 0;
    for (int64_t kh = 0; kh < g.kh; ++kh) {
        const int64_t ih = hs + kh * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t kw = 0; kw < g.kw; ++kw) {
            const int64_t iw = ws + kw * g.dw;
            if (iw < 0 || iw >= g.W) continue;
            const int64_t i = ih * g.W + iw;
            sum += xp[i];
            if (arg < 0 || xp[i] > xp[arg]) arg = i, mx = xp[i];
        }
    }
}

__global__ void pool_fwd_k(int mode, PoolGeom g, const float* x, const float* alpha_p, float* y, int64_t n) {
    // mode 0: max, 1: average, 2: mixed
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(blockDim.x) * gridDim.x) {
        const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH, p = o / (g.OW * g.OH);
        float mx, sum;
        int64_t arg;
        window(g, x + p * g.H * g.W, oh, ow, mx, arg, sum);
        if (mode == 0)
            y[o] = arg < 0 ? -INFINITY : mx;
        else if (mode == 1)
            y[o] = sum / divisor(g, oh, ow);
        else {
            const float alpha = *alpha_p;
            y[o] = alpha * mx + (1 - alpha) * (sum / divisor(g, oh, ow));
        }
    }
}

__global__ void pool_bwd_k(int mode, PoolGeom g, const float* x, const float* alpha_p, const float* gy, float* gx,
                           float* partial, int64_t planes) {
    const int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (p >= planes) return;
    const float* xp = x + p * g.H * g.W;
    float* gp = gx ? gx + p * g.H * g.W : nullptr;
    const float alpha = mode == 2 ? *alpha_p : 0.0f;
    float galpha = 0;
    for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
            const float gv = gy[(p * g.OH + oh) * g.OW + ow];
            float mx, sum;
            int64_t arg;
            window(g, xp, oh, ow, mx, arg, sum);
            if (mode == 0) {
                if (arg >= 0 && gp) gp[arg] += gv;
                continue;
            }
            const float div = divisor(g, oh, ow);
            if (mode == 2) {
                galpha += gv * (mx - sum / div);
                if (gp) gp[arg] += alpha * gv;
            }
            if (!gp) continue;
            const float share = (mode == 2 ? (1 - alpha) * gv : gv) / div;
            const int64_t hs = oh * g.sh - g.pt, ws = ow * g.sw - g.pl;
            for (int64_t kh = 0; kh < g.kh; ++kh) {
                const int64_t ih = hs + kh * g.dh;
                if (ih < 0 || ih >= g.H) continue;
                for (int64_t kw = 0; kw < g.kw; ++kw) {
                    const int64_t iw = ws + kw * g.dw;
                    if (iw >= 0 && iw < g.W) gp[ih * g.W + iw] += share;
                }
            }
        }
    if (partial) partial[p] = galpha;
}

// One block sums the per-plane partials in a fixed order into *galpha.
__global__ void sum_partials_k(const float* partial, int64_t n, float* out) {
    __shared__ float sh[256];
    float acc = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out += sh[0];
}

// One warp per plane.
__global__ void gap_fwd_k(const float* x, float* y, int64_t planes, int64_t hw) {
    const int64_t p = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (p >= planes) return;
    float acc = 0;
    for (int64_t i = lane; i < hw; i += 32) acc += x[p * hw + i];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if (lane == 0) y[p] = acc / float(hw);
}
__global__ void gap_bwd_k(const float* gy, float* gx, int64_t planes, int64_t hw) {
    const int64_t n = planes * hw;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
        gx[i] += gy[i / hw] / float(hw);
}

}  // namespace

void pool_forward(cudaStream_t s, Op op, const Attrs& a, const float* x, const Shape& xs, float* y, const Shape& ys) {
    const Launch L = launch_1d(ys.numel());
    pool_fwd_k<<<L.blocks, L.threads, 0, s>>>(op == Op::MaxPool ? 0 : 1, geom(a, xs, ys), x, nullptr, y, ys.numel());
    CUDA_CHECK_LAUNCH("pool_fwd_k");
}
void pool_backward(cudaStream_t s, Op op, const Attrs& a, const float* x, const Shape& xs, const float* gy,
                   const Shape& ys, float* gx) {
    const int64_t planes = xs[0] * xs[1];
    pool_bwd_k<<<unsigned((planes + 127) / 128), 128, 0, s>>>(op == Op::MaxPool ? 0 : 1, geom(a, xs, ys), x, nullptr,
                                                              gy, gx, nullptr, planes);
    CUDA_CHECK_LAUNCH("pool_bwd_k");
}
void mixed_pool_forward(cudaStream_t s, const Attrs& a, const float* x, const Shape& xs, const float* alpha, float* y,
                        const Shape& ys) {
    const Launch L = launch_1d(ys.numel());
    pool_fwd_k<<<L.blocks, L.threads, 0, s>>>(2, geom(a, xs, ys), x, alpha, y, ys.numel());
    CUDA_CHECK_LAUNCH("pool_fwd_k (mixed)");
}
void mixed_pool_backward(cudaStream_t s, const Attrs& a, const float* x, const Shape& xs, const float* alpha,
                         const float* gy, const Shape& ys, float* gx, float* galpha, float* partial) {
    const int64_t planes = xs[0] * xs[1];
    pool_bwd_k<<<unsigned((planes + 127) / 128), 128, 0, s>>>(2, geom(a, xs, ys), x, alpha, gy, gx,
                                                              galpha ? partial : nullptr, planes);
    CUDA_CHECK_LAUNCH("pool_bwd_k (mixed)");
    if (galpha) {
        sum_partials_k<<<1, 256, 0, s>>>(partial, planes, galpha);
        CUDA_CHECK_LAUNCH("sum_partials_k");
    }
}
void global_avg_pool_forward(cudaStream_t s, const float* x, float* y, int64_t planes, int64_t hw) {
    gap_fwd_k<<<unsigned((planes * 32 + 255) / 256), 256, 0, s>>>(x, y, planes, hw);
    CUDA_CHECK_LAUNCH("gap_fwd_k");
}
void global_avg_pool_backward(cudaStream_t s, const float* gy, float* gx, int64_t planes, int64_t hw) {
    const Launch L = launch_1d(planes * hw);
    gap_bwd_k<<<L.blocks, L.threads, 0, s>>>(gy, gx, planes, hw);
    CUDA_CHECK_LAUNCH("gap_bwd_k");
}

}  // namespace engine::cuda
