// A fingerprint set: crafted inputs, the exit each must leave at on the owner's model, and the
// evidence needed to verify a suspect later without the owner's model at hand. Stored as one
// self-describing safetensors file (tensor "inputs", JSON metadata), written atomically.
//
// Two kinds: "timing" (the exits are the evidence; files without a kind are timing ones) and
// "label", the prediction-based baselines (craft_label.h): each input has an expected class and a
// suspect matches where it answers that class. A label set keeps target_exits (the exit the owner
// answered at), margins and the owner's per-exit tables for the record; its null is the rate at
// which independent models give the expected labels.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace fp {

inline constexpr const char* kTimingKind = "timing";
inline constexpr const char* kLabelKind = "label";

struct FingerprintSet {
    std::string kind = kTimingKind;           // kTimingKind or kLabelKind
    engine::Tensor inputs;                    // [M, C, H, W] pixels in [0, 1]
    std::vector<int> target_exits;            // M exit indices on the owner's model
    std::vector<float> margins;               // M achieved margins on the owner's model (probability units)
    std::vector<int> target_labels;           // label kind: M expected classes; timing: empty
    int num_classes = 0;                      // label kind: classes of the owner's answers; timing: 0
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
    bool is_label() const { return kind == kLabelKind; }
};

void save_fingerprint(const FingerprintSet& set, const std::string& path);
// Validates everything it reads; throws "<path>: <problem>".
FingerprintSet load_fingerprint(const std::string& path);

}  // namespace fp
