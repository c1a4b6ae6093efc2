// Accuracy and early-exit evaluation of a model on a data set, and per-exit batch-1 latency.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/api.h"
#include "engine/backend.h"
#include "engine/dataset.h"
#include "engine/latency.h"
#include "engine/model.h"

namespace engine {

// Where one sample left under the policy, and what it answered there.
struct ENGINE_API SampleDecision {
    int exit = 0;
    int cls = 0;
    float prob = 0;
};

struct ENGINE_API EvalResult {
    int64_t count = 0;
    std::vector<float> thresholds;
    double accuracy = 0;                    // under the early-exit policy
    std::vector<double> per_exit_accuracy;  // every exit on every sample (all-exits mode)
    std::vector<int64_t> exit_histogram;    // samples leaving at each exit under the policy
    double avg_macs_fraction = 0;           // mean multiply-adds per sample / full depth
    std::vector<SampleDecision> samples;    // per sample, in data order
    double wall_s = 0;
};

// Called after each batch with the samples done so far and the total.
using EvalProgress = std::function<void(int64_t done, int64_t total)>;

// One all-exits pass in batches of `batch`; the policy is applied to each exit's softmax.
ENGINE_API EvalResult evaluate(const Model& model, Backend& backend, const Dataset& data,
                               const std::vector<float>& thresholds, int batch, const EvalProgress& progress = {});

// Batch-1 latency to reach each exit: thresholds are set so that every sample leaves at exit k.
// Use a one-thread backend: that is the configuration whose per-exit latency is repeatable.
ENGINE_API std::vector<LatencyStats> exit_latencies(const Model& model, Backend& backend, const Dataset& data,
                                                    int samples);

}  // namespace engine
