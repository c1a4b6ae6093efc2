// Early exit on the device: the kernels that make the exit decision inside a CUDA graph and set the
// conditional nodes' handles (cuda_graph_exits.cpp wires them), and the compaction of live rows.
#include "cuda/cuda_check.h"
#include "cuda/cuda_kernels.h"

namespace engine::cuda {

namespace {

constexpr int kDecideThreads = 256;

__device__ unsigned long long global_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__global__ void start_k(ExitState* st, int* row_of, int max_batch) {
    if (threadIdx.x == 0) st->t0 = global_ns();
    for (int r = threadIdx.x; r < max_batch; r += blockDim.x) row_of[r] = r;
}

__global__ void select_k(const ExitState* st, const int* buckets, int count, cudaGraphConditionalHandle h) {
    const int n = st->n_live;
    int i = 0;  // bucket_index() of cuda_host_plan.h
    while (i + 1 < count && buckets[i + 1] >= n) ++i;
    cudaGraphSetConditional(h, i);
}

// The statistic of top_class() (plan.cpp), computed the same way: first maximum, double sum.
__device__ void top_class(const float* z, int classes, int& cls, float& prob) {
    int best = 0;
    for (int c = 1; c < classes; ++c)
        if (z[c] > z[best]) best = c;
    double sum = 0;
    for (int c = 0; c < classes; ++c) sum += exp(double(z[c]) - z[best]);
    cls = best;
    prob = float(1.0 / sum);
}

__global__ void decide_k(ExitState* st, const float* logits, int classes, float threshold, bool last, int exit,
                         int* row_of, int* keep, DeviceSampleResult* results, bool has_if,
                         cudaGraphConditionalHandle if_handle) {
    __shared__ int scan[kDecideThreads];
    const int n = st->n_live;
    const unsigned long long ns = global_ns() - st->t0;
    int kept = 0;
    for (int start = 0; start < n; start += kDecideThreads) {
        const int r = start + threadIdx.x;
        int cls = 0, origin = 0;
        float prob = 0;
        bool stays = false;
        if (r < n) {
            top_class(logits + int64_t(r) * classes, classes, cls, prob);
            stays = !(last || prob >= threshold);
            origin = row_of[r];
        }
        // Inclusive scan of the stay flags (Hillis-Steele over the block).
        scan[threadIdx.x] = stays;
        __syncthreads();
        for (int off = 1; off < kDecideThreads; off <<= 1) {
            const int v = threadIdx.x >= off ? scan[threadIdx.x - off] : 0;
            __syncthreads();
            scan[threadIdx.x] += v;
            __syncthreads();
        }
        const int pos = kept + scan[threadIdx.x] - stays;  // exclusive
        const int chunk_kept = scan[kDecideThreads - 1];
        // Every row_of read of this chunk happened above; positions written are <= r.
        if (r < n) {
            if (stays) {
                keep[pos] = r;
                row_of[pos] = origin;
            } else {
                results[origin] = {cls, prob, exit, 0, ns};
            }
        }
        kept += chunk_kept;
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        st->n_live = kept;
        if (has_if) cudaGraphSetConditional(if_handle, kept > 0 ? 1u : 0u);
    }
}

// Block (x, v): columns of value v; each thread moves its columns row by row in ascending order,
// and keep[r] >= r, so a source row is never overwritten before it is read.
__global__ void compact_k(const ExitState* st, const int* keep, const CompactValue* values) {
    const CompactValue v = values[blockIdx.y];
    const int n = st->n_live;
    for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < v.row;
         col += int64_t(blockDim.x) * gridDim.x)
        for (int r = 0; r < n; ++r) {
            const int from = keep[r];
            if (from != r) v.data[int64_t(r) * v.row + col] = v.data[int64_t(from) * v.row + col];
        }
}

}  // namespace

void exit_start(cudaStream_t s, ExitState* st, int* row_of, int max_batch) {
    start_k<<<1, 256, 0, s>>>(st, row_of, max_batch);
    CUDA_CHECK_LAUNCH("start_k");
}
void exit_select_bucket(cudaStream_t s, const ExitState* st, const int* buckets, int count, unsigned long long handle) {
    select_k<<<1, 1, 0, s>>>(st, buckets, count, handle);
    CUDA_CHECK_LAUNCH("select_k");
}
void exit_decide(cudaStream_t s, ExitState* st, const float* logits, int classes, float threshold, bool last, int exit,
                 int* row_of, int* keep, DeviceSampleResult* results, unsigned long long if_handle) {
    decide_k<<<1, kDecideThreads, 0, s>>>(st, logits, classes, threshold, last, exit, row_of, keep, results, !last,
                                          if_handle);
    CUDA_CHECK_LAUNCH("decide_k");
}
void exit_compact(cudaStream_t s, const ExitState* st, const int* keep, const CompactValue* values, int count,
                  int64_t max_row) {
    if (count == 0) return;
    const unsigned bx = unsigned(std::min<int64_t>((max_row + 255) / 256, 64));
    compact_k<<<dim3(bx, unsigned(count)), 256, 0, s>>>(st, keep, values);
    CUDA_CHECK_LAUNCH("compact_k");
}

}  // namespace engine::cuda
