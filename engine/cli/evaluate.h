// Accuracy and early-exit evaluation of a model on a data set, and per-exit batch-1 latency.
#pragma once
#include <vector>

#include "cli_common.h"
#include "engine/backend.h"
#include "engine/model.h"

namespace engine::cli {

// Where one sample left under the policy, and what it answered there.
struct SampleDecision {
    int exit = 0;
    int cls = 0;
    float prob = 0;
};

struct EvalResult {
    int64_t count = 0;
    std::vector<float> thresholds;
    double accuracy = 0;                      // under the early-exit policy
    std::vector<double> per_exit_accuracy;    // every exit on every sample (all-exits mode)
    std::vector<int64_t> exit_histogram;      // samples leaving at each exit under the policy
    double avg_macs_fraction = 0;             // mean multiply-adds per sample / full depth
    std::vector<SampleDecision> samples;      // per sample, in data order
    std::vector<LatencyStats> latency;        // batch 1, per exit (samples forced to leave there)
    double wall_s = 0;
};

// One all-exits pass in batches of `batch`; the policy is applied to each exit's softmax.
// latency_samples > 0 also times batch-1 inference to each exit on that many images.
EvalResult evaluate(const Model& model, Backend& backend, const Dataset& data, const std::vector<float>& thresholds,
                    int batch, int latency_samples, bool progress);

// Batch-1 latency to reach each exit: thresholds are set so that every sample leaves at exit k.
// Use a one-thread backend: that is the configuration whose per-exit latency is repeatable.
std::vector<LatencyStats> exit_latencies(const Model& model, Backend& backend, const Dataset& data, int samples);

}  // namespace engine::cli
