#include "cuda/cuda_graph_exits.h"

#include <cstdio>
#include <cstdlib>

#include "cuda/cuda_check.h"
#include "engine/error.h"

namespace engine::cuda {

namespace {

template <class T>
T* device_array(size_t count) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, sizeof(T) * std::max<size_t>(count, 1)));
    CUDA_CHECK(cudaMemset(p, 0, sizeof(T) * std::max<size_t>(count, 1)));
    return static_cast<T*>(p);
}

}  // namespace

DeviceEarlyExit::DeviceEarlyExit(Plan& plan, CudaBackend& backend, const std::vector<float>& thresholds)
    : plan_(plan), backend_(backend), thresholds_(thresholds), max_batch_(plan.max_batch()) {
    const Graph& g = plan.model().graph;
    if (g.inputs.size() != 1) fail("cuda early exit: the model needs exactly one input");
    input_node_ = g.inputs[0];
    if (plan.buffer(input_node_, 1).shape[0] != 1 || plan.buffer(input_node_, 2).shape[0] != 2)
        fail("cuda early exit: the model's input carries no batch dimension");
    if (static_cast<int>(thresholds_.size()) != plan.model().num_exits())
        fail("cuda early exit: " + std::to_string(thresholds_.size()) + " thresholds for " +
             std::to_string(plan.model().num_exits()) + " exits");
    try {
        build();
    } catch (...) {
        release();  // what build() made before it threw
        throw;
    }
}

DeviceEarlyExit::~DeviceEarlyExit() { release(); }

void DeviceEarlyExit::release() {
    if (exec_) cudaGraphExecDestroy(exec_), exec_ = nullptr;
    if (graph_) cudaGraphDestroy(graph_), graph_ = nullptr;
    for (auto*& p : compact_) cudaFree(p), p = nullptr;
    compact_.clear();
    for (void* p : {(void*)state_, (void*)buckets_, (void*)row_of_, (void*)keep_, (void*)results_})
        if (p) cudaFree(p);
    state_ = nullptr, buckets_ = nullptr, row_of_ = nullptr, keep_ = nullptr, results_ = nullptr;
    if (host_n_) cudaFreeHost(host_n_), host_n_ = nullptr;
    if (host_results_) cudaFreeHost(host_results_), host_results_ = nullptr;
}

template <class Launch>
std::vector<cudaGraphNode_t> DeviceEarlyExit::capture(cudaGraph_t g, const std::vector<cudaGraphNode_t>& deps,
                                                      const Launch& launch) {
    cudaStream_t s = backend_.stream();
    CUDA_CHECK(cudaStreamBeginCaptureToGraph(s, g, deps.empty() ? nullptr : deps.data(), nullptr, deps.size(),
                                             cudaStreamCaptureModeThreadLocal));
    std::vector<cudaGraphNode_t> sinks;
    try {
        launch();
        cudaStreamCaptureStatus status;
        const cudaGraphNode_t* d = nullptr;
        size_t nd = 0;
        CUDA_CHECK(cudaStreamGetCaptureInfo(s, &status, nullptr, nullptr, &d, nullptr, &nd));
        sinks.assign(d, d + nd);
    } catch (...) {
        cudaGraph_t ignored = nullptr;
        cudaStreamEndCapture(s, &ignored);
        throw;
    }
    cudaGraph_t same = nullptr;
    CUDA_CHECK(cudaStreamEndCapture(s, &same));  // returns g itself
    return sinks.empty() ? deps : sinks;
}

cudaGraphNode_t DeviceEarlyExit::add_conditional(cudaGraph_t g, const std::vector<cudaGraphNode_t>& deps,
                                                 cudaGraphConditionalHandle h, cudaGraphConditionalNodeType type,
                                                 unsigned size, cudaGraph_t** bodies) {
    cudaGraphNodeParams p{};
    p.type = cudaGraphNodeTypeConditional;
    p.conditional.handle = h;
    p.conditional.type = type;
    p.conditional.size = size;
    cudaGraphNode_t node = nullptr;
    CUDA_CHECK(cudaGraphAddNode(&node, g, deps.empty() ? nullptr : deps.data(), nullptr, deps.size(), &p));
    *bodies = p.conditional.phGraph_out;
    return node;
}

