// Early exit decided on the device: the whole multi-exit forward pass as one CUDA graph whose
// segments after the first sit in nested IF conditional nodes (CUDA 12.4+), opened by the exit
// decision kernel of the segment before. A batch whose samples have all left at exit k never
// launches segment k+1; at batch N the decision compacts the rows that stay and the next segment
// runs at the smallest captured batch bucket that holds them (a SWITCH node). The host copies the
// input in, launches the graph and copies the results out: one synchronisation per batch.
// The wiring is computed by plan_exit_graph (cuda_exit_wiring.h) and checked without a device.
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_exit_wiring.h"
#include "cuda/cuda_kernels.h"
#include "engine/plan.h"

namespace engine::cuda {

class DeviceEarlyExit : public EarlyExitRunner {
public:
    // plan: an inference plan (not keep_all) made on `backend`, with one batched input. The
    // thresholds (one per exit; the last always fires) are fixed into the graph.
    DeviceEarlyExit(Plan& plan, CudaBackend& backend, const std::vector<float>& thresholds);
    ~DeviceEarlyExit() override;
    DeviceEarlyExit(const DeviceEarlyExit&) = delete;
    DeviceEarlyExit& operator=(const DeviceEarlyExit&) = delete;

    // Plan::run_early's contract: one result per sample. SampleResult::ns is device time (the GPU's
    // global timer) from the start of the graph to the sample's exit decision.
    void run(const float* input, int n, SampleResult* results) override;
    const ExitGraphWiring& wiring() const { return wiring_; }

private:
    void build();
    void release();
    template <class Launch>
    std::vector<cudaGraphNode_t> capture(cudaGraph_t g, const std::vector<cudaGraphNode_t>& deps, const Launch& launch);
    cudaGraphNode_t add_conditional(cudaGraph_t g, const std::vector<cudaGraphNode_t>& deps,
                                    cudaGraphConditionalHandle h, cudaGraphConditionalNodeType type, unsigned size,
                                    cudaGraph_t** bodies);

    Plan& plan_;
    CudaBackend& backend_;
    std::vector<float> thresholds_;
    ExitGraphWiring wiring_;
    int max_batch_;
    int input_node_;
    cudaGraph_t graph_ = nullptr;
    cudaGraphExec_t exec_ = nullptr;
    ExitState* state_ = nullptr;             // device
    int* buckets_ = nullptr;                 // device copy of wiring_.buckets
    int* row_of_ = nullptr;                  // device, max_batch
    int* keep_ = nullptr;                    // device, max_batch
    DeviceSampleResult* results_ = nullptr;  // device, max_batch
    std::vector<CompactValue*> compact_;     // device, per segment: the values later segments read
    std::vector<int> compact_count_;
    std::vector<int64_t> compact_max_row_;
    int* host_n_ = nullptr;                       // pinned
    DeviceSampleResult* host_results_ = nullptr;  // pinned
};

}  // namespace engine::cuda
