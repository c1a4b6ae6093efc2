// The cuda backend's own kernels (the .cu files), as plain host functions that launch on a stream.
// Backward functions ACCUMULATE into their gradients, as the Backend interface asks. Every reduction
// runs in a fixed order (blocks and trees of fixed shape, no float atomics), so results repeat bit for
// bit from run to run on one device.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/cuda_host_plan.h"
#include "engine/graph.h"

namespace engine::cuda {

// Element-wise (cuda_elementwise.cu).
void relu_forward(cudaStream_t s, const float* x, float* y, int64_t n);
void relu_backward(cudaStream_t s, const float* y, const float* gy, float* gx, int64_t n);
void accumulate(cudaStream_t s, const float* src, float* dst, int64_t n, float scale = 1.0f);  // dst += scale*src
void copy(cudaStream_t s, const float* src, float* dst, int64_t n);
// y[i] = relu?(y[i] + bias[channel] + residual[i]); bias and residual may be null. plane: H*W.
void conv_epilogue(cudaStream_t s, float* y, const float* bias, const float* residual, bool relu, int64_t n,
                   int64_t plane, int channels);
// Sum over n and the plane per channel, accumulated into gbias (one block per channel).
void bias_backward(cudaStream_t s, const float* gy, float* gbias, int batch, int channels, int64_t plane);
void binary_forward(cudaStream_t s, Op op, const float* a, const float* b, float* y, const BroadcastDims& d);
// ga/gb may be null. A broadcast operand's gradient is reduced by one block per element. Every term
// is multiplied by `scale` (Gemm's beta for its C).
void binary_backward(cudaStream_t s, Op op, const float* a, const float* b, const float* gy, float* ga, float* gb,
                     const BroadcastDims& d, float scale = 1.0f);
void pad_forward(cudaStream_t s, const Attrs& a, const float* x, const Shape& xs, float* y, const Shape& ys);
void pad_backward(cudaStream_t s, const Attrs& a, const float* gy, const Shape& ys, float* gx, const Shape& xs);
// 4-D pad of [n, c, h, w] by (top, left, bottom, right) with zeros, and its accumulating inverse.
void pad2d_forward(cudaStream_t s, const float* x, float* y, int n, int c, int h, int w, int top, int left, int bottom,
                   int right);
void pad2d_backward(cudaStream_t s, const float* gy, float* gx, int n, int c, int h, int w, int top, int left,
                    int bottom, int right);
void dropout_forward(cudaStream_t s, float ratio, uint64_t seed, const float* x, float* y, int64_t n, bool training);
void dropout_backward(cudaStream_t s, float ratio, uint64_t seed, const float* gy, float* gx, int64_t n, bool training);

// Pooling (cuda_pool.cu); shapes are NCHW.
void pool_forward(cudaStream_t s, Op op, const Attrs& a, const float* x, const Shape& xs, float* y, const Shape& ys);
void pool_backward(cudaStream_t s, Op op, const Attrs& a, const float* x, const Shape& xs, const float* gy,
                   const Shape& ys, float* gx);
void mixed_pool_forward(cudaStream_t s, const Attrs& a, const float* x, const Shape& xs, const float* alpha, float* y,
                        const Shape& ys);
// partial: scratch of xs[0]*xs[1] floats (per-plane sums of the alpha gradient).
void mixed_pool_backward(cudaStream_t s, const Attrs& a, const float* x, const Shape& xs, const float* alpha,
                         const float* gy, const Shape& ys, float* gx, float* galpha, float* partial);
void global_avg_pool_forward(cudaStream_t s, const float* x, float* y, int64_t planes, int64_t hw);
void global_avg_pool_backward(cudaStream_t s, const float* gy, float* gx, int64_t planes, int64_t hw);

// BatchNorm, softmax, Gemm helpers (cuda_layers.cu); x viewed as [n, c, inner].
void batchnorm_forward(cudaStream_t s, const Attrs& a, const float* x, const float* scale, const float* bias,
                       float* mean, float* var, float* y, int64_t n, int64_t c, int64_t inner, bool training);
void batchnorm_backward(cudaStream_t s, const Attrs& a, const float* x, const float* scale, const float* mean,
                        const float* var, const float* gy, float* gx, float* gscale, float* gbias, int64_t n, int64_t c,
                        int64_t inner, bool training);
void softmax_forward(cudaStream_t s, const float* x, float* y, int64_t outer, int64_t len, int64_t inner);
void softmax_backward(cudaStream_t s, const float* y, const float* gy, float* gx, int64_t outer, int64_t len,
                      int64_t inner);
// y[i, j] = beta * C broadcast to [m, n] (C as numpy broadcasting; the Gemm then adds alpha*A*B).
void gemm_fill_c(cudaStream_t s, float* y, const float* c, const Shape& cs, int64_t m, int64_t n, float beta);

// Early exit on the device (cuda_exit_kernels.cu): the per-sample result the decision writes.
struct DeviceSampleResult {
    int cls;
    float prob;
    int exit;
    int pad;
    unsigned long long ns;  // device clock (globaltimer) from the start of the batch
};
struct ExitState {  // device memory, one per executor
    int n_live;     // rows still running (set by the host before launch, then by Decide)
    int pad;
    unsigned long long t0;  // globaltimer at the start
};
struct CompactValue {
    float* data;
    int64_t row;  // floats per sample
};
// Stamps the start time and numbers the rows (row_of[r] = r for every row up to max_batch).
void exit_start(cudaStream_t s, ExitState* st, int* row_of, int max_batch);
// Sets the SWITCH handle to bucket_index(n_live) (buckets descending, count entries).
void exit_select_bucket(cudaStream_t s, const ExitState* st, const int* buckets, int count, unsigned long long handle);
// Top class of each live row of logits [n_live, classes]; rows with prob >= threshold (or all, when
// last) write their result at results[row_of[r]] and leave; the rest are listed in keep (in order), row_of
// follows them, n_live becomes their count and the IF handle (unless last) says whether any remain.
void exit_decide(cudaStream_t s, ExitState* st, const float* logits, int classes, float threshold, bool last, int exit,
                 int* row_of, int* keep, DeviceSampleResult* results, unsigned long long if_handle);
// Rows keep[0..n_live) move to rows 0..n_live of every value (in order, so in place is safe).
void exit_compact(cudaStream_t s, const ExitState* st, const int* keep, const CompactValue* values, int count,
                  int64_t max_row);

}  // namespace engine::cuda