void DeviceEarlyExit::build() {
    const Graph& gr = plan_.model().graph;
    const int segments = static_cast<int>(plan_.segments().size());
    wiring_ = plan_exit_graph(segments, max_batch_);
    const auto& buckets = wiring_.buckets;
    const int n_buckets = static_cast<int>(buckets.size());

    state_ = device_array<ExitState>(1);
    buckets_ = device_array<int>(buckets.size());
    CUDA_CHECK(cudaMemcpy(buckets_, buckets.data(), sizeof(int) * buckets.size(), cudaMemcpyHostToDevice));
    row_of_ = device_array<int>(max_batch_);
    keep_ = device_array<int>(max_batch_);
    results_ = device_array<DeviceSampleResult>(max_batch_);
    CUDA_CHECK(cudaMallocHost(&host_n_, sizeof(int)));
    CUDA_CHECK(cudaMallocHost(&host_results_, sizeof(DeviceSampleResult) * max_batch_));
    // Per segment, the values that later segments read (the Plan's compaction list), as device pointers.
    for (int k = 0; k < segments; ++k) {
        std::vector<CompactValue> values;
        int64_t max_row = 0;
        for (int v : plan_.live_after(k)) {
            const TensorView t = plan_.buffer(v, max_batch_);
            values.push_back({t.data, t.numel() / max_batch_});
            max_row = std::max(max_row, t.numel() / max_batch_);
        }
        compact_.push_back(device_array<CompactValue>(values.size()));
        if (!values.empty())
            CUDA_CHECK(cudaMemcpy(compact_.back(), values.data(), sizeof(CompactValue) * values.size(),
                                  cudaMemcpyHostToDevice));
        compact_count_.push_back(static_cast<int>(values.size()));
        compact_max_row_.push_back(max_row);
    }
    backend_.synchronize();

    cudaStream_t s = backend_.stream();
    CUDA_CHECK(cudaGraphCreate(&graph_, 0));
    cudaGraph_t g = graph_;
    std::vector<cudaGraphNode_t> deps;
    std::vector<cudaGraphConditionalHandle> handles(wiring_.handles.size());
    for (const auto& L : wiring_.levels) {
        const int k = L.segment;
        const bool last = k + 1 == segments;
        // A handle belongs to the graph that holds its conditional node; the kernel that sets it runs
        // upstream of that node in the same graph.
        if (L.switch_handle >= 0) CUDA_CHECK(cudaGraphConditionalHandleCreate(&handles[L.switch_handle], g, 0, 0));
        if (L.if_handle >= 0) CUDA_CHECK(cudaGraphConditionalHandleCreate(&handles[L.if_handle], g, 0, 0));
        for (ExitStep step : L.steps) {
            switch (step) {
                case ExitStep::Start:
                    deps = capture(g, deps, [&] { exit_start(s, state_, row_of_, max_batch_); });
                    break;
                case ExitStep::SelectBucket:
                    deps = capture(
                        g, deps, [&] { exit_select_bucket(s, state_, buckets_, n_buckets, handles[L.switch_handle]); });
                    break;
                case ExitStep::Segment:
                    deps = capture(g, deps, [&] { plan_.run_segment(k, max_batch_); });
                    break;
                case ExitStep::SegmentSwitch: {
                    cudaGraph_t* bodies = nullptr;
                    cudaGraphNode_t node = add_conditional(g, deps, handles[L.switch_handle], cudaGraphCondTypeSwitch,
                                                           unsigned(n_buckets), &bodies);
                    for (int b = 0; b < n_buckets; ++b)
                        capture(bodies[b], {}, [&] { plan_.run_segment(k, buckets[b]); });
                    deps = {node};
                    break;
                }
                case ExitStep::Decide: {
                    const TensorView logits = plan_.buffer(gr.outputs[k], max_batch_);
                    const int classes = static_cast<int>(logits.numel() / max_batch_);
                    const float threshold = last ? 0.0f : thresholds_[k];
                    const cudaGraphConditionalHandle h = last ? 0 : handles[L.if_handle];
                    deps = capture(g, deps, [&] {
                        exit_decide(s, state_, logits.data, classes, threshold, last, k, row_of_, keep_, results_, h);
                    });
                    break;
                }
                case ExitStep::Compact:
                    deps = capture(g, deps, [&] {
                        exit_compact(s, state_, keep_, compact_[k], compact_count_[k], compact_max_row_[k]);
                    });
                    break;
                case ExitStep::NextIf: {
                    cudaGraph_t* bodies = nullptr;
                    add_conditional(g, deps, handles[L.if_handle], cudaGraphCondTypeIf, 1, &bodies);
                    g = bodies[0];
                    deps.clear();
                    break;
                }
            }
        }
    }
    CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
    CUDA_CHECK(cudaGraphUpload(exec_, s));
    backend_.synchronize();
}

// Plan::run_early's runner on this backend (Plan asks at construction). ENGINE_CUDA_GRAPH_EXIT=0 keeps
// the decisions on the host; a graph that cannot be built says why, once, and the host path serves.
std::unique_ptr<EarlyExitRunner> CudaBackend::make_early_exit(Plan& plan, const float* thresholds) {
    const char* env = std::getenv("ENGINE_CUDA_GRAPH_EXIT");
    if (env && std::string(env) == "0") return nullptr;
    try {
        return std::make_unique<DeviceEarlyExit>(plan, *this,
                                                 std::vector<float>(thresholds, thresholds + plan.model().num_exits()));
    } catch (const Error& e) {
        std::fprintf(stderr, "cuda backend: early exit decided on the host: %s\n", e.what());
        return nullptr;
    }
}

void DeviceEarlyExit::run(const float* input, int n, SampleResult* results) {
    if (n < 1 || n > max_batch_)
        fail("cuda early exit: batch of " + std::to_string(n) + " is outside 1.." + std::to_string(max_batch_));
    cudaStream_t s = backend_.stream();
    const TensorView in = plan_.buffer(input_node_, n);
    backend_.upload(in.data, input, in.numel());
    *host_n_ = n;
    CUDA_CHECK(cudaMemcpyAsync(&state_->n_live, host_n_, sizeof(int), cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaGraphLaunch(exec_, s));
    CUDA_CHECK(cudaMemcpyAsync(host_results_, results_, sizeof(DeviceSampleResult) * n, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    for (int i = 0; i < n; ++i)
        results[i] = {host_results_[i].cls, host_results_[i].prob, host_results_[i].exit, int64_t(host_results_[i].ns)};
}

}  // namespace engine::cuda
