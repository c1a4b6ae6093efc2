// Plan once, run many: a Plan fixes, for one model, backend and maximum batch size, the
// segments between exits, every value's shape and its place in one arena, and each node's
// scratch. Running allocates nothing.
//
// Early-exit execution runs segment 0 on the whole batch, decides exit 0 per sample, moves
// the samples that stay to the front of every live buffer (compaction), and continues with
// the smaller batch. At batch 1 this stops at the first exit that fires.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "engine/aligned_vector.h"
#include "engine/api.h"
#include "engine/backend.h"
#include "engine/exit_policy.h"
#include "engine/model.h"

namespace engine {

struct ENGINE_API SampleResult {
    int cls = -1;    // predicted class
    float prob = 0;  // its softmax probability at the exit taken
    int exit = -1;   // exit index
    int64_t ns = 0;  // wall time from the start of the batch to this sample's exit decision
};

class ENGINE_API Plan {
public:
    // keep_all: keep every value (no buffer reuse), as training and gradients need; where the
    // backend fuses them (Backend::fuses_training_elementwise), a ReLU after a BatchNorm or residual Add,
    // and a residual Add after a BatchNorm, run inside that node, whose own value is then not kept
    // (value() of it throws). Without
    // keep_all, and where the backend fuses conv epilogues, BatchNorm, residual Add and ReLU after a
    // convolution run inside it (the absorbed nodes are not run; value() of them throws too),
    // and the plan runs once on a sample of zeros before returning, so that the backend packs
    // its weights at load rather than on the first real run.
    Plan(const Model& model, Backend& backend, int max_batch, bool keep_all = false);
    ~Plan();
    Plan(const Plan&) = delete;
    Plan& operator=(const Plan&) = delete;

    int max_batch() const { return max_batch_; }
    const Model& model() const { return model_; }

    // Every exit's logits for n samples (n <= max_batch); read them with exit_logits().
    // `inputs` holds one pointer per graph input (most models have one: the image batch). An
    // inference plan on the host runs a batch larger than the backend's inference_chunk() chunk
    // by chunk, each through every node.
    void run_all(const float* const* inputs, int n, bool training = false, uint64_t step_seed = 0);
    void run_all(const float* input, int n, bool training = false, uint64_t step_seed = 0) {
        run_all(&input, n, training, step_seed);
    }
    TensorView exit_logits(int exit) const;

    // Early exit under `thresholds` (one per exit; the last always fires), one result per sample.
    // Where a device backend offers an EarlyExitRunner (cuda: a CUDA graph deciding on the device),
    // an inference plan runs through it, made at construction for the model's thresholds and again
    // when others are given; SampleResult::ns is then the device's time from the start of the batch.
    void run_early(const float* input, int n, const float* thresholds, SampleResult* results);

    // Gradients after run_all(keep_all plan): seeds d(loss)/d(exit k logits) and propagates.
    // grad_exit[k] may be null (that exit does not contribute). Returns nothing; read grads below.
    // need_param_grads = false skips parameter gradients (crafting inputs needs only d/d input).
    void backward(const float* const* grad_exit, bool need_input_grad, bool training = false, uint64_t step_seed = 0,
                  bool need_param_grads = true);
    TensorView input_grad() const;          // d/d input, after backward(need_input_grad)
    TensorView param_grad(int node) const;  // for a trainable Constant node
    TensorView value(int node) const;       // a node's current output

    // Multiply-adds per sample from the input to each exit (cumulative over segments).
    const std::vector<int64_t>& macs_to_exit() const { return macs_to_exit_; }
    const std::vector<std::vector<int>>& segments() const { return segments_; }

    // For executors that capture segments on a device (kernels/cuda/cuda_graph_exits): run one
    // segment's nodes on the first n rows (no input binding, no exit decision); a node's buffer
    // as the backend sees it (device memory on device backends); the batched values that later
    // segments read, which compaction must move.
    void run_segment(int segment, int n);
    TensorView buffer(int node, int n) const { return view_of(node, n); }
    const std::vector<int>& live_after(int segment) const { return live_after_[segment]; }

private:
    // Samples [first, first + n) of a batch (first > 0 only for inference chunks).
    void run_node(int node, int n, bool training, uint64_t step_seed, int first = 0);
    void bind_inputs(const float* const* inputs, int n);
    void compact(int segment, int n_keep, int n_before);  // rows keep_rows_[0..n_keep) move to the front
    TensorView view_of(int node, int n, int first = 0) const;
    TensorView to_host(TensorView v, int node, bool grad) const;  // device plans: a downloaded copy
    void upload_constants();                                      // device plans: the host's constants
    OpArgs args_for(int node, int n, bool training, uint64_t seed, int first = 0);

    const Model& model_;
    Backend& backend_;
    int max_batch_;
    bool keep_all_;
    std::vector<const Node*> nodes_;            // node i as executed: the graph's, or a fused replacement
    std::deque<Node> fused_;                    // the replacements
    std::vector<Shape> shapes_;                 // at max_batch
    std::vector<std::vector<int>> segments_;    // node indices per exit, topological
    std::vector<bool> batched_;                 // value carries the batch in dim 0
    std::vector<int64_t> offset_;               // arena offset per value (-1: constant)
    std::vector<int> last_use_;                 // position of the last consumer per value
    std::vector<std::vector<int>> live_after_;  // per segment: values that later segments read
    AlignedVector<float> arena_;                // every buffer at a multiple of 16 floats from its start
    AlignedVector<float> scratch_;
    // Device backends (Backend::device_memory()): arena, scratch, gradients and constants live in
    // the backend's memory; the *_base_ pointers are what views point into, on host or device.
    bool device_ = false;
    float* arena_base_ = nullptr;
    float* scratch_base_ = nullptr;
    float* grad_base_ = nullptr;
    int64_t grad_floats_ = 0;
    float* const_block_ = nullptr;  // every constant, uploaded at plan time
    int64_t const_floats_ = 0;
    std::vector<float> const_staging_;     // keep_all: its host image, for one-copy transfers
    std::vector<float*> const_device_;     // per node: its constant's place in it
    int64_t param_grad_floats_ = 0;        // the trainable constants' gradients lead the arena
    std::vector<float> host_param_grads_;  // device: all of them, downloaded after backward
    bool param_grads_downloaded_ = false;
    mutable std::vector<std::vector<float>> host_values_;  // per node: downloaded values
    mutable std::vector<std::vector<float>> host_grads_;   // per node: downloaded gradients
    std::unique_ptr<EarlyExitRunner> early_;               // the backend's run_early, if it has one
    std::vector<float> early_thresholds_;                  // what early_ was made for
    std::vector<int64_t> macs_to_exit_;
    int n_current_ = 0;
    // Gradients (allocated only for keep_all plans).
    std::vector<int64_t> grad_offset_;
    AlignedVector<float> grad_arena_;
    std::vector<int> row_of_;  // compaction: current row -> original sample
    std::vector<int> keep_rows_;
    std::vector<TensorView> in_views_;  // reused per node, never reallocated
    std::vector<TensorView> grad_views_;
    std::vector<char> requires_grad_;
    std::vector<char> grad_written_;  // backward: the value's gradient holds a sum already
};

}  // namespace engine
