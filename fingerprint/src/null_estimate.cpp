#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "craft_parts.h"
#include "engine/graph.h"

namespace fp {

namespace {

// Same architecture: as many exits and the same work to each (within 1 %), which pruning and
// fine-tuning keep and another network does not.
bool same_architecture(const engine::Model& a, const engine::Model& b) {
    const auto ma = engine::exit_macs(a.graph), mb = engine::exit_macs(b.graph);
    if (ma.size() != mb.size()) return false;
    for (size_t k = 0; k < ma.size(); ++k)
        if (std::fabs(double(ma[k]) - double(mb[k])) > 0.01 * double(std::max(ma[k], mb[k]))) return false;
    return true;
}

}  // namespace

// The null hypothesis: how often an independent model leaves at the target. Measured on the
// reference models over every candidate that reached its target on the owner, before the
// selection preferred those that do not transfer (after it, the estimate would be biased low).
// Independent models of the owner's own architecture transfer far more than other networks do
// (issue 15: other-architecture references gave 0.285 with the margin, independent ResNet-56
// reached 0.41-0.43), so only same-architecture references calibrate the null:
//   null = largest same-architecture rate + kNullMargin + 2 standard errors of that rate;
//   with other-architecture references only: their largest rate + kCrossArchNullMargin;
//   with none: kUncalibratedNull.
// Never below chance (1 / exits). info records every reference, its architecture and rate.
void estimate_null(const engine::Model& owner, const Candidates& c, const Scores& s,
                   const std::vector<Member>& references, int num_exits, FingerprintSet& set) {
    set.info["null_same_arch_references"] = "0";
    if (references.empty()) {
        set.null_match_rate = kUncalibratedNull;
        set.null_source = "UNCALIBRATED default " + std::to_string(kUncalibratedNull).substr(0, 4) +
                          " (no reference models given)";
        set.info["null_references"] = "[]";
        return;
    }
    int valid = 0;
    std::vector<int> hits(references.size(), 0);
    for (int i = 0; i < int(c.target.size()); ++i) {
        if (s.owner_exit[i] != c.target[i]) continue;
        ++valid;
        for (size_t r = 0; r < references.size(); ++r) hits[r] += s.transfer_by_ref[r][i];
    }
    double worst_same = -1, worst_other = -1;
    int same_count = 0;
    std::string same_names, other_names;
    nlohmann::json refs = nlohmann::json::array();
    for (size_t r = 0; r < references.size(); ++r) {
        const double rate = valid ? double(hits[r]) / valid : 1.0;
        const bool same = same_architecture(owner, references[r].model);
        const std::string name = std::filesystem::path(references[r].name).filename().string();
        char item[160];
        std::snprintf(item, sizeof item, "%s=%.3f", name.c_str(), rate);
        (same ? same_names : other_names) += std::string(same ? (same_names.empty() ? "" : ", ") : (other_names.empty() ? "" : ", ")) + item;
        if (same) worst_same = std::max(worst_same, rate), ++same_count;
        else worst_other = std::max(worst_other, rate);
        refs.push_back({{"name", name}, {"same_architecture", same}, {"rate", rate}, {"candidates", valid}});
    }
    double null_rate;
    if (same_count > 0) {
        null_rate = worst_same + kNullMargin + 2 * std::sqrt(worst_same * (1 - worst_same) / std::max(valid, 1));
        set.null_source = "same-architecture references (exit oracle, before selection): " + same_names;
        if (!other_names.empty()) set.null_source += "; other architectures, not used: " + other_names;
    } else {
        null_rate = worst_other + kCrossArchNullMargin;
        set.null_source = "OTHER-ARCHITECTURE references only (+" + std::to_string(kCrossArchNullMargin).substr(0, 4) +
                          " margin, uncalibrated for independent copies of this architecture): " + other_names;
    }
    set.null_match_rate = std::clamp(std::max(null_rate, 1.0 / num_exits), 0.01, 0.95);
    set.info["null_references"] = refs.dump();
    set.info["null_same_arch_references"] = std::to_string(same_count);
}

}  // namespace fp
