// The op-level interface every backend implements. The reference backend (plain loops)
// implements every op forward and backward and is the oracle; faster backends override
// the ops they accelerate and inherit the rest.
#pragma once
#include "engine/api.h"
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace engine {

class Plan;
struct SampleResult;

// Runs Plan::run_early itself for one plan and fixed thresholds (the cuda backend: one CUDA graph
// whose exits are decided on the device).
class ENGINE_API EarlyExitRunner {
public:
    virtual ~EarlyExitRunner() = default;
    virtual void run(const float* input, int n, SampleResult* results) = 0;
};

struct ENGINE_API OpArgs {
    const Node& node;
    const TensorView* in;  // one view per node input
    int n_in;
    TensorView out;
    float* scratch;              // at least scratch_floats() floats, owned by the plan
    bool training;               // BatchNorm uses batch statistics and updates running ones; Dropout drops
    uint64_t step_seed;          // Dropout masks are derived from (step_seed, node) so backward can redo them
    bool weights_fixed = false;  // an inference-only plan: the weights stay as they are while it lives,
                                 // so a backend may keep transformed copies of them
};

struct ENGINE_API GradArgs {
    const OpArgs& fwd;    // the forward call's inputs and output (output already computed)
    TensorView grad_out;  // dLoss/dOutput
    TensorView* grad_in;  // one per input; data == nullptr where no gradient is needed.
                          // Backward ACCUMULATES into grad_in (a value may feed several nodes),
    unsigned fresh = 0;   // except where bit k is set: grad_in[k] holds no gradient yet (its contents
                          // are undefined) and backward WRITES it. Set only for backends whose
                          // writes_fresh_grads() is true; saves zeroing every gradient first.
};

class ENGINE_API Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    // Scratch space a node needs (im2col buffers and the like), decided at plan time.
    virtual size_t scratch_floats(const Node& node, const Shape* in, int n_in, const Shape& out) const;
    // Called once per plan for every node, so a backend can pack weights ahead of time.
    virtual void prepare(const Node& node, const Shape* in, int n_in, const Shape& out);
    // True when forward() implements Conv's fused epilogue (Attrs::fused_residual, fused_relu):
    // inference plans then fold BatchNorm, residual Add and ReLU into the convolution before them.
    virtual bool fuses_conv_epilogue() const { return false; }
    // True when forward() and backward() implement BatchNorm and same-shape Add with Attrs::fused_relu
    // (ReLU after them) and BatchNorm with Attrs::fused_residual (a same-shape Add after it): training
    // plans then fold those ReLUs and Adds into the node before them (fuse_training.h).
    virtual bool fuses_training_elementwise() const { return false; }
    // Samples an inference plan runs through the whole graph at a time when a batch holds more (0:
    // the whole batch, node by node). Every value of a chunk then stays in cache from the node that
    // writes it to the nodes that read it, instead of leaving for memory between whole-batch nodes;
    // the results are the same where each sample's result does not depend on its batch.
    virtual int inference_chunk() const { return 0; }
    virtual void forward(const OpArgs& a) = 0;
    virtual void backward(const GradArgs& a) = 0;
    // True when backward() honours GradArgs::fresh; otherwise a Plan zeroes each gradient before
    // the first backward call that adds to it.
    virtual bool writes_fresh_grads() const { return false; }

    // Device memory (the cuda backend). A backend whose kernels read their own memory returns true
    // here; a Plan then keeps its arena, scratch, gradients and a copy of every constant in memory
    // from device_alloc (uploaded at plan time, and again before each run of a keep_all plan,
    // whose weights the host may have changed), so every TensorView::data it hands to forward/backward is a device
    // pointer, and it copies through upload/download only at its boundaries (inputs in; logits, values and gradients
    // out). Host backends keep the defaults and the Plan its plain std::vectors.
    virtual bool device_memory() const { return false; }
    virtual float* device_alloc(size_t floats);  // zero-filled; throws on host backends
    virtual void device_free(float* p);
    virtual void upload(float* device_dst, const float* host_src, size_t floats);
    virtual void download(float* host_dst, const float* device_src, size_t floats);  // waits for the data
    virtual void device_copy(float* dst, const float* src, size_t floats);           // device to device, in order
    virtual void device_zero(float* dst, size_t floats);
    // A runner for Plan::run_early on an inference plan of this backend (thresholds: one per exit),
    // or null, the default: the Plan then decides each exit on the host between segments.
    virtual std::unique_ptr<EarlyExitRunner> make_early_exit(Plan& plan, const float* thresholds) { return nullptr; }
};

// "ref" (plain loops, the oracle), "native" (the default: hand-written AVX2/FMA kernels, kernels/native/),
// "onednn" (when built with oneDNN) or "cuda" (when built with CUDA; throws without a device). threads: how many
// threads the backend's kernels use (0: one per core). Batch-1 latency work uses 1: a pinned single thread is what
// makes per-exit latency repeatable. Throws naming an unknown backend and the ones this build has.
ENGINE_API std::unique_ptr<Backend> make_backend(const std::string& name, int threads = 0);
ENGINE_API std::string default_backend_name();
// Every backend this build holds, the oracle ("ref") first: what tests loop over ("cuda" among them
// even on a machine without a GPU, where make_backend("cuda") throws).
ENGINE_API std::vector<std::string> backend_names();

}  // namespace engine
