// Host-side planning for the cuda backend: everything that can be decided (and unit-tested) without a
// device or the CUDA headers. cuDNN convolution parameters from a node, the convolution algorithm
// policy, broadcast strides for the element-wise kernels, launch sizes and the batch buckets of
// on-device early exit. Compiled into every build, CUDA or not, so CI tests it on any machine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace engine::cuda {

// A 2-D convolution as cuDNN takes it (NCHW, filters [K, C/groups, KH, KW]). cuDNN pads both sides of a
// dimension alike; a node whose top/bottom or left/right pads differ is convolved with pad 0 over an
// input padded explicitly to [n, c, h + pad_top + pad_bottom, w + pad_left + pad_right].
struct ConvParams {
    int n, c, h, w;    // input
    int k, kh, kw;     // filters
    int oh, ow;        // output
    int pad_h, pad_w;  // what cuDNN gets (0 when explicit_pad)
    int stride_h, stride_w, dil_h, dil_w, groups;
    bool explicit_pad;
    int pad_top, pad_left, pad_bottom, pad_right;
    int64_t padded_input_floats() const;  // n*c*(h+top+bottom)*(w+left+right); 0 unless explicit_pad
};
// Every field equal (a node address can be reused by another plan's node after the first plan is gone).
bool same_conv(const ConvParams& a, const ConvParams& b);
// Throws naming the node and the shapes when they are not a 2-D convolution cuDNN can run, or when the
// output shape disagrees with what the attributes give.
ConvParams conv_params(const Node& node, const Shape& x, const Shape& w, const Shape& y);

// One algorithm as cuDNN reports it (from cudnnGet*Algorithm_v7's heuristics, in its order of preference).
struct AlgoCandidate {
    int algo;
    bool ok;             // status CUDNN_STATUS_SUCCESS
    bool deterministic;  // CUDNN_DETERMINISTIC
    size_t memory;       // workspace bytes
    float time_ms;       // -1 from heuristics (no timing)
};
// The first candidate, in the order given, that succeeded, is deterministic and needs at most
// `memory_limit` bytes; -1 when none does. Heuristics rather than a timed search (cudnnFind*): a timed
// search can choose differently from one run to the next, and the chosen algorithm decides each exit's
// latency, which is the very thing a timing fingerprint needs to be repeatable.
int choose_algo(const std::vector<AlgoCandidate>& candidates, size_t memory_limit);
std::string describe_candidates(const std::vector<AlgoCandidate>& candidates);  // for error messages

// Numpy broadcasting of two operands against an output of rank <= 6: per output dimension, the
// output's extent and each operand's stride (0 where it broadcasts).
struct BroadcastDims {
    int rank;
    int64_t y[Shape::kMaxRank];
    int64_t a_stride[Shape::kMaxRank];
    int64_t b_stride[Shape::kMaxRank];
    bool a_same, b_same;  // the operand has the output's shape (plain element-wise indexing)
};
BroadcastDims broadcast_dims(const Shape& a, const Shape& b, const Shape& y);

// Grid size for a grid-stride loop over n elements: enough blocks to fill the device, capped so that
// huge tensors loop instead of launching millions of blocks.
struct Launch {
    unsigned blocks, threads;
};
Launch launch_1d(int64_t n, int threads = 256, int64_t max_blocks = 4096);

// Batch buckets for on-device early exit at batch N: the compacted batch after an exit is run at the
// smallest bucket that holds it (rows past the live count are computed and ignored), since captured
// cuDNN calls have a fixed batch. Descending: max_batch, then the powers of two below it, down to 1.
std::vector<int> batch_buckets(int max_batch);
// Index of the smallest bucket that holds n rows (buckets descending, n >= 1); the same arithmetic
// runs on the device in the bucket-select kernel.
inline int bucket_index(int n, const int* buckets, int count) {
    int i = 0;
    while (i + 1 < count && buckets[i + 1] >= n) ++i;
    return i;
}

}  // namespace engine::cuda
