// A fingerprint set: crafted inputs, the exit each must leave at on the owner's model, and the
// evidence needed to verify a suspect later without the owner's model at hand. Stored as one
// self-describing safetensors file (tensor "inputs", JSON metadata), written atomically.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace fp {

struct FingerprintSet {
    engine::Tensor inputs;                    // [M, C, H, W] pixels in [0, 1]
    std::vector<int> target_exits;            // M exit indices on the owner's model
    std::vector<float> margins;               // M achieved margins on the owner's model (probability units)
    std::string model_hash;                   // sha256 of the owner's model
    std::string model_name;                   // file name, for reports
    std::vector<float> thresholds;            // the owner's exit policy at crafting time
    std::vector<double> owner_latency_ms;     // median batch-1 latency per exit on the owner's machine
    std::vector<double> exit_macs;            // multiply-adds to each exit (relative latency profile)
    double null_match_rate = 0.5;             // expected exact-exit agreement of an independent model
    std::string null_source;                  // how null_match_rate was estimated
    std::map<std::string, std::string> info;  // options used, timings, per-reference figures

    int num_exits() const { return int(thresholds.size()); }
    int size() const { return int(target_exits.size()); }
};

void save_fingerprint(const FingerprintSet& set, const std::string& path);
// Validates everything it reads; throws "<path>: <problem>".
FingerprintSet load_fingerprint(const std::string& path);

}  // namespace fp
